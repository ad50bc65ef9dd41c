"""Rasa's L2 regularisation, shared by DIET and TED (reference §1.4, §3.3).

Rasa puts a Keras ``kernel_regularizer`` (``c·Σw²``) on every dense kernel and adds it to the
prediction loss. Here the term never enters the loss: its gradient ``2·c·w`` is added to the
kernels' gradients after ``backward`` (:func:`add_l2_gradient`), in one of three modes:

- ``"rasa"``: only where the prediction-loss gradient is positive (RasaModel.train_step's quirk);
- ``"plain"``: everywhere, as a textbook L2 term would;
- ``"none"``: no regularisation.
"""
from __future__ import annotations

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


__all__ = ["L2_MODES", "add_l2_gradient", "check_l2_mode", "kernel_parameters"]


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask: ``uniform_`` → ``ge_`` → ``mul_`` in place instead
    of ``bernoulli_`` (on CPU about half the time, forward and backward together; dropout
    masks were a tenth of a DIET training step). Same distribution and scaling: each element
    is kept with probability ``1 − p`` and scaled by ``1 / (1 − p)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        mask = torch.empty_like(x).uniform_().ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * mask
