"""Fine-tuning a trained DIET on data with new intents, entities or words.

The data module extends the old model's featurizers and labels by the new data's
(``NLUDataModule.prepare(pipeline, labels, extend=True)``: old ids kept, new ones appended), a
:class:`DIETModel` is built for the grown sizes, and :func:`grow_diet` copies the old weights
into it: the sparse input projections' rows of the old vocabulary, the intent label features of
the old intents, the tag heads' and CRF transitions' rows and columns of the old tags, and
every weight whose shape does not depend on the data whole. New rows keep their fresh
initialisation. ``python -m experiments.train experiment=diet_demo init_from=PATH`` does all of
this (PATH: a DIET checkpoint or an ``nlu`` bundle).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from nlu_models.diet.labels import DIETLabels
from nlu_models.diet.model import TAG_HEADS, DIETModel
from nlu_models.featurize import FeaturizerPipeline
from nlu_models.inference import NLUInterpreter
from nlu_models.modules.growth import (
    IndexMaps,
    check_same_config,
    describe_growth,
    grow_state_dict,
    positions_of,
)

# the DIETConfig keys a grown label set or vocabulary changes; anything else must match
GROWN_KEYS = ("seq_sparse_dim", "sent_sparse_dim", "num_intents", "num_entity_tags",
              "num_role_tags", "num_group_tags")
HEAD_NAMES = {"entity": "entities", "role": "roles", "group": "groups"}


def load_trained(path: str | Path) -> NLUInterpreter:
    """The DIET to continue from: a training checkpoint (``.ckpt``) or an ``nlu`` bundle."""
    return NLUInterpreter.load(path)


def grow_diet(old: NLUInterpreter, model: DIETModel, pipeline: FeaturizerPipeline,
              labels: DIETLabels, selector: DIETModel | None = None) -> str:
    """Copy ``old``'s weights into ``model``, built for ``pipeline`` and ``labels`` (which
    extend ``old``'s), and those of its response selector into ``selector`` (when both have
    one; else the new selector starts fresh); returns what grew, e.g. ``"intents: 16 → 17
    (+ask_price); ..."``. Raises a ``ValueError`` naming the keys when the configs differ in
    more than sizes."""
    check_same_config(old.model.config.to_dict(), model.config.to_dict(), GROWN_KEYS, "DIET")
    maps = index_maps(old, pipeline, labels)
    model.load_state_dict(grow_state_dict(old.model.state_dict(), model, maps))
    grown = []
    if selector is not None and old.response_selector is not None:
        check_same_config(old.response_selector.config.to_dict(), selector.config.to_dict(),
                          GROWN_KEYS, "response selector")
        maps = index_maps(old, pipeline, labels, responses=True)
        selector.load_state_dict(grow_state_dict(old.response_selector.state_dict(), selector,
                                                 maps))
        grown.append(describe_growth("response keys", old.labels.response_keys,
                                     labels.response_keys))
    return "; ".join([
        describe_growth("intents", old.labels.intents, labels.intents), *grown,
        *(describe_growth(HEAD_NAMES[head], old.labels.names(head), labels.names(head))
          for head in TAG_HEADS if labels.names(head)),
        describe_growth("sequence features", old.pipeline.seq_vocab_size,
                        pipeline.seq_vocab_size),
        describe_growth("sentence features", old.pipeline.sent_vocab_size,
                        pipeline.sent_vocab_size)])


def index_maps(old: NLUInterpreter, pipeline: FeaturizerPipeline, labels: DIETLabels,
               responses: bool = False) -> IndexMaps:
    """For each DIET parameter with a data-sized dimension, where the old entries go (of the
    response selector, whose labels are the response keys, with ``responses``)."""
    seq, sent = (torch.from_numpy(columns) for columns in pipeline.column_maps(old.pipeline))
    if responses:
        intents = positions_of(old.labels.response_keys, labels.response_keys, "response keys")
    else:
        intents = positions_of(old.labels.intents, labels.intents, "intents")
    tags = {head: positions_of(old.labels.tags(head), labels.tags(head), f"{head} tags")
            for head in TAG_HEADS}
    maps: dict[str, dict[int, Tensor]] = {
        # the sparse projections' tables: row 0 is padding, row c + 1 is column c
        "seq_input.dense_for_sparse.bag.weight": {0: _with_padding_row(seq)},
        "sent_input.dense_for_sparse.bag.weight": {0: _with_padding_row(sent)},
        "label_features.weight": {1: intents},                  # (dense_label, intents)
        "entity_tag_embed.weight": {1: tags["entity"]},         # (embedding, entity tags)
    }
    for head in TAG_HEADS:
        if not old.labels.names(head):
            continue  # the old model had no such head: the new one starts fresh
        maps[f"tag_logits.{head}.weight"] = {0: tags[head]}    # (tags, hidden)
        maps[f"tag_logits.{head}.bias"] = {0: tags[head]}
        maps[f"crfs.{head}.transitions"] = {0: tags[head], 1: tags[head]}
    old_state = (old.response_selector if responses else old.model).state_dict()
    return {name: dims for name, dims in maps.items() if name in old_state}


def _with_padding_row(columns: Tensor) -> Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), columns + 1])


__all__ = ["GROWN_KEYS", "grow_diet", "index_maps", "load_trained"]
