"""Rasa's L2 regularisation, shared by DIET and TED (reference §1.4, §3.3).

Rasa puts a Keras ``kernel_regularizer`` (``c·Σw²``) on every dense kernel and adds it to the
prediction loss. Here the term never enters the loss: its gradient ``2·c·w`` is added to the
kernels' gradients after ``backward`` (:func:`add_l2_gradient`), in one of three modes:

- ``"rasa"``: only where the prediction-loss gradient is positive (RasaModel.train_step's quirk);
- ``"plain"``: everywhere, as a textbook L2 term would;
- ``"none"``: no regularisation.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

L2_MODES = ("rasa", "plain", "none")


def check_l2_mode(mode: str) -> None:
    if mode not in L2_MODES:
        raise ValueError(f"l2_mode must be one of {L2_MODES}, not {mode!r}")


def kernel_parameters(module: nn.Module,
                      exclude: Iterable[nn.Parameter] = ()) -> list[nn.Parameter]:
    """The parameters Rasa regularises: every weight matrix and CRF transition matrix.

    Biases, LayerNorms, mask vectors, position tables and anything in ``exclude`` (e.g. a
    fine-tuned pretrained encoder) are left out.
    """
    skip = {id(p) for p in exclude}
    params = []
    for name, param in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if param.requires_grad and param.dim() == 2 and leaf in ("weight", "transitions") \
                and ".norm" not in name and "layer_norm" not in name and id(param) not in skip:
            params.append(param)
    return params


def add_l2_gradient(params: Iterable[nn.Parameter], constant: float, mode: str) -> None:
    """Add the gradient ``2·c·w`` of ``c·Σw²`` to each parameter's ``.grad`` (after backward)."""
    check_l2_mode(mode)
    if mode == "none" or constant == 0:
        return
    for param in params:
        if param.grad is None:
            continue
        if mode == "rasa":  # one fused pass: grad += 2c · w · [grad > 0]
            param.grad.addcmul_(param.detach(), param.grad.gt(0), value=2 * constant)
        else:
            param.grad.add_(param.detach(), alpha=2 * constant)


__all__ = ["L2_MODES", "Dropout", "add_l2_gradient", "check_l2_mode", "hashed_draws",
           "keep_mask", "kernel_parameters"]


# splitmix64's constants (Steele, Lea & Flood 2014) as signed 64-bit integers
_GOLDEN_GAMMA = -7046029254386353131  # 0x9E3779B97F4A7C15
_MIX_1 = -4658895280553007687         # 0xBF58476D1CE4E5B9
_MIX_2 = -7723592293110705685         # 0x94D049BB133111EB
HASHED_MASK_MIN = 65_536  # masks of at least this many elements come from the counter hash


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str
              ) -> torch.Tensor:
    """A boolean mask of ``shape`` that is True with probability ``1 − p`` per element: a
    dropout mask.

    PyTorch's CPU generator makes one random number at a time on one thread (~2.5 ns each:
    ~30 times a multiplication of the same tensor, and 10 % of a two-thread DIET step). Masks
    of at least :data:`HASHED_MASK_MIN` elements therefore come from a counter-based generator
    that runs as whole-tensor integer operations (on every thread, and on a GPU): splitmix64's
    output function over counters (:func:`hashed_draws`), each 64-bit result cut into four
    16-bit draws; the seed is drawn from torch's default generator, so ``torch.manual_seed`` still
    fixes every mask. A 16-bit draw keeps an element with probability
    ``1 − round(p·65536) / 65536`` (p = 0.2: 0.8000031). Smaller masks use ``torch.rand``."""
    count = math.prod(shape)
    if count < HASHED_MASK_MIN:
        return torch.rand(shape, device=device) >= p
    draws = hashed_draws(int(torch.randint(0, 2 ** 62, ())), count, device).view(shape)
    return draws >= round(p * 65536) - 32768


def hashed_draws(seed: int, count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``count`` int16 draws, uniform over [−32768, 32767]: splitmix64's output for the
    counters ``seed + (i + 1)·γ``, ``i < ⌈count / 4⌉``, each cut into four 16-bit draws
    (in memory order)."""
    z = torch.arange(1, (count + 3) // 4 + 1, dtype=torch.int64, device=device)
    z.mul_(_GOLDEN_GAMMA).add_(seed)   # int64 products wrap around, as splitmix64's do
    z.bitwise_xor_(_shifted(z, 30)).mul_(_MIX_1)
    z.bitwise_xor_(_shifted(z, 27)).mul_(_MIX_2)
    z.bitwise_xor_(_shifted(z, 31))
    return z.view(torch.int16)[:count]


def _shifted(z: torch.Tensor, bits: int) -> torch.Tensor:
    """``z >>> bits``: a logical right shift of int64 (torch's ``>>`` copies the sign bit)."""
    return (z >> bits).bitwise_and_((1 << (64 - bits)) - 1)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask: :func:`keep_mask` (random numbers on every thread)
    scaled in place, instead of ``bernoulli_`` (on CPU: one thread, ~2.7× ``uniform_``'s time).
    Same scaling: each element is kept with probability ``1 − p`` (to 2⁻¹⁶) and scaled by
    ``1 / (1 − p)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        mask = keep_mask(x.shape, self.p, x.device).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * mask
