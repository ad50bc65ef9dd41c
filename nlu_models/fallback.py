"""Rasa's ``FallbackClassifier``: a low-confidence or ambiguous parse becomes ``nlu_fallback``.

A step after the model, applied to Rasa parse results by both interpreters
(:class:`~nlu_models.inference.NLUInterpreter`, :class:`~nlu_models.onnx_runtime.
OnnxNLUInterpreter`). As Rasa 3.x's ``FallbackClassifier.process``: when the top intent's
confidence is below ``threshold``, or the top two intents of ``intent_ranking`` are less than
``ambiguity_threshold`` apart, the result's ``intent`` becomes
``{"name": "nlu_fallback", "confidence": threshold}`` and the same entry is put first in
``intent_ranking``, above the model's ranking, which stays as it was::

    {"intent": {"name": "nlu_fallback", "confidence": 0.3},
     "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.3},
                        {"name": "greet", "confidence": 0.28}, ...], ...}

Off unless configured. Configured as in Rasa, by an entry in the training pipeline
(``model.featurizers``)::

    - {name: FallbackClassifier, threshold: 0.3, ambiguity_threshold: 0.1}

which the checkpoint and the export bundle (``fallback.json``) then carry, so serving applies
it; or when loading (``NLUInterpreter.load(path, fallback=...)``). Rasa has no default rule
for ``nlu_fallback``: a bot answers it with a rule of its own
(``- intent: nlu_fallback`` → ``- action: utter_please_rephrase`` / ``action_default_fallback``).
:func:`undo_fallback` gives back the model's own prediction, as ``rasa test nlu`` does before
scoring intents.

Multi-label results (those with ``intents``, the predicted set: see
:meth:`~nlu_models.diet.labels.DIETLabels.multi_label_intents`): the threshold applies to the
result's ``intent`` confidence (the lowest in the set), and the ambiguity gap is the one between
the set and the best intent outside it (with a one-intent set that is Rasa's top-two gap; two
confident intents of one message are not ambiguous). ``intents`` is left as the model predicted
it, so :func:`undo_fallback` with the ``split_symbol`` restores the combined ``a+b`` intent.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence, Union

NLU_FALLBACK = "nlu_fallback"
COMPONENT_NAME = "FallbackClassifier"
FILENAME = "fallback.json"


@dataclass(frozen=True)
class FallbackConfig:
    """Rasa's ``FallbackClassifier`` options, with its defaults."""

    threshold: float = 0.3
    ambiguity_threshold: float = 0.1

    def __post_init__(self) -> None:
        for name in ("threshold", "ambiguity_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= 1.0:
                raise ValueError(f"{COMPONENT_NAME} {name} must be a number in [0, 1], "
                                 f"not {value!r}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "FallbackConfig":
        options = {k: v for k, v in values.items() if k != "name"}
        unknown = sorted(set(options) - {"threshold", "ambiguity_threshold"})
        if unknown:
            raise ValueError(f"{COMPONENT_NAME}: unknown option(s) {unknown}; options: "
                             "['threshold', 'ambiguity_threshold']")
        return cls(**options)

    @classmethod
    def from_pipeline(cls, spec: Any) -> "FallbackConfig | None":
        """The ``FallbackClassifier`` entry of a Rasa-style pipeline (a list of
        ``{"name": ...}`` entries or a config with a ``pipeline`` key); None without one."""
        if isinstance(spec, Mapping):
            spec = spec.get("pipeline", [spec])
        if spec is None or not isinstance(spec, Sequence) or isinstance(spec, str):
            return None  # e.g. an already fitted FeaturizerPipeline
        entries = [e for e in spec if isinstance(e, Mapping) and e.get("name") == COMPONENT_NAME]
        if len(entries) > 1:
            raise ValueError(f"the pipeline lists {COMPONENT_NAME} {len(entries)} times")
        return cls.from_dict(entries[0]) if entries else None

    # ---- applying ------------------------------------------------------------------------------
    def should_fallback(self, result: Mapping[str, Any]) -> bool:
        """Whether Rasa's classifier replaces this (model) parse result's intent."""
        intent = result.get("intent")
        if not intent or is_fallback(result):
            return False
        if float(intent.get("confidence") or 0.0) < self.threshold:
            return True
        ranking = result.get("intent_ranking") or []
        chosen = {i["name"] for i in result.get("intents") or ranking[:1]}
        outside = [r for r in ranking if r.get("name") not in chosen]
        if ranking and outside:
            lowest_chosen = min(float(r.get("confidence", 1.0)) for r in ranking
                                if r.get("name") in chosen)
            gap = lowest_chosen - float(outside[0].get("confidence", 1.0))
            return gap < self.ambiguity_threshold
        return False

    def apply(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with ``nlu_fallback`` on top when it should fall back (a new dict; the
        given one is not changed), else ``result`` itself."""
        if not self.should_fallback(result):
            return result
        entry = {"name": NLU_FALLBACK, "confidence": self.threshold}
        return {**result, "intent": dict(entry),
                "intent_ranking": [dict(entry), *(result.get("intent_ranking") or [])]}


def apply_fallback(results: list[dict[str, Any]], fallback: FallbackConfig | None
                   ) -> list[dict[str, Any]]:
    """:meth:`FallbackConfig.apply` on every result; the results as they are without one."""
    return results if fallback is None else [fallback.apply(r) for r in results]


def is_fallback(result: Mapping[str, Any]) -> bool:
    """Whether the result's intent is ``nlu_fallback`` (Rasa's
    ``is_fallback_classifier_prediction``)."""
    return (result.get("intent") or {}).get("name") == NLU_FALLBACK


def undo_fallback(result: Mapping[str, Any], split_symbol: str | None = None
                  ) -> Mapping[str, Any]:
    """The model's own prediction of a fallen-back result (Rasa's ``undo_fallback_prediction``):
    the ranking without its ``nlu_fallback`` head, and its new head as the intent. Any other
    result, or one with nothing under ``nlu_fallback``, comes back as it is. A multi-label
    result with ``split_symbol`` gets its combined intent back from ``intents`` instead."""
    ranking = result.get("intent_ranking") or []
    if not is_fallback(result) or len(ranking) < 2 or ranking[0].get("name") != NLU_FALLBACK:
        return result
    intent = dict(ranking[1])
    if split_symbol is not None and result.get("intents"):
        intent = combined_intent(result["intents"], split_symbol)
    return {**result, "intent": intent, "intent_ranking": list(ranking[1:])}


def combined_intent(intents: Sequence[Mapping[str, Any]], split_symbol: str) -> dict[str, Any]:
    """A multi-label result's ``intent`` from its predicted set ``intents`` (in label order):
    the names joined by ``split_symbol``, with the lowest confidence."""
    return {"name": split_symbol.join(i["name"] for i in intents),
            "confidence": min(float(i["confidence"]) for i in intents)}


# what a ``fallback=`` argument takes (see fallback_option / chosen_fallback)
FallbackOption = Union[FallbackConfig, Mapping[str, Any], bool, None]


def fallback_option(value: FallbackOption) -> FallbackConfig | None:
    """A ``fallback=`` argument as a config: ``False``/``None`` off, ``True`` Rasa's
    defaults (0.3, 0.1), a mapping its options."""
    if value is None or value is False:
        return None
    if value is True:
        return FallbackConfig()
    if isinstance(value, FallbackConfig):
        return value
    if isinstance(value, Mapping):
        return FallbackConfig.from_dict(value)
    raise TypeError(f"fallback must be a FallbackConfig, a mapping, True/False or None, "
                    f"not {type(value).__name__}")


def chosen_fallback(option: FallbackOption, stored: Mapping[str, Any] | None
                    ) -> FallbackConfig | None:
    """What an interpreter applies: the ``fallback=`` it was loaded with, or when that is None
    the one its checkpoint / bundle carries (``stored``, None when it has none)."""
    if option is None:
        return FallbackConfig.from_dict(stored) if stored else None
    return fallback_option(option)


__all__ = ["COMPONENT_NAME", "FILENAME", "NLU_FALLBACK", "FallbackConfig", "FallbackOption",
           "apply_fallback", "chosen_fallback", "combined_intent", "fallback_option", "is_fallback",
           "undo_fallback"]
