"""DIET's label losses (reference §1.4): Rasa's sampled dot-product loss and a plain softmax,
both single-label, and a sigmoid loss for multi-label intents.

The single-label ones take ``inputs (B, E)`` (e.g. embedded sentences), ``labels (B, E)`` (their
gold label embeddings), ``label_ids (B,)``, and the table of every label ``all_labels (L, E)``
with ``all_label_ids (L,)``; both return ``(loss, accuracy)`` scalars and offer ``confidences``.
Ids may also be vectors (``(B, F)`` / ``(L, F)``, e.g. MLM token ids): equal means all-equal.
:class:`SigmoidLabelLoss` takes ``inputs (B, E)``, multi-hot ``targets (B, L)`` and
``all_labels (L, E)`` instead.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEG_INF = -1e9
LOSS_TYPES = ("cross_entropy", "margin")
SIMILARITY_TYPES = ("auto", "inner", "cosine")


def _same_id(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise id equality; vector ids (trailing feature axis) must match on every feature."""
    equal = a == b
    return equal.all(dim=-1) if a.dim() > 2 or b.dim() > 2 else equal


class DotProductLoss(nn.Module):
    """Rasa's ``SingleLabelDotProductLoss`` with sampled negatives.

    Per example, ``num_negatives`` labels from ``all_labels`` and ``num_negatives`` inputs from the
    batch are drawn uniformly with replacement (``torch.randint``: seed with
    ``torch.manual_seed``). Negatives with the positive's id get ``-1e9`` ("bad negatives").
    """

    def __init__(
        self,
        num_negatives: int = 20,
        loss_type: str = "cross_entropy",
        similarity_type: str = "auto",
        constrain_similarities: bool = True,
        scale_loss: bool = False,
        max_pos_sim: float = 0.8,
        max_neg_sim: float = -0.4,
        use_max_neg_sim: bool = True,
        neg_margin_scale: float = 0.8,
    ) -> None:
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
        if similarity_type not in SIMILARITY_TYPES:
            raise ValueError(
                f"similarity_type must be one of {SIMILARITY_TYPES}, got {similarity_type!r}"
            )
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        if similarity_type == "auto":
            similarity_type = "inner" if loss_type == "cross_entropy" else "cosine"
        self.num_negatives = num_negatives
        self.loss_type, self.similarity_type = loss_type, similarity_type
        self.constrain_similarities, self.scale_loss = constrain_similarities, scale_loss
        self.max_pos_sim, self.max_neg_sim = max_pos_sim, max_neg_sim
        self.use_max_neg_sim, self.neg_margin_scale = use_max_neg_sim, neg_margin_scale

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> "DotProductLoss":
        """From a model config with Rasa's key names (``DIETConfig``, ``TEDConfig``);
        ``overrides`` replace single arguments (e.g. DIET's unscaled masked-LM loss)."""
        arguments = {"num_negatives": config.number_of_negative_examples,
                     "loss_type": config.loss_type, "similarity_type": config.similarity_type,
                     "constrain_similarities": config.constrain_similarities,
                     "scale_loss": config.scale_loss,
                     "max_pos_sim": config.maximum_positive_similarity,
                     "max_neg_sim": config.maximum_negative_similarity,
                     "use_max_neg_sim": config.use_maximum_negative_similarity,
                     "neg_margin_scale": config.negative_margin_scale}
        return cls(**{**arguments, **overrides})

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Similarity along the last axis, broadcasting the others: ``(..., E) → (...)``."""
        if self.similarity_type == "cosine":
            a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        return (a * b).sum(dim=-1)

    def confidences(self, inputs: Tensor, all_labels: Tensor) -> Tensor:
        """``(B, L)``: softmax of the similarities (cross_entropy), or the cosines (margin)."""
        if self.similarity_type == "cosine":
            inputs, all_labels = F.normalize(inputs, dim=-1), F.normalize(all_labels, dim=-1)
        sims = inputs @ all_labels.T  # (B, L)
        return sims.softmax(dim=-1) if self.loss_type == "cross_entropy" else sims

    def forward(
        self,
        inputs: Tensor,
        labels: Tensor,
        label_ids: Tensor,
        all_labels: Tensor,
        all_label_ids: Tensor,
        label_pick: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``label_pick (B, num_negatives)``: rows of ``all_labels`` to take as the label
        negatives, when the caller drew them (to embed only the labels it needs); by default
        drawn here."""
        b, n = inputs.shape[0], self.num_negatives
        if label_pick is None:
            label_pick = torch.randint(all_labels.shape[0], (b, n), device=inputs.device)
        input_pick = torch.randint(b, (b, n), device=inputs.device)
        neg_labels = all_labels[label_pick]  # (B, num_neg, E)
        neg_inputs = inputs[input_pick]  # (B, num_neg, E)
        positive_ids = label_ids[:, None]  # (B, 1) or (B, 1, F)
        bad_labels = _same_id(all_label_ids[label_pick], positive_ids)  # (B, num_neg)
        bad_inputs = _same_id(label_ids[input_pick], positive_ids)  # (B, num_neg)

        x, y = inputs[:, None], labels[:, None]  # (B, 1, E)
        s_pos = self.similarity(inputs, labels)[:, None]  # (B, 1)
        s_il = self.similarity(x, neg_labels).masked_fill(bad_labels, NEG_INF)  # (B, num_neg)
        s_li = self.similarity(y, neg_inputs).masked_fill(bad_inputs, NEG_INF)  # (B, num_neg)
        s_ii = self.similarity(x, neg_inputs).masked_fill(bad_inputs, NEG_INF)  # (B, num_neg)
        s_ll = self.similarity(y, neg_labels).masked_fill(bad_labels, NEG_INF)  # (B, num_neg)

        if self.loss_type == "cross_entropy":
            loss = self._cross_entropy(s_pos, s_il, s_li, s_ii, s_ll)  # (B,)
        else:
            loss = self._margin(s_pos, s_il, s_li, s_ii, s_ll)  # (B,)
        accuracy = (s_pos[:, 0] >= s_il.max(dim=-1).values).float().mean()
        return loss.mean(), accuracy

    def _cross_entropy(
        self, s_pos: Tensor, s_il: Tensor, s_li: Tensor, s_ii: Tensor, s_ll: Tensor
    ) -> Tensor:
        terms = [s_pos, s_il, s_li]
        if not self.constrain_similarities:
            terms += [s_ii, s_ll]
        logits = torch.cat(terms, dim=-1)  # (B, 1 + k·num_neg)
        loss = -logits.log_softmax(dim=-1)[:, 0]  # (B,) target: the positive at index 0
        if self.constrain_similarities:
            # sigmoid CE: 1 for s_pos, 0 for every negative; a bad negative (-1e9) adds exactly 0
            every = torch.cat([s_pos, s_il, s_ll, s_ii, s_li], dim=-1)  # (B, 1 + 4·num_neg)
            targets = torch.zeros_like(every)
            targets[:, 0] = 1.0
            sigmoid = F.binary_cross_entropy_with_logits(every, targets, reduction="none")
            loss = loss + sigmoid.mean(dim=-1)  # averaged over the logits axis
        if self.scale_loss:
            loss = loss * _focal_scale(loss)
        return loss

    def _margin(
        self, s_pos: Tensor, s_il: Tensor, s_li: Tensor, s_ii: Tensor, s_ll: Tensor
    ) -> Tensor:
        loss = F.relu(self.max_pos_sim - s_pos[:, 0])  # (B,)
        if self.use_max_neg_sim:
            loss = loss + F.relu(self.max_neg_sim + s_il.max(dim=-1).values)
        else:
            loss = loss + F.relu(self.max_neg_sim + s_il).sum(dim=-1)
        for sims in (s_ll, s_ii, s_li):
            hardest = sims.max(dim=-1).values  # (B,)
            loss = loss + self.neg_margin_scale * F.relu(self.max_neg_sim + hardest)
        return loss

    def extra_repr(self) -> str:
        return (
            f"num_negatives={self.num_negatives}, loss_type={self.loss_type}, "
            f"similarity_type={self.similarity_type}, "
            f"constrain_similarities={self.constrain_similarities}, scale_loss={self.scale_loss}"
        )


def _focal_scale(loss: Tensor) -> Tensor:
    """Rasa's ``scale_loss``: ``((1 - p) / 0.5) ** 4`` with ``p = exp(-loss)``, no gradient,
    used only once some example in the batch has ``p > 0.5``."""
    p = torch.exp(-loss.detach())  # (B,)
    if p.max() <= 0.5:
        return torch.ones_like(p)
    return ((1.0 - p) / 0.5) ** 4


class SoftmaxLabelLoss(nn.Module):
    """Full softmax cross-entropy over ``inputs @ all_labels.T``; no sampling, no margins.

    The target is the position of each ``label_ids`` entry in ``all_label_ids``; ``labels`` is
    accepted for a signature shared with :class:`DotProductLoss` and not used.
    """

    def confidences(self, inputs: Tensor, all_labels: Tensor) -> Tensor:
        """``(B, L)`` softmax over inner similarities."""
        return (inputs @ all_labels.T).softmax(dim=-1)

    def forward(
        self,
        inputs: Tensor,
        labels: Tensor,
        label_ids: Tensor,
        all_labels: Tensor,
        all_label_ids: Tensor,
    ) -> tuple[Tensor, Tensor]:
        matches = _same_id(label_ids[:, None], all_label_ids[None])  # (B, L)
        if not bool(matches.any(dim=-1).all()):
            missing = label_ids[~matches.any(dim=-1)]
            raise ValueError(f"label ids {missing.tolist()} are not in all_label_ids")
        targets = matches.int().argmax(dim=-1)  # (B,)
        logits = inputs @ all_labels.T  # (B, L)
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(dim=-1) == targets).float().mean()
        return loss, accuracy


class SigmoidLabelLoss(nn.Module):
    """Multi-label: one independent sigmoid per label over ``inputs @ all_labels.T`` plus a
    learned bias (the prior of a label being present), trained with binary cross-entropy
    against multi-hot targets, summed over the labels and averaged over the rows (the negative
    log-likelihood of independent Bernoulli labels, as softmax cross-entropy is that of one
    categorical label). Confidences do not sum to 1. The accuracy is exact-set accuracy of
    :func:`predicted_label_sets` at ``threshold``.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = threshold
        self.bias = nn.Parameter(torch.zeros(()))

    def logits(self, inputs: Tensor, all_labels: Tensor) -> Tensor:
        return inputs @ all_labels.T + self.bias                            # (B, L)

    def confidences(self, inputs: Tensor, all_labels: Tensor) -> Tensor:
        """``(B, L)`` independent sigmoid confidences."""
        return self.logits(inputs, all_labels).sigmoid()

    def forward(self, inputs: Tensor, targets: Tensor, all_labels: Tensor
                ) -> tuple[Tensor, Tensor]:
        logits = self.logits(inputs, all_labels)                            # (B, L)
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        predicted = predicted_label_sets(logits.detach().sigmoid(), self.threshold)
        accuracy = (predicted == (targets > 0.5)).all(dim=-1).float().mean()
        return loss.sum(dim=-1).mean(), accuracy

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


def predicted_label_sets(confidences: Tensor, threshold: float) -> Tensor:
    """``(B, L)`` bool: the labels whose confidence reaches ``threshold``; the top label alone
    in a row where none does (a multi-label prediction is never empty)."""
    chosen = confidences >= threshold                                       # (B, L)
    top = F.one_hot(confidences.argmax(dim=-1), confidences.shape[-1]).bool()  # (B, L)
    return torch.where(chosen.any(dim=-1, keepdim=True), chosen, top)
