"""Rasa's FallbackClassifier (``nlu_models.fallback``): when it fires, the shape of the result,
undoing it, and how it is configured."""
from __future__ import annotations

import copy

import pytest

from nlu_models.fallback import (NLU_FALLBACK, FallbackConfig, apply_fallback, chosen_fallback,
                                 fallback_option, is_fallback, undo_fallback)
from nlu_models.featurize import FeaturizerPipeline


def result(*ranking: tuple[str, float]) -> dict:
    entries = [{"name": n, "confidence": c} for n, c in ranking]
    return {"text": "hi", "intent": dict(entries[0]) if entries else None,
            "intent_ranking": entries, "entities": [{"entity": "x", "start": 0, "end": 2}]}


RASA = FallbackConfig()  # threshold 0.3, ambiguity_threshold 0.1


def test_low_confidence_falls_back_with_rasas_shape():
    parsed = result(("greet", 0.25), ("bye", 0.1), ("thank", 0.05))
    before = copy.deepcopy(parsed)
    fell = RASA.apply(parsed)
    assert fell["intent"] == {"name": NLU_FALLBACK, "confidence": 0.3}
    assert fell["intent_ranking"] == [{"name": NLU_FALLBACK, "confidence": 0.3},
                                      *before["intent_ranking"]]
    assert fell["text"] == "hi" and fell["entities"] == before["entities"]
    assert parsed == before  # the model's result is not changed in place
    assert is_fallback(fell) and not is_fallback(parsed)


@pytest.mark.parametrize("ranking,falls_back", [
    ((("greet", 0.5), ("bye", 0.45)), True),        # 0.05 apart: ambiguous
    ((("greet", 0.5), ("bye", 0.35)), False),       # 0.15 apart
    ((("greet", 0.3), ("bye", 0.1)), False),        # at the threshold is not below it
    ((("greet", 0.29),), True),                     # one intent: only the threshold counts
    ((("greet", 0.95),), False),
    ((("greet", 0.9), ("bye", 0.85)), True),        # confident but ambiguous
])
def test_threshold_and_ambiguity_cases(ranking, falls_back):
    parsed = result(*ranking)
    assert RASA.should_fallback(parsed) is falls_back
    assert is_fallback(RASA.apply(parsed)) is falls_back
    strict = FallbackConfig(threshold=0.0, ambiguity_threshold=0.0)
    assert not strict.should_fallback(parsed)


def test_no_intent_already_fallen_back_and_undo():
    entity_only = {"text": "x", "intent": None, "intent_ranking": [], "entities": []}
    assert RASA.apply(entity_only) is entity_only
    parsed = result(("greet", 0.5), ("bye", 0.45))
    fell = RASA.apply(parsed)
    assert RASA.apply(fell) is fell  # never twice
    assert undo_fallback(fell) == parsed
    assert undo_fallback(parsed) is parsed
    lonely = {"intent": {"name": NLU_FALLBACK, "confidence": 0.3},
              "intent_ranking": [{"name": NLU_FALLBACK, "confidence": 0.3}]}
    assert undo_fallback(lonely) is lonely  # nothing underneath: kept, as Rasa does
    both = apply_fallback([parsed, result(("greet", 0.99), ("bye", 0.01))], RASA)
    assert [is_fallback(r) for r in both] == [True, False]
    assert apply_fallback([parsed], None) == [parsed]


def test_configuration_from_a_rasa_pipeline():
    pipeline = [{"name": "WhitespaceTokenizer"}, {"name": "CountVectorsFeaturizer"},
                {"name": "DIETClassifier", "epochs": 100},
                {"name": "FallbackClassifier", "threshold": 0.4, "ambiguity_threshold": 0.05}]
    assert FallbackConfig.from_pipeline(pipeline) == FallbackConfig(0.4, 0.05)
    assert FallbackConfig.from_pipeline({"pipeline": pipeline}) == FallbackConfig(0.4, 0.05)
    assert FallbackConfig.from_pipeline([{"name": "FallbackClassifier"}]) == RASA
    assert FallbackConfig.from_pipeline(pipeline[:3]) is None
    assert FallbackConfig.from_pipeline(None) is None
    assert FeaturizerPipeline.from_config(pipeline).sparse  # the featurizers skip the entry
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['thresold'\]"):
        FallbackConfig.from_pipeline([{"name": "FallbackClassifier", "thresold": 0.4}])
    with pytest.raises(ValueError, match="2 times"):
        FallbackConfig.from_pipeline([{"name": "FallbackClassifier"}] * 2)
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\]"):
        FallbackConfig(threshold=1.5)


def test_fallback_options_when_loading():
    stored = {"threshold": 0.6, "ambiguity_threshold": 0.1}
    assert chosen_fallback(None, stored) == FallbackConfig(0.6, 0.1)  # the stored one
    assert chosen_fallback(None, None) is None                          # off by default
    assert chosen_fallback(False, stored) is None
    assert chosen_fallback(True, None) == RASA
    assert chosen_fallback({"threshold": 0.5}, stored) == FallbackConfig(0.5, 0.1)
    assert fallback_option(FallbackConfig(0.2, 0.0)) == FallbackConfig(0.2, 0.0)
    with pytest.raises(TypeError, match="fallback must be"):
        fallback_option(0.3)
    assert FallbackConfig.from_dict(RASA.to_dict()) == RASA
