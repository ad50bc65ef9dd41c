"""The optimiser DIET and TED train with: Adam, as Rasa's, in torch's fused implementation.

The fused kernel updates every parameter in one pass; on a small model on the CPU the default
per-parameter loop costs more than the forward pass (TED: 1.3 ms vs 0.3 ms per step here). The
update rule is the same Adam.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch


def adam(params: Iterable[Any], lr: float) -> torch.optim.Adam:
    """``torch.optim.Adam(params, lr)``, fused where every parameter allows it."""
    groups = list(params)
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                                  for p in tensors)
    return torch.optim.Adam(groups, lr=lr, fused=fused)
