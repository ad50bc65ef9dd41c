"""Rasa's pre-LayerNorm transformer encoder, with optional Shaw et al. (2018) relative attention.

Order of operations in :class:`TransformerEncoder` (reference §1.3 (e)): input projection →
``× sqrt(units)`` → sinusoidal absolute positions (always) → dropout → pre-LN layers → final
LayerNorm. The caller applies the final GELU. Padded keys get ``-1e9`` added to their attention
logits, so padded positions never influence real ones.

In training, every position-wise step (projections, LayerNorms, the feed-forward block, dropout)
runs on the real positions only, packed into ``(N, E)`` rows, and only the attention itself sees
the padded ``(B, T)`` layout: batches mix short and long utterances (ATIS: 12 real positions of
33 on average), so this skips most of the work on padding. The real positions' results are the
same as with padding; padded positions come out as zeros (they are never read). A caller that
has its inputs packed already hands them over as they are (TED's turns), and ``first_only``
(TED's max-history mode) computes only position 0 in the last layer, packed or not. Under CPU
bfloat16 autocast the packed row count is rounded up to a multiple of 32 (:func:`row_multiple`),
so oneDNN reuses its compiled kernels instead of building new ones for every batch.
Extra legend: ``R`` = number of relative distances (``2·max + 1``, or ``max + 1`` when
unidirectional), ``D = E / H`` the head size.
"""
from __future__ import annotations

import math
from typing import Literal, overload

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from nlu_models.modules.dense import RandomlyConnectedDense
from nlu_models.modules.regularization import Dropout

NEG_INF = -1e9


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Vaswani et al. positions, ``(length, dim)``: sin on even features, cos on odd ones."""
    position = torch.arange(length, dtype=torch.float32, device=device)[:, None]  # (T, 1)
    pair = torch.arange(0, dim, 2, dtype=torch.float32, device=device)  # (ceil(E/2),)
    angles = position / torch.pow(10000.0, pair / dim)  # (T, ceil(E/2))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return table  # (T, E)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with padding / causal masks and optional relative positions.

    Q, K, V are :class:`RandomlyConnectedDense` without bias, the output projection has a bias;
    ``density`` applies to all four. Relative positions (Shaw et al. 2018): per-head embeddings
    of the distance ``j − i`` clipped to ``[−max, max]`` (``[−max, 0]`` when unidirectional) are
    added to the keys in the logits and/or to the values in the weighted sum. Attention dropout
    acts on the probabilities (Rasa instead adds ``-1e9`` to random logits).
    """

    def __init__(
        self,
        units: int,
        num_heads: int,
        attention_dropout: float = 0.0,
        density: float = 1.0,
        unidirectional: bool = False,
        use_key_relative_position: bool = False,
        use_value_relative_position: bool = False,
        max_relative_position: int = 5,
    ) -> None:
        super().__init__()
        if units % num_heads != 0:
            raise ValueError(f"units ({units}) must be divisible by num_heads ({num_heads})")
        if max_relative_position < 1:
            raise ValueError(f"max_relative_position must be >= 1, got {max_relative_position}")
        self.units, self.num_heads, self.head_size = units, num_heads, units // num_heads
        self.unidirectional = unidirectional
        self.max_relative_position = max_relative_position
        self.query = RandomlyConnectedDense(units, units, bias=False, density=density)
        self.key = RandomlyConnectedDense(units, units, bias=False, density=density)
        self.value = RandomlyConnectedDense(units, units, bias=False, density=density)
        self.output = RandomlyConnectedDense(units, units, bias=True, density=density)
        self.dropout = Dropout(attention_dropout)
        num_distances = max_relative_position + 1
        if not unidirectional:
            num_distances += max_relative_position
        self.key_relative = self._relative_table(use_key_relative_position, num_distances)
        self.value_relative = self._relative_table(use_value_relative_position, num_distances)

    def _relative_table(self, used: bool, num_distances: int) -> nn.Parameter | None:
        if not used:
            return None
        table = torch.empty(self.num_heads, num_distances, self.head_size)  # (H, R, D)
        return nn.Parameter(nn.init.xavier_uniform_(table))

    def _relative_index(self, length: int, device: torch.device) -> Tensor:
        """Index into the relative tables of the clipped distance ``j − i``, ``(T, T)``."""
        pos = torch.arange(length, device=device)
        distance = pos[None, :] - pos[:, None]  # (T, T)
        high = 0 if self.unidirectional else self.max_relative_position
        return distance.clamp(-self.max_relative_position, high) + self.max_relative_position

    def _split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_size).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: Tensor, pad_mask: Tensor | None = None,
                num_queries: int | None = None, packed: "Packing | None" = None,
                need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """``x (B, T, E)``, ``pad_mask (B, T)`` True = real → ``(B, Q, E)``, ``(B, H, Q, T)``.

        ``num_queries``: only the first ``Q`` positions attend (all ``T`` are still attended
        to); ``None`` = all, ``Q = T``. The outputs equal the first rows of the full result.
        ``packed``: ``x`` is the real positions only, ``(N, E)``, and so is the output; with
        ``num_queries`` the output is the padded ``(B, Q, E)``. ``need_weights=False`` lets
        training attend with PyTorch's fused kernel (see :meth:`_attend`); the weights are
        then ``None``."""
        if packed is not None:  # project the real rows, attend in the padded layout
            k, v = packed.unpack(self.key(x)), packed.unpack(self.value(x))  # (B, T, E)
            if num_queries is None:
                q = packed.unpack(self.query(x))  # (B, T, E)
            else:
                q = self.query(packed.unpack(x)[:, :num_queries])  # (B, Q, E)
            out, weights = self._attend(q / math.sqrt(self.head_size), k, v, pad_mask,
                                        num_queries, need_weights)
            if num_queries is None:
                out = packed.pack(out)  # (N, E)
            return self.output(out), weights  # (N, E) | (B, Q, E), (B, H, Q, T)
        n = x.shape[1] if num_queries is None else num_queries
        out, weights = self._attend(self.query(x[:, :n]) / math.sqrt(self.head_size),
                                    self.key(x), self.value(x), pad_mask, num_queries,
                                    need_weights)
        return self.output(out), weights  # (B, Q, E), (B, H, Q, T)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, pad_mask: Tensor | None,
                num_queries: int | None, need_weights: bool = True
                ) -> tuple[Tensor, Tensor | None]:
        """Scaled projections ``q (B, Q, E)``, ``k, v (B, T, E)`` → ``(B, Q, E)`` before the
        output projection, and the attention weights.

        In training without relative positions or attention dropout, and when the weights are
        not asked for, PyTorch's fused ``scaled_dot_product_attention`` computes the same
        result (masked keys get no weight either way; every query has at least its first key)
        in ~25 % less time, forward and backward, with no ``(B, H, Q, T)`` weights kept. Not
        in bfloat16 on CPU, where the fused kernel took 3× the time of the products below."""
        b, t, _ = k.shape
        n = t if num_queries is None else num_queries
        q = self._split_heads(q)  # (B, H, Q, D)
        k = self._split_heads(k)  # (B, H, T, D)
        v = self._split_heads(v)  # (B, H, T, D)
        if (self.training and not need_weights and self.key_relative is None
                and self.value_relative is None and self.dropout.p == 0.0
                and (q.dtype == torch.float32 or q.device.type != "cpu")):
            allowed = None if pad_mask is None else pad_mask.bool()[:, None, None, :]
            if self.unidirectional:
                past = torch.ones(t, t, dtype=torch.bool, device=k.device).tril()[:n]  # (Q, T)
                allowed = past if allowed is None else allowed & past
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0)
            return out.transpose(1, 2).reshape(b, n, self.units), None  # (B, Q, E)

        logits = q @ k.transpose(-2, -1)  # (B, H, Q, T)
        relative = None
        if self.key_relative is not None or self.value_relative is not None:
            relative = self._relative_index(t, k.device)[:n].expand(b, self.num_heads, n, t)
        if self.key_relative is not None:
            by_distance = q @ self.key_relative.transpose(-2, -1)  # (B, H, Q, R)
            logits = logits + by_distance.gather(-1, relative)  # (B, H, Q, T)
        if pad_mask is not None:
            logits = logits + (~pad_mask.bool())[:, None, None, :] * NEG_INF  # (B, H, Q, T)
        if self.unidirectional:
            future = torch.ones(t, t, dtype=torch.bool, device=k.device).triu(1)[:n]  # (Q, T)
            logits = logits + future * NEG_INF

        weights = logits.softmax(dim=-1)  # (B, H, Q, T)
        probs = self.dropout(weights)
        out = probs @ v  # (B, H, Q, D)
        if self.value_relative is not None:
            # sum the probabilities that fall on each clipped distance, then mix the embeddings
            by_distance = probs.new_zeros(b, self.num_heads, n, self.value_relative.shape[1])
            by_distance.scatter_add_(-1, relative, probs)  # (B, H, Q, R)
            out = out + by_distance @ self.value_relative  # (B, H, Q, D)
        return out.transpose(1, 2).reshape(b, n, self.units), weights  # (B, Q, E), (B, H, Q, T)

    def extra_repr(self) -> str:
        return (
            f"units={self.units}, num_heads={self.num_heads}, "
            f"unidirectional={self.unidirectional}, "
            f"key_relative={self.key_relative is not None}, "
            f"value_relative={self.value_relative is not None}, "
            f"max_relative_position={self.max_relative_position}"
        )


class TransformerEncoderLayer(nn.Module):
    """Pre-LN layer: ``x + Dropout(MHA(LN(x)))``, then ``x + FFN(x)`` with
    ``FFN = LN → Dense(ffn_units) → GELU → Dropout → Dense(units) → Dropout``."""

    def __init__(
        self,
        units: int,
        num_heads: int,
        ffn_units: int | None = None,
        dropout: float = 0.2,
        attention_dropout: float = 0.0,
        density: float = 0.2,
        unidirectional: bool = False,
        use_key_relative_position: bool = False,
        use_value_relative_position: bool = False,
        max_relative_position: int = 5,
    ) -> None:
        super().__init__()
        ffn_units = 4 * units if ffn_units is None else ffn_units
        self.attention_norm = nn.LayerNorm(units, eps=1e-6)
        self.attention = MultiHeadAttention(
            units,
            num_heads,
            attention_dropout=attention_dropout,
            density=density,
            unidirectional=unidirectional,
            use_key_relative_position=use_key_relative_position,
            use_value_relative_position=use_value_relative_position,
            max_relative_position=max_relative_position,
        )
        self.attention_dropout = Dropout(dropout)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(units, eps=1e-6),
            RandomlyConnectedDense(units, ffn_units, density=density),
            nn.GELU(),
            Dropout(dropout),
            RandomlyConnectedDense(ffn_units, units, density=density),
            Dropout(dropout),
        )

    def forward(self, x: Tensor, pad_mask: Tensor | None = None,
                num_queries: int | None = None, packed: "Packing | None" = None,
                need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """``num_queries``: compute only the first ``Q`` output positions (see attention);
        ``packed``: ``x`` holds the real positions only, ``(N, E)`` (see the module doc);
        ``need_weights=False``: the weights may come back as ``None`` (see attention)."""
        attended, weights = self.attention(self.attention_norm(x), pad_mask,
                                           num_queries, packed,
                                           need_weights)  # (B, Q, E) | (N, E)
        if packed is None:
            x = x[:, :attended.shape[1]]
        elif num_queries is not None:  # packed in, the first Q positions out
            x = packed.unpack(x)[:, :num_queries]  # (B, Q, E)
        x = x + self.attention_dropout(attended)
        x = x + self.feed_forward(x)
        return x, weights  # (B, Q, E) | (N, E), (B, H, Q, T)


class TransformerEncoder(nn.Module):
    """Rasa's ``TransformerEncoder``; ``num_layers == 0`` makes it the identity.

    ``forward(x (B, T, input_features), pad_mask (B, T) bool, True = real) → (B, T, units)``;
    with ``return_attention=True`` also the per-layer attention weights ``[(B, H, T, T)]``.
    """

    def __init__(
        self,
        input_features: int,
        num_layers: int = 2,
        units: int = 256,
        num_heads: int = 4,
        ffn_units: int | None = None,
        dropout: float = 0.2,
        attention_dropout: float = 0.0,
        density: float = 0.2,
        unidirectional: bool = False,
        use_key_relative_position: bool = False,
        use_value_relative_position: bool = False,
        max_relative_position: int = 5,
    ) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        self.num_layers, self.units = num_layers, units
        self.out_features = units if num_layers > 0 else input_features
        if num_layers == 0:
            return
        self.input_projection = RandomlyConnectedDense(input_features, units, density=density)
        self.input_dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                units,
                num_heads,
                ffn_units=ffn_units,
                dropout=dropout,
                attention_dropout=attention_dropout,
                density=density,
                unidirectional=unidirectional,
                use_key_relative_position=use_key_relative_position,
                use_value_relative_position=use_value_relative_position,
                max_relative_position=max_relative_position,
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(units, eps=1e-6)

    @overload
    def forward(
        self, x: Tensor, pad_mask: Tensor | None = ..., return_attention: Literal[False] = ...,
        first_only: bool = ..., packed: "Packing | None" = ...,
    ) -> Tensor: ...

    @overload
    def forward(
        self, x: Tensor, pad_mask: Tensor | None, return_attention: Literal[True],
        first_only: bool = ..., packed: "Packing | None" = ...,
    ) -> tuple[Tensor, list[Tensor]]: ...

    def forward(
        self, x: Tensor, pad_mask: Tensor | None = None, return_attention: bool = False,
        first_only: bool = False, packed: "Packing | None" = None,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``first_only``: the caller reads position 0 only (TED's max-history mode), so the
        last layer computes just that row: ``(B, 1, E)``, equal to ``full[:, :1]``.
        ``packed``: ``x`` is already the real positions of ``pad_mask``, ``(N, F)`` rows in
        ``packed``'s order (the output is padded all the same); training only."""
        attention: list[Tensor] = []
        if packed is not None and not (self.training and self.num_layers > 0):
            x = packed.unpack(x)  # (B, T, F)
            packed = None
        if self.num_layers > 0 and self.training and pad_mask is not None:
            if packed is None:
                packed = Packing(pad_mask, row_multiple(x.device.type))
                x = packed.pack(x)  # (N, F)
            positions = sinusoidal_positions(pad_mask.shape[1], self.units, x.device)
            rows = self.input_projection(x) * math.sqrt(self.units)             # (N, E)
            rows = self.input_dropout(rows + positions.to(rows.dtype)[packed.positions])
            for index, layer in enumerate(self.layers):
                queries = 1 if first_only and index == len(self.layers) - 1 else None
                rows, weights = layer(rows, pad_mask, queries, packed=packed,
                                      need_weights=return_attention)  # (N|B·1, E)
                attention.append(weights)
            x = self.final_norm(rows)  # (N, E), or (B, 1, E) with first_only
            if not first_only:
                x = packed.unpack(x)  # (B, T, E), zeros on padding
        elif self.num_layers > 0:
            t = x.shape[1]
            x = self.input_projection(x) * math.sqrt(self.units)  # (B, T, E)
            x = x + sinusoidal_positions(t, self.units, x.device).to(x.dtype)  # (B, T, E)
            x = self.input_dropout(x)
            for index, layer in enumerate(self.layers):
                last = index == len(self.layers) - 1
                queries = 1 if first_only and last else None
                x, weights = layer(x, pad_mask, queries,
                                   need_weights=return_attention)  # (B, T|1, E), (B, H, T|1, T)
                attention.append(weights)
            x = self.final_norm(x)  # (B, T|1, E)
        elif first_only:
            x = x[:, :1]
        return (x, attention) if return_attention else x


class Packing:
    """The real positions of a padded ``(B, T)`` batch as ``N`` packed rows: :meth:`pack`
    ``(B, T, F) → (N', F)``, :meth:`unpack` back with zeros on the padding.

    ``multiple`` rounds the row count up, ``N' = ⌈N / multiple⌉ · multiple``: the extra rows
    repeat the first real position, go through the position-wise steps like the others and
    are dropped by :meth:`unpack`, so they change no result (see :func:`row_multiple`).
    ``index`` holds the ``N`` real flat positions ``b·T + t``; ``positions`` the ``t`` of
    each of the ``N'`` rows."""

    def __init__(self, pad_mask: Tensor, multiple: int = 1) -> None:
        self.shape = pad_mask.shape
        self.index = pad_mask.reshape(-1).nonzero().squeeze(1)   # (N,) flat b·T + t
        self.count = self.index.numel()                          # N
        extra = (-self.count) % multiple if self.count else 0
        self.rows = self.index if not extra else \
            torch.cat([self.index, self.index[:1].expand(extra)])  # (N',)
        self.positions = self.rows % self.shape[1]               # (N',) t of each row

    def pack(self, x: Tensor) -> Tensor:
        return x.reshape(-1, x.shape[-1]).index_select(0, self.rows)

    def unpack(self, rows: Tensor) -> Tensor:
        b, t = self.shape
        # in place: the out-of-place index_copy would copy the zeros first (TED: ~6 % of a step)
        out = rows.new_zeros(b * t, rows.shape[-1]).index_copy_(0, self.index, rows[:self.count])
        return out.view(b, t, -1)


ROW_MULTIPLE = 32


def row_multiple(device_type: str) -> int:
    """The row count that packed activations are rounded up to: :data:`ROW_MULTIPLE` under CPU
    autocast (bfloat16), else 1. oneDNN builds a bfloat16 matrix-product kernel for every new
    row count, and packed rows change count with every batch: a (776, 256) × (256, 1024)
    product with its backward took ~6.6 ms at new counts against ~1.5 ms at counts rounded to
    32 (one thread, AMD EPYC Zen 4); float32 products cost the same at any count."""
    if device_type == "cpu" and torch.is_autocast_enabled("cpu"):
        return ROW_MULTIPLE
    return 1


def rows_rounded(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` for a row-wise ``layer``; packed rows ``x (N, F)`` are padded to
    :func:`row_multiple` for the product and cut back after, ``(N, F_out)``."""
    extra = (-x.shape[0]) % row_multiple(x.device.type) if x.dim() == 2 else 0
    if not extra:
        return layer(x)
    return layer(F.pad(x, (0, 0, 0, extra)))[:x.shape[0]]
