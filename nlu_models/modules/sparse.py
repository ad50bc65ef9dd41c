"""Sparse input features as padded bags, their dropout, and their projection to dense vectors.

A sparse feature row (one token, or one sentence) is a bag of ``K`` (id, value) pairs:
``ids`` is a ``LongTensor (..., K)`` with 1-based feature ids and 0 for padding, ``values`` a
``FloatTensor (..., K)`` with 0 at padding. Column ``c`` of a featurizer's matrix is id ``c + 1``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlu_models.modules.regularization import keep_mask


class SparseDropout(nn.Module):
    """Rasa's ``SparseDropout``: zero each stored entry with probability ``rate``, no rescaling.

    Works on the ``values`` of a padded bag; identity in eval mode or when ``rate == 0``.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, values: Tensor) -> Tensor:
        if not self.training or self.rate == 0.0:
            return values
        return values * keep_mask(values.shape, self.rate, values.device)  # (..., K)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class DenseForSparse(nn.Module):
    """Rasa's ``DenseForSparse``: ``one_hot_matrix @ W + b`` without building the dense matrix.

    The kernel ``W`` is the table of an ``nn.EmbeddingBag(vocab_size + 1, out_features,
    mode="sum", padding_idx=0)``; row 0 is padding, stays zero and gets no gradient, so the
    output for a bag is ``Σ_k values[k] · W[ids[k]] + b``. ``weight`` is that table (for L2).
    Initialisation as Keras' ``Dense`` in Rasa: Glorot-uniform over the ``(vocab_size,
    out_features)`` kernel, zero bias.
    """

    def __init__(self, vocab_size: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        if vocab_size < 1 or out_features < 1:
            raise ValueError(
                f"vocab_size and out_features must be >= 1, got {vocab_size} and {out_features}"
            )
        self.vocab_size = vocab_size
        self.out_features = out_features
        self.bag = nn.EmbeddingBag(vocab_size + 1, out_features, mode="sum", padding_idx=0)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.reset_parameters()

    @property
    def weight(self) -> Tensor:
        """The kernel as an embedding table, ``(vocab_size + 1, out_features)``; row 0 is zero."""
        return self.bag.weight

    def reset_parameters(self) -> None:
        limit = math.sqrt(6.0 / (self.vocab_size + self.out_features))
        with torch.no_grad():
            self.bag.weight.uniform_(-limit, limit)
            self.bag.weight[0].zero_()
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, ids: Tensor, values: Tensor, offsets: Tensor | None = None) -> Tensor:
        """Padded bags ``ids, values (..., K)`` → ``(..., out)``; or, with ``offsets (N,)``
        (the start of each bag), flat bags ``ids, values (nnz,)`` → ``(N, out)``.

        Flat bags skip the padding entirely: a batch's padded (B, T, K) grid is mostly padding,
        and EmbeddingBag's backward allocates a row per entry, so this saves time and memory.
        """
        if ids.shape != values.shape:
            raise ValueError(f"ids {tuple(ids.shape)} and values {tuple(values.shape)} differ")
        weight = self.bag.weight
        if offsets is not None:
            if ids.numel() == 0:
                out = weight.new_zeros(offsets.shape[0], self.out_features)  # (N, out)
            else:
                out = self.bag(ids, offsets, per_sample_weights=values.to(weight.dtype))
            return out + self.bias if self.bias is not None else out  # (N, out)
        *lead, k = ids.shape
        rows = math.prod(lead)
        if k == 0 or rows == 0:
            out = weight.new_zeros(rows, self.out_features)  # (N, out)
        else:
            out = self.bag(
                ids.reshape(rows, k),  # (N, K)
                per_sample_weights=values.reshape(rows, k).to(weight.dtype),  # (N, K)
            )  # (N, out)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*lead, self.out_features)  # (..., out)

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
