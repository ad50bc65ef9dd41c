"""Rasa's ``ResponseSelector``: retrieval intents (``faq/ask_name``, ``chitchat/greet``) answered
by a second DIET that picks the response key.

In Rasa the ResponseSelector is DIET forced to intent classification only, with other defaults
(DIET_TED_REFERENCE.md §2); its labels are the full ``intent_response_key``\\ s and it reads the
same features as the intent classifier. Here it is exactly that: a :class:`DIETModel` built from
the intent classifier's input sizes and :data:`RESPONSE_SELECTOR_DEFAULTS` (beside a DIET that
fine-tunes its encoder, it reads that encoder's word and sentence vectors), trained beside DIET
in the same Lightning run (its loss on each batch's retrieval examples is added to DIET's; the
two share no parameters, so each learns as if alone) and saved in the same checkpoint and
bundle. The intent classifier meanwhile learns the collapsed intent (``faq``), so a story can
say ``intent: faq`` → ``action: utter_faq`` and the action utters the selected response.

One selector covers every retrieval intent (Rasa's default ``retrieval_intent: None``); its
result is filed under ``default`` in the parse result's ``response_selector``. Labels are
one-hot, like DIET's intents (Rasa's DIET2BOW: the bag of words of ``faq/ask_name``, whose
second token is unique to each key); ``use_text_as_label`` (DIET2DIET) is not implemented.
"""
from __future__ import annotations

from dataclasses import MISSING, fields, replace
from typing import Any, Mapping

import torch

from nlu_models.diet.model import DIETConfig, DIETInputs, DIETModel

# ResponseSelector's defaults where they differ from DIETClassifier's (Rasa 3.6), plus the
# tasks it is forced to; ``constrain_similarities`` as Rasa's default config.yml sets it.
RESPONSE_SELECTOR_DEFAULTS: dict[str, Any] = {
    "hidden_layers_text": [256, 128],
    "hidden_layers_label": [256, 128],
    "number_of_transformer_layers": 0,
    "dense_dimension_text": 512,
    "dense_dimension_label": 512,
    "concat_dimension_text": 512,
    "scale_loss": True,
    "connection_density": 1.0,
    "use_sparse_input_dropout": False,
    "use_dense_input_dropout": False,
    "constrain_similarities": True,
}
_FORCED = {"intent_classification": True, "entity_recognition": False,
           "use_masked_language_model": False, "finetune_encoder": False}
_FROM_DIET = ("seq_sparse_dim", "sent_sparse_dim", "dense_dim")


def selector_config(diet: DIETConfig, num_keys: int,
                    overrides: Mapping[str, Any] | None = None) -> DIETConfig:
    """The selector's config: the intent classifier's input sizes, Rasa's ResponseSelector
    defaults, then ``overrides`` (any :class:`DIETConfig` key but the forced tasks)."""
    overrides = dict(overrides or {})
    forced = sorted(k for k in overrides if k in _FORCED or k in _FROM_DIET or k == "num_intents")
    if forced:
        raise ValueError(f"response_selector cannot set {', '.join(forced)}: the selector "
                         "classifies response keys from the intent classifier's features")
    values = {**_dataclass_defaults(), **{k: getattr(diet, k) for k in _FROM_DIET},
              **RESPONSE_SELECTOR_DEFAULTS, **overrides, **_FORCED, "num_intents": num_keys,
              "num_entity_tags": 0, "num_role_tags": 0, "num_group_tags": 0,
              "ranking_length": overrides.get("ranking_length", diet.ranking_length)}
    return DIETConfig.from_dict(values)


def selector_inputs(diet: DIETModel, batch: DIETInputs, labelled: bool = False) -> DIETInputs:
    """The selector's view of a DIET batch: with ``labelled``, response keys as the labels
    (rows without one are left out of its loss, as rows without an intent are out of DIET's).
    Beside a DIET that fine-tunes its encoder the batch has no dense vectors; the selector
    then reads the encoder's current ones (detached: the selector does not train it)."""
    changes: dict[str, Any] = {"intent_ids": batch.response_ids} if labelled else {}
    if diet.word_encoder is not None:
        with torch.no_grad():
            changes["seq_dense"], changes["sent_dense"] = diet.dense_features(batch)
    return replace(batch, **changes) if changes else batch


def _dataclass_defaults() -> dict[str, Any]:
    return {f.name: f.default if f.default is not MISSING else f.default_factory()
            for f in fields(DIETConfig)}
