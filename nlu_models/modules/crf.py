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
        b, t, _ = emissions.shape
        if t == 0:
            return emissions.new_zeros(b)
        mask = _length_mask(lengths, t)  # (B, T)
        tags = tags.masked_fill(~mask, 0)  # (B, T)

        unary = emissions.gather(-1, tags[..., None]).squeeze(-1)  # (B, T)
        binary = self.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        gold = torch.where(mask, unary, 0.0).sum(1) + torch.where(mask[:, 1:], binary, 0.0).sum(1)

        # logsumexp_i(alpha_i + trans_ij) as a matmul in shifted exp space: with many tags (ATIS
        # has 300+) this is several times faster than materialising (B, L, L) every step.
        trans_max = self.transitions.max(dim=0, keepdim=True).values  # (1, L)
        exp_trans = (self.transitions - trans_max).exp()  # (L, L), entries in (0, 1]
        # unbind, not emissions[:, step]: the backward of each slice would fill a whole
        # (B, T, L) gradient with zeros, T times per batch
        steps = emissions.unbind(dim=1)  # T × (B, L)
        alpha = steps[0]  # (B, L)
        for step in range(1, t):
            alpha_max = alpha.max(dim=-1, keepdim=True).values  # (B, 1)
            summed = (alpha - alpha_max).exp() @ exp_trans  # (B, L)
            advanced = summed.clamp_min(1e-30).log() + alpha_max + trans_max \
                + steps[step]  # (B, L)
            alpha = torch.where(mask[:, step, None], advanced, alpha)  # (B, L)
        log_partition = torch.logsumexp(alpha, dim=-1)  # (B,)
        return torch.where(lengths > 0, gold - log_partition, 0.0)  # (B,)

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
