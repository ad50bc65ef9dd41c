"""Growing a trained model's label and vocabulary tables, for fine-tuning on data with new
intents, entities, actions or n-grams.

The new model is built for the grown sizes (so its new rows start at their usual
initialisation); :func:`grow_state_dict` then copies every old weight in: whole where the shape
did not change, and entry by entry into the grown dimensions, at the positions an *index map*
gives (``positions[i]`` is where old entry ``i`` sits in the new table). DIET and TED say which
parameter dimension indexes which table (:mod:`nlu_models.diet.growth`,
:mod:`dialogue_models.ted.growth`); this module knows nothing of either.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

# parameter name → {dimension: (old size,) long tensor of new positions}
IndexMaps = Mapping[str, Mapping[int, Tensor]]


def grow_state_dict(old_state: Mapping[str, Tensor], new_model: nn.Module | Mapping[str, Tensor],
                    index_maps: IndexMaps) -> dict[str, Tensor]:
    """The new model's state dict with every old entry copied in.

    Parameters only the new model has (a head for a tag set the old model lacked) keep their
    fresh values; a parameter only the old model has, a dimension that changed size without an
    index map, or a map that does not fit raises a ``ValueError`` naming the parameter.
    """
    new_state = new_model.state_dict() if isinstance(new_model, nn.Module) else dict(new_model)
    dropped = sorted(set(old_state) - set(new_state))
    if dropped:
        raise ValueError(f"the new model has no place for the old parameters {dropped}")
    stray = sorted(set(index_maps) - set(new_state))
    if stray:
        raise ValueError(f"index maps given for parameters the new model lacks: {stray}")
    return {name: (_grown(name, old_state[name], fresh, index_maps.get(name, {}))
                   if name in old_state else fresh)
            for name, fresh in new_state.items()}


def _grown(name: str, old: Tensor, fresh: Tensor, maps: Mapping[int, Tensor]) -> Tensor:
    if old.dim() != fresh.dim():
        raise ValueError(f"{name}: {old.dim()} dimensions in the old model, {fresh.dim()} in "
                         "the new one")
    positions = []
    for dim in range(old.dim()):
        where = maps.get(dim)
        if where is None:
            if old.shape[dim] != fresh.shape[dim]:
                raise ValueError(f"{name}: dimension {dim} has size {old.shape[dim]} in the old "
                                 f"model and {fresh.shape[dim]} in the new one, and no index map "
                                 "says where the old entries go")
            where = torch.arange(old.shape[dim])
        positions.append(_checked(name, dim, torch.as_tensor(where, dtype=torch.long),
                                  old.shape[dim], fresh.shape[dim]))
    grown = fresh.detach().clone()
    if old.dim() == 0:
        return old.detach().clone().to(grown.dtype)  # a scalar: nothing to grow
    # one index tensor per dimension, broadcast against each other: an outer-product selection
    index = tuple(p.reshape([-1 if d == dim else 1 for d in range(old.dim())])
                  for dim, p in enumerate(positions))
    grown[index] = old.detach().to(grown.device, grown.dtype)
    return grown


def _checked(name: str, dim: int, where: Tensor, old_size: int, new_size: int) -> Tensor:
    if where.shape != (old_size,):
        raise ValueError(f"{name}: the index map of dimension {dim} has {where.numel()} entries "
                         f"for {old_size} old ones")
    if old_size and (int(where.min()) < 0 or int(where.max()) >= new_size):
        raise ValueError(f"{name}: the index map of dimension {dim} points outside the new "
                         f"size {new_size}")
    if where.unique().numel() != old_size:
        raise ValueError(f"{name}: the index map of dimension {dim} sends two old entries to "
                         "one place")
    return where


def positions_of(old: Sequence[Any], new: Sequence[Any], what: str) -> Tensor:
    """Where each entry of ``old`` sits in ``new`` (a ``ValueError`` naming what went missing
    when the new table lost some)."""
    index = {entry: i for i, entry in enumerate(new)}
    missing = [entry for entry in old if entry not in index]
    if missing:
        raise ValueError(f"{what}: the grown table lost {missing[:5]}")
    return torch.tensor([index[entry] for entry in old], dtype=torch.long)


def check_same_config(old: Mapping[str, Any], new: Mapping[str, Any], grown_keys: Sequence[str],
                      model: str) -> None:
    """Raise unless the two model configs agree on everything but ``grown_keys``."""
    keys = sorted((set(old) | set(new)) - set(grown_keys))
    differing = [k for k in keys if old.get(k) != new.get(k)]
    if differing:
        details = ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in differing)
        raise ValueError(f"cannot fine-tune this {model}: its config differs from the new one in "
                         f"more than label and vocabulary sizes ({details}); use the model config "
                         "it was trained with")


def describe_growth(what: str, old: Sequence[str] | int, new: Sequence[str] | int,
                    show: int = 5) -> str:
    """``"intents: 16 → 17 (+ask_price)"`` for name lists, ``"vocabulary: 4,812 → 4,903"`` for
    sizes."""
    if isinstance(old, int) or isinstance(new, int):
        return f"{what}: {int(old):,} → {int(new):,}"  # type: ignore[arg-type]
    text = f"{what}: {len(old):,} → {len(new):,}"
    known = set(old)
    added = [name for name in new if name not in known]
    if added:
        more = f", … {len(added) - show} more" if len(added) > show else ""
        text += f" (+{', +'.join(added[:show])}{more})"
    return text


__all__ = ["IndexMaps", "check_same_config", "describe_growth", "grow_state_dict",
           "positions_of"]
