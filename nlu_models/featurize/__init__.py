"""Rasa's NLU featurizers with plain-JSON vocabularies: regex, lexical-syntactic, count vectors,
and a frozen Hugging Face encoder (imported on first use, as it needs torch)."""
from __future__ import annotations

from typing import Any

from nlu_models.featurize.count_vectors import CountVectorsFeaturizer
from nlu_models.featurize.features import MessageFeatures
from nlu_models.featurize.lexical_syntactic import LexicalSyntacticFeaturizer
from nlu_models.featurize.pipeline import FeaturizerPipeline, default_pipeline
from nlu_models.featurize.regex import RegexFeaturizer

__all__ = [
    "CountVectorsFeaturizer",
    "FeaturizerPipeline",
    "HFDenseFeaturizer",
    "HFWordEncoder",
    "LexicalSyntacticFeaturizer",
    "MessageFeatures",
    "RegexFeaturizer",
    "default_pipeline",
]


def __getattr__(name: str) -> Any:
    if name in ("HFDenseFeaturizer", "HFWordEncoder"):
        from nlu_models.featurize import dense

        return getattr(dense, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
