"""Dense layers with Rasa's fixed random connectivity (``connection_density``).

:class:`RandomlyConnectedDense` is a ``Linear`` whose kernel is multiplied at every call by a fixed
binary mask: about ``density`` of the weights are kept, plus a tiled identity so that every input
and every output stays connected. :class:`Ffnn` stacks them with GELU and dropout, as Rasa's
``Ffnn`` does for the hidden layers of DIET and the encoding layers of TED.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlu_models.modules.regularization import Dropout


def _tiled_identity(out_features: int, in_features: int) -> Tensor:
    """A (out, in) 0/1 matrix with a 1 in every row and every column.

    The identity of the shorter side is tiled along the longer axis and cut to size.
    """
    rows = torch.arange(out_features)[:, None]  # (out, 1)
    cols = torch.arange(in_features)[None, :]  # (1, in)
    short = min(out_features, in_features)
    return rows % short == cols % short  # (out, in)


class RandomlyConnectedDense(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed random binary mask.

    The mask (buffer ``mask``, ``(out_features, in_features)``, saved in the state dict) keeps
    each weight with probability ``density``, OR-ed with a tiled identity so that no input and no
    output is disconnected. Masked weights get a zero gradient and are zeroed at initialisation.
    ``density == 1`` gives a plain ``Linear``: ``mask`` is ``None`` and nothing is stored.
    """

    mask: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        density: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        super().__init__(in_features, out_features, bias=bias)
        self.density = float(density)
        if density < 1.0:
            kept = torch.rand(out_features, in_features, generator=generator) < density
            mask = kept | _tiled_identity(out_features, in_features)  # (out, in)
            self.register_buffer("mask", mask.to(self.weight.dtype), persistent=True)
            with torch.no_grad():
                self.weight.mul_(self.mask)
        else:
            self.register_buffer("mask", None)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight if self.mask is None else self.weight * self.mask  # (out, in)
        return F.linear(x, weight, self.bias)  # (..., out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, density={self.density}"


class Ffnn(nn.Module):
    """Feed-forward stack: per layer ``RandomlyConnectedDense → GELU → Dropout``.

    With no layers it is the identity and ``out_features == in_features``.
    """

    def __init__(
        self,
        in_features: int,
        layer_sizes: Sequence[int],
        dropout: float = 0.0,
        density: float = 1.0,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for size in layer_sizes:
            blocks += [
                RandomlyConnectedDense(width, size, density=density),
                nn.GELU(),
                Dropout(dropout),
            ]
            width = size
        self.layers = nn.Sequential(*blocks)
        self.in_features = in_features
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)  # (..., in_features) -> (..., out_features)
