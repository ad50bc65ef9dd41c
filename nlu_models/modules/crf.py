"""Linear-chain CRF as Rasa uses it (TF-addons style): one transition matrix, no start/end scores.

The score of a tag path ``y`` of length ``n`` is
``Σ_{t<n} emissions[t, y_t] + Σ_{1≤t<n} transitions[y_{t-1}, y_t]``. Positions at or beyond a
row's length are ignored; rows of length 0 have log-likelihood 0 and decode to nothing.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _full_precision(method):
    """Run a CRF method in float32 even under mixed precision (``trainer=gpu`` uses bf16
    autocast): the forward algorithm's sums of exponentials lose too much in bf16."""
    def wrapper(self, emissions: Tensor, *args: Tensor):
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            return method(self, emissions.float(), *args)
    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


def _length_mask(lengths: Tensor, max_length: int) -> Tensor:
    return torch.arange(max_length, device=lengths.device) < lengths[:, None]  # (B, T)


def time_major(lengths: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """The real positions of ragged rows packed time-major (``PackedSequence``'s layout): rows
    longest first; first every non-empty row's position 0, then position 1 of the rows that
    have one, and so on. Returns each packed position's ``rows (N,)`` and ``steps (N,)`` (so
    ``x[rows, steps]`` packs a ``(B, T, ...)`` tensor) and ``batch_sizes``, the rows in each
    step's block (non-increasing; ``rows[:batch_sizes[0]]`` are the non-empty rows in order)."""
    order = lengths.argsort(descending=True, stable=True)  # (B,)
    longest = int(lengths.max()) if lengths.numel() else 0
    running = lengths[order, None] > torch.arange(longest, device=lengths.device)  # (B, T)
    steps, ranks = running.t().nonzero(as_tuple=True)  # (N,), (N,), time-major
    return order[ranks], steps, running.sum(0).tolist()


class CRF(nn.Module):
    """Linear-chain CRF with ``transitions`` ``(L, L)`` indexed ``[from, to]``.

    Transitions start Glorot-uniform (Keras' default in Rasa). The training loss is
    ``-log_likelihood(...).mean()``; L2 on ``transitions`` is the caller's business.
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1, got {num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_tags, num_tags)))

    def forward(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """Same as :meth:`log_likelihood`."""
        return self.log_likelihood(emissions, tags, lengths)

    @_full_precision
    def log_likelihood(self, emissions: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
        """``log p(tags | emissions)`` per row, ``(B,)``.

        ``emissions (B, T, L)``, ``tags (B, T)`` (anything past a row's length), ``lengths (B,)``.
        """
        out = emissions.new_zeros(emissions.shape[0])
        if emissions.shape[1] == 0 or not bool((lengths > 0).any()):
            return out
        rows, steps, batch_sizes = time_major(lengths)
        packed = self.packed_log_likelihood(emissions[rows, steps], tags[rows, steps],
                                            batch_sizes)
        return out.index_put((rows[:batch_sizes[0]],), packed)

    @_full_precision
    def packed_log_likelihood(self, emissions: Tensor, tags: Tensor,
                              batch_sizes: list[int]) -> Tensor:
        """``log p(tags | emissions)`` of the ``R = batch_sizes[0]`` non-empty rows, longest
        first, ``(R,)``, from their real positions alone, packed time-major as
        :func:`time_major` lays them out: ``emissions (N, L)``, ``tags (N,)``.

        A model that packs its tokens this way never builds the padded ``(B, T, L)``
        emissions, and the forward algorithm advances only the rows still inside their length
        at each step: the work is the number of real tokens, not ``B × T`` (ATIS batches are
        two-thirds padding).
        """
        sizes = torch.tensor(batch_sizes, device=emissions.device)  # (T,)
        total, first = emissions.shape[0], batch_sizes[0]
        starts = sizes.cumsum(0) - sizes  # (T,) where each step's block starts
        positions = torch.arange(total, device=emissions.device)  # (N,)
        ranks = positions - starts.repeat_interleave(sizes)  # (N,) row of each position
        later = positions[first:]  # positions with a predecessor in their row
        previous = later - sizes[:-1].repeat_interleave(sizes[1:])  # the predecessor's position
        unary = emissions.gather(1, tags[:, None]).squeeze(1)  # (N,)
        binary = self.transitions[tags[previous], tags[later]]  # (N - R,)
        gold = unary.new_zeros(first).index_add(0, ranks, unary) \
            .index_add(0, ranks[first:], binary)  # (R,)
        return gold - self._log_partition(emissions.split(batch_sizes))

    def _log_partition(self, blocks: tuple[Tensor, ...]) -> Tensor:
        """``log Σ_y exp(score(y))`` of each row, ``(R,)``, by the forward algorithm over the
        time-major blocks of emissions (``T × (n_t, L)``, ``n_t`` non-increasing).

        ``logsumexp_i(alpha_i + trans_ij)`` is a matmul in shifted exp space: with many tags
        (ATIS has 300+) several times faster than materialising ``(R, L, L)`` every step.
        """
        trans_max = self.transitions.max(dim=0, keepdim=True).values  # (1, L)
        exp_trans = (self.transitions - trans_max).exp()  # (L, L), entries in (0, 1]
        alpha, finished = blocks[0], []  # (R, L); finished: the shorter rows' last alphas
        for block in blocks[1:]:
            running = block.shape[0]
            if running < alpha.shape[0]:
                finished.append(alpha[running:])
                alpha = alpha[:running]  # (n_t, L)
            alpha_max = alpha.max(dim=-1, keepdim=True).values  # (n_t, 1)
            summed = (alpha - alpha_max).exp() @ exp_trans  # (n_t, L)
            alpha = summed.clamp_min(1e-30).log() + alpha_max + trans_max + block  # (n_t, L)
        alphas = torch.cat([alpha, *reversed(finished)])  # (R, L), longest row first
        return torch.logsumexp(alphas, dim=-1)  # (R,)

    @_full_precision
    def decode(self, emissions: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Viterbi path and per-token confidences, both ``(B, T)``; padding gets tag 0, conf 0.

        Confidence is Rasa's heuristic, not a marginal: at step ``t`` take the softmax over tags
        of the max-product forward scores (the Viterbi "alpha" at ``t``, which includes the
        emission at ``t``) and read it at the tag on the decoded path.
        """
        b, t, num_tags = emissions.shape
        if t == 0:
            return emissions.new_zeros(b, 0, dtype=torch.long), emissions.new_zeros(b, 0)
        mask = _length_mask(lengths, t)  # (B, T)
        stay = torch.arange(num_tags, device=emissions.device).expand(b, num_tags)  # (B, L)

        alpha = emissions[:, 0]  # (B, L)
        alphas, backpointers = [alpha], []
        for step in range(1, t):
            scores = alpha[:, :, None] + self.transitions  # (B, L, L) [from, to]
            best, previous = scores.max(dim=1)  # (B, L), (B, L)
            active = mask[:, step, None]  # (B, 1)
            alpha = torch.where(active, best + emissions[:, step], alpha)  # (B, L)
            backpointers.append(torch.where(active, previous, stay))  # padding: keep the tag
            alphas.append(alpha)

        current = alpha.argmax(dim=-1)  # (B,)
        path = [current]
        for previous in reversed(backpointers):
            current = previous.gather(1, current[:, None]).squeeze(1)  # (B,)
            path.append(current)
        tags = torch.stack(path[::-1], dim=1)  # (B, T)

        probs = torch.stack(alphas, dim=1).softmax(dim=-1)  # (B, T, L)
        confidences = probs.gather(-1, tags[..., None]).squeeze(-1)  # (B, T)
        return tags.masked_fill(~mask, 0), confidences.masked_fill(~mask, 0.0)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"
