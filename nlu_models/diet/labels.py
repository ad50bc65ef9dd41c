"""Label spaces of a DIET model — intents and the BILOU tag vocabularies of the entity, role and
group heads — and the decoding of predicted tags back into Rasa-style entities.

Everything here is plain JSON (``labels.json`` in an export), so a bundle needs no pickle.
Tag ids follow Rasa: ``O`` is 0, then for each name in order ``B-x, I-x, L-x, U-x`` (BILOU)
or ``B-x, I-x`` (BIO). Names are sorted when fitted on data; a label set extended for
fine-tuning (:meth:`DIETLabels.extended`) keeps the old names first, so old ids stay valid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from nlu_models.data.schema import EntitySpan, Message, NLUData
from nlu_models.tokenize import NO_ENTITY_TAG, Token, aligned_spans, parse_tag, tag_runs, tags_for

HEADS = ("entity", "role", "group")
_PREFIXES = {"BILOU": ("B", "I", "L", "U"), "BIO": ("B", "I")}


@dataclass
class DIETLabels:
    intents: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    scheme: str = "BILOU"
    synonyms: dict[str, str] = field(default_factory=dict)   # lower-cased variant → canonical

    @classmethod
    def from_data(cls, nlu: NLUData, scheme: str = "BILOU") -> "DIETLabels":
        spans = [s for m in nlu.examples for s in m.entities]
        return cls(
            intents=sorted({m.intent for m in nlu.examples if m.intent is not None}),
            entities=sorted({s.entity for s in spans}),
            roles=sorted({s.role for s in spans if s.role is not None}),
            groups=sorted({s.group for s in spans if s.group is not None}),
            scheme=scheme,
            synonyms=nlu.entity_synonyms(),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DIETLabels":
        return cls(**values)

    def extended(self, other: "DIETLabels") -> "DIETLabels":
        """These labels with ``other``'s new intents, entities, roles and groups appended: every
        old intent and tag keeps its id (fine-tuning on data with new labels). ``other``'s
        synonyms are added to (and win over) these."""
        if other.scheme != self.scheme:
            raise ValueError(f"cannot extend {self.scheme} tags by {other.scheme} ones")
        return DIETLabels(intents=_appended(self.intents, other.intents),
                          entities=_appended(self.entities, other.entities),
                          roles=_appended(self.roles, other.roles),
                          groups=_appended(self.groups, other.groups),
                          scheme=self.scheme, synonyms={**self.synonyms, **other.synonyms})

    # ---- vocabularies ------------------------------------------------------------------------
    def names(self, head: str) -> list[str]:
        return {"entity": self.entities, "role": self.roles, "group": self.groups}[head]

    def tags(self, head: str) -> list[str]:
        """The tag strings of one head, index = tag id."""
        names = self.names(head)
        if not names:
            return [NO_ENTITY_TAG]
        return [NO_ENTITY_TAG] + [f"{p}-{n}" for n in names for p in _PREFIXES[self.scheme]]

    def num_tags(self, head: str) -> int:
        return len(self.tags(head)) if self.names(head) else 0

    def intent_id(self, intent: str | None) -> int:
        """Index of ``intent``; -1 for no intent or one unseen in training."""
        try:
            return self.intents.index(intent) if intent is not None else -1
        except ValueError:
            return -1

    # ---- encoding --------------------------------------------------------------------------
    def tag_strings(self, message: Message, tokens: Sequence[Token], head: str) -> list[str]:
        """Gold tags of one head; annotations off token boundaries are dropped, as in Rasa."""
        spans = aligned_spans(message.text, tokens, message.entities)
        return tags_for(tokens, spans, head, self.scheme)  # type: ignore[arg-type]

    def tag_ids(self, message: Message, tokens: Sequence[Token], head: str) -> list[int]:
        """Gold tag ids; tags of names unseen in training become ``O``."""
        index = {t: i for i, t in enumerate(self.tags(head))}
        return [index.get(t, 0) for t in self.tag_strings(message, tokens, head)]

    # ---- decoding --------------------------------------------------------------------------
    def parse_result(self, text: str, tokens: Sequence[Token],
                     intent_confidences: Sequence[float] | None,
                     tags: dict[str, list[int]], confidences: dict[str, list[float]]
                     ) -> dict[str, Any]:
        """Rasa's parse dict for one message from the model's outputs (as plain lists):
        ``intent`` and ``intent_ranking`` (highest first, zeros dropped) and ``entities``."""
        result: dict[str, Any] = {"text": text, "intent": None, "intent_ranking": []}
        if intent_confidences is not None:
            order = sorted(range(len(intent_confidences)), key=lambda i: -intent_confidences[i])
            ranking = [{"name": self.intents[i], "confidence": float(intent_confidences[i])}
                       for i in order if intent_confidences[i] > 0]
            result["intent"], result["intent_ranking"] = ranking[0], ranking
        result["entities"] = self.decode_entities(text, tokens, tags, confidences)
        return result

    def decode_entities(self, text: str, tokens: Sequence[Token],
                        tag_ids: dict[str, Sequence[int]],
                        confidences: dict[str, Sequence[float]]) -> list[dict[str, Any]]:
        """Rasa-shaped entities from predicted tag ids of each head.

        A new entity starts at ``B-``/``U-`` or where the type changes, and ends after ``L-``/``U-``
        (a lenient reading that also repairs inconsistent BILOU sequences). The entity's
        confidence is the minimum over its tokens; role and group come from its tokens' role and
        group tags (the most confident non-``O`` one).
        """
        if "entity" not in tag_ids:
            return []
        tags = self.tags("entity")
        runs = tag_runs([tags[i] for i in tag_ids["entity"][:len(tokens)]])
        entities = []
        for first, last, name in runs:
            start, end = tokens[first].start, tokens[last].end
            value = text[start:end]
            entity: dict[str, Any] = {
                "entity": name, "start": start, "end": end,
                "value": self.synonyms.get(value.lower(), value),
                "confidence_entity": float(min(confidences["entity"][first:last + 1])),
            }
            for head in ("role", "group"):
                picked = self._attribute(head, first, last, tag_ids, confidences)
                if picked is not None:
                    entity[head], entity[f"confidence_{head}"] = picked
            entity["extractor"] = "DIETClassifier"
            entities.append(entity)
        return entities

    def _attribute(self, head: str, first: int, last: int, tag_ids, confidences):
        if head not in tag_ids:
            return None
        tags = self.tags(head)
        best = None
        for i in range(first, last + 1):
            _, name = parse_tag(tags[tag_ids[head][i]])
            conf = float(confidences[head][i])
            if name is not None and (best is None or conf > best[1]):
                best = (name, conf)
        return best


def _appended(old: list[str], new: list[str]) -> list[str]:
    known = set(old)
    return old + [name for name in new if name not in known]


def spans_of(entities: Sequence[dict[str, Any]]) -> list[EntitySpan]:
    """Predicted entity dicts as :class:`EntitySpan` objects (value kept as predicted)."""
    return [EntitySpan(e["start"], e["end"], e["value"], e["entity"], e.get("role"),
                       e.get("group")) for e in entities]
