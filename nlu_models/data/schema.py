"""The one in-memory model of NLU training data that every reader produces.

A :class:`Message` is an utterance with an intent and entity spans given as character offsets
into its text. :class:`NLUData` adds what Rasa keeps beside the examples: synonyms, regex
patterns, lookup tables, retrieval responses and intent-level metadata.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from nlu_models.data.errors import SourceLocation

RESPONSE_KEY_SEPARATOR = "/"
RESPONSE_SELECTOR = "response_selector"  # a parse result's key for Rasa's ResponseSelector
DEFAULT_SELECTOR = "default"  # its entry when one selector serves every retrieval intent


@dataclass
class EntitySpan:
    """An annotated entity: ``text[start:end]`` with its type, normalised value, role and group."""

    start: int
    end: int
    value: Any
    entity: str
    role: str | None = None
    group: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"start": self.start, "end": self.end, "value": self.value, "entity": self.entity}
        if self.role is not None:
            out["role"] = self.role
        if self.group is not None:
            out["group"] = self.group
        return out

    @property
    def label(self) -> str:
        """Rasa's combined label ``entity.group.role`` (parts that are unset are left out)."""
        return ".".join(p for p in (self.entity, self.group, self.role) if p is not None)


@dataclass
class Message:
    """One training or test example."""

    text: str
    intent: str | None = None
    entities: list[EntitySpan] = field(default_factory=list)
    metadata: Any = None
    source: SourceLocation | None = field(default=None, compare=False, repr=False)

    @property
    def retrieval_intent(self) -> str | None:
        """``faq`` for the retrieval intent ``faq/ask_name``, else the intent itself."""
        return self.intent.split(RESPONSE_KEY_SEPARATOR, 1)[0] if self.intent else None

    @property
    def response_key(self) -> str | None:
        """``ask_name`` for ``faq/ask_name``; None for ordinary intents."""
        if self.intent and RESPONSE_KEY_SEPARATOR in self.intent:
            return self.intent.split(RESPONSE_KEY_SEPARATOR, 1)[1]
        return None

    def entity_text(self, span: EntitySpan) -> str:
        return self.text[span.start:span.end]


@dataclass
class RegexPattern:
    name: str
    pattern: str
    source: SourceLocation | None = field(default=None, compare=False, repr=False)


@dataclass
class LookupTable:
    name: str
    elements: list[str]
    source: SourceLocation | None = field(default=None, compare=False, repr=False)


@dataclass
class NLUData:
    """Examples plus synonyms (canonical value → variants), regexes, lookups and responses."""

    examples: list[Message] = field(default_factory=list)
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    regexes: list[RegexPattern] = field(default_factory=list)
    lookups: list[LookupTable] = field(default_factory=list)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    intent_metadata: dict[str, Any] = field(default_factory=dict)

    # ---- views ------------------------------------------------------------------------------
    @property
    def intents(self) -> list[str]:
        """Intent names in first-seen order."""
        return list(dict.fromkeys(m.intent for m in self.examples if m.intent is not None))

    @property
    def entity_types(self) -> list[str]:
        return list(dict.fromkeys(e.entity for m in self.examples for e in m.entities))

    @property
    def retrieval_intents(self) -> list[str]:
        return list(dict.fromkeys(m.retrieval_intent for m in self.examples if m.response_key))

    def entity_synonyms(self) -> dict[str, str]:
        """Variant text (lower-cased, as Rasa's EntitySynonymMapper matches) → canonical value.

        Includes explicit ``synonym:`` blocks and annotations whose value differs from their text.
        """
        mapping: dict[str, str] = {}
        for message in self.examples:
            for span in message.entities:
                text = message.entity_text(span)
                if isinstance(span.value, str) and span.value != text:
                    mapping[text.lower()] = span.value
        for canonical, variants in self.synonyms.items():
            for variant in variants:
                mapping[variant.lower()] = canonical
        return mapping

    def count_by_intent(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in self.examples:
            if message.intent is not None:
                counts[message.intent] = counts.get(message.intent, 0) + 1
        return counts

    # ---- combining ----------------------------------------------------------------------------
    def merge(self, *others: "NLUData") -> "NLUData":
        """A new NLUData with this and ``others`` concatenated (synonym variants unioned)."""
        merged = NLUData(
            examples=list(self.examples),
            synonyms={k: list(v) for k, v in self.synonyms.items()},
            regexes=list(self.regexes),
            lookups=list(self.lookups),
            responses=dict(self.responses),
            intent_metadata=dict(self.intent_metadata),
        )
        for other in others:
            merged.examples.extend(other.examples)
            for canonical, variants in other.synonyms.items():
                known = merged.synonyms.setdefault(canonical, [])
                known.extend(v for v in variants if v not in known)
            merged.regexes.extend(other.regexes)
            merged.lookups.extend(other.lookups)
            merged.responses.update(other.responses)
            merged.intent_metadata.update(other.intent_metadata)
        return merged

    def with_examples(self, examples: list[Message]) -> "NLUData":
        """A copy with other examples and the same synonyms, regexes, lookups and responses
        (a split, a fold, or a subset of this data)."""
        return NLUData(examples=list(examples),
                       synonyms={k: list(v) for k, v in self.synonyms.items()},
                       regexes=list(self.regexes), lookups=list(self.lookups),
                       responses=dict(self.responses), intent_metadata=dict(self.intent_metadata))

    @classmethod
    def concat(cls, parts: Iterable["NLUData"]) -> "NLUData":
        return cls().merge(*parts)

    def is_empty(self) -> bool:
        return not (self.examples or self.synonyms or self.regexes or self.lookups
                    or self.responses)
