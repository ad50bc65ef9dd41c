"""Examples as arrays and padded batches: the bridge between fitted featurizers and
:class:`~nlu_models.diet.model.DIETInputs`. No Lightning here, so inference can use it too.

For a DIET that fine-tunes its encoder (``finetune_encoder``), examples carry no dense vectors
(the frozen encoder is never run over the data) and each batch carries the words' sub-token ids
from the dense featurizer's tokenizer instead: :func:`collate_fn` picks the right collate.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch

from nlu_models.data.schema import Message
from nlu_models.diet.labels import HEADS, DIETLabels
from nlu_models.diet.model import DIETInputs
from nlu_models.featurize import FeaturizerPipeline, MessageFeatures


@dataclass
class EncodedExample:
    message: Message
    features: MessageFeatures
    intent_id: int                       # -1 when unknown
    tags: dict[str, np.ndarray]          # head → (T,) tag ids
    response_id: int = -1                # the response selector's label; -1: not a retrieval one
    intent_targets: np.ndarray | None = None  # (L,) multi-hot atomic intents (multi-label)


def encode_examples(messages: Sequence[Message], pipeline: FeaturizerPipeline,
                    labels: DIETLabels, show_progress: bool = False,
                    finetune_encoder: bool = False) -> list[EncodedExample]:
    features = pipeline.transform_many(list(messages), show_progress=show_progress,
                                       dense_vectors=not finetune_encoder)
    encoded = []
    for message, feats in zip(messages, features):
        tags = {head: np.asarray(labels.tag_ids(message, feats.tokens, head), dtype=np.int64)
                for head in HEADS if labels.names(head)}
        targets = labels.intent_targets(message.retrieval_intent)
        encoded.append(EncodedExample(
            message, feats, labels.intent_id(message.retrieval_intent), tags,
            labels.response_id(message),
            None if targets is None else np.asarray(targets, dtype=np.float32)))
    return encoded


def collate_fn(pipeline: FeaturizerPipeline, finetune_encoder: bool = False
               ) -> Callable[[Sequence[EncodedExample]], DIETInputs]:
    """:func:`collate`, or for a fine-tuned encoder one that adds the batch's sub-token ids."""
    if not finetune_encoder:
        return collate
    if pipeline.dense is None or not hasattr(pipeline.dense, "tokenize"):
        raise ValueError("finetune_encoder needs a Hugging Face dense featurizer "
                         "(LanguageModelFeaturizer) in the featurizer pipeline")
    return partial(collate, tokenize_words=pipeline.dense.tokenize)


def collate(examples: Sequence[EncodedExample],
            tokenize_words: Callable[[list[list[str]]], dict[str, torch.Tensor]] | None = None
            ) -> DIETInputs:
    """Pad a list of examples into one :class:`DIETInputs`: tokens to the longest example,
    sparse bags flat (no padding) with offsets. ``tokenize_words`` (the dense featurizer's
    ``tokenize``) adds the encoder's sub-token inputs for a model that fine-tunes it."""
    batch = len(examples)
    lengths = [len(e.features.tokens) for e in examples]
    width = max(max(lengths), 1)
    mask = torch.zeros(batch, width, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    inputs = DIETInputs(mask=mask)
    first = examples[0].features
    # sparse bags are always built (all-padding when a pipeline has no sparse featurizer);
    # the model ignores them when it has no sparse input
    inputs.seq_ids, inputs.seq_values, inputs.seq_offsets = _flat_seq_bags(examples, width)
    inputs.sent_ids, inputs.sent_values, inputs.sent_offsets = _flat_sent_bags(examples)
    if first.seq_dense is not None:
        dim = first.seq_dense.shape[-1]
        seq_dense = torch.zeros(batch, width, dim)
        for b, e in enumerate(examples):
            seq_dense[b, :lengths[b]] = torch.from_numpy(e.features.seq_dense[:lengths[b]])
        inputs.seq_dense = seq_dense
        inputs.sent_dense = torch.from_numpy(np.stack([e.features.sent_dense for e in examples]))
    if tokenize_words is not None:
        sub_tokens = tokenize_words([[t.text for t in e.features.tokens] for e in examples])
        inputs.encoder_input_ids = sub_tokens["input_ids"]                  # (B, S)
        inputs.encoder_attention_mask = sub_tokens["attention_mask"]        # (B, S)
        inputs.encoder_word_index = sub_tokens["word_index"]                # (B, S)
    inputs.intent_ids = torch.tensor([e.intent_id for e in examples], dtype=torch.long)
    inputs.response_ids = torch.tensor([e.response_id for e in examples], dtype=torch.long)
    if examples[0].intent_targets is not None:
        inputs.intent_targets = torch.from_numpy(np.stack([e.intent_targets for e in examples]))
    for head in HEADS:
        if head in examples[0].tags:
            tags = torch.zeros(batch, width, dtype=torch.long)
            for b, e in enumerate(examples):
                tags[b, :lengths[b]] = torch.from_numpy(e.tags[head])
            setattr(inputs, f"{head}_tags", tags)
    return inputs


def _flat_seq_bags(examples: Sequence[EncodedExample], width: int):
    """All token bags of the batch back to back; padded token rows get empty bags."""
    return flat_bags([(e.features.seq_ids, e.features.seq_values,
                       np.diff(e.features.seq_indptr)) for e in examples], width)


def flat_bags(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], width: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of sparse bags, each row ``(ids, values, counts)`` with one count per bag (at most
    ``width`` bags), as flat ``ids``, ``values`` ``(nnz,)`` and the start of every bag
    ``(B·width,)``: the bags past a row's count (padding) are empty. DIET's tokens and TED's
    user-text turns come in this layout."""
    sizes = np.zeros((len(rows), width), dtype=np.int64)          # (B, width) entries per bag
    for b, (_, _, counts) in enumerate(rows):
        sizes[b, :len(counts)] = counts
    offsets = np.concatenate([[0], np.cumsum(sizes.ravel())[:-1]])  # (B·width,)
    ids = np.concatenate([i for i, _, _ in rows]).astype(np.int64)
    values = np.concatenate([v for _, v, _ in rows]).astype(np.float32)
    return torch.from_numpy(ids), torch.from_numpy(values), torch.from_numpy(offsets)


def _flat_sent_bags(examples: Sequence[EncodedExample]):
    ids = np.concatenate([e.features.sent_ids for e in examples]).astype(np.int64)
    values = np.concatenate([e.features.sent_values for e in examples]).astype(np.float32)
    sizes = np.array([len(e.features.sent_ids) for e in examples], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # (B,)
    return torch.from_numpy(ids), torch.from_numpy(values), torch.from_numpy(offsets)
