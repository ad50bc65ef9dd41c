"""Label spaces of a DIET model — intents and the BILOU tag vocabularies of the entity, role and
group heads — and the decoding of predicted tags back into Rasa-style entities.

Everything here is plain JSON (``labels.json`` in an export), so a bundle needs no pickle.
Retrieval intents follow Rasa: the intent classifier learns the collapsed intent (``faq`` for
an example of ``faq/ask_name``), and the response selector's labels are the full
``intent_response_key``\ s (``response_keys``), with the responses to return for each
(``responses``: ``utter_faq/ask_name`` → its variations).
Multi-label intents (``multi_label``): an intent ``a+b`` (Rasa's multi-intent; ATIS writes
``a#b``, hence ``intent_split_symbol``) is the set of its *atomic* intents, ``intents`` lists the
atomic ones, and the model scores each with its own sigmoid (``intent_loss: sigmoid``); the
parse result names the predicted set as ``a+b`` (in label order) and lists it under ``intents``.
Tag ids follow Rasa: ``O`` is 0, then for each name in order ``B-x, I-x, L-x, U-x`` (BILOU)
or ``B-x, I-x`` (BIO). Names are sorted when fitted on data; a label set extended for
fine-tuning (:meth:`DIETLabels.extended`) keeps the old names first, so old ids stay valid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from nlu_models.data.schema import (DEFAULT_SELECTOR, RESPONSE_KEY_SEPARATOR,
                                    RESPONSE_SELECTOR, EntitySpan, Message, NLUData)
from nlu_models.fallback import combined_intent
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
    response_keys: list[str] = field(default_factory=list)   # faq/ask_name, ...: the selector's
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # utter_faq/... →
    multi_label: bool = False             # intents are atomic; an example's intent is a set
    intent_split_symbol: str = "+"        # joins atomic intents: a+b (Rasa), a#b (ATIS)

    def __post_init__(self) -> None:
        if self.multi_label and not self.intent_split_symbol:
            raise ValueError("multi-label intents need a non-empty intent_split_symbol")

    @classmethod
    def from_data(cls, nlu: NLUData, scheme: str = "BILOU", multi_label: bool = False,
                  intent_split_symbol: str = "+") -> "DIETLabels":
        """Label spaces fitted on ``nlu`` (sorted); with ``multi_label`` the intents are the
        atomic intents of every ``a<intent_split_symbol>b`` label."""
        spans = [s for m in nlu.examples for s in m.entities]
        keys = sorted({m.intent for m in nlu.examples if m.response_key is not None})
        intents = {m.retrieval_intent for m in nlu.examples if m.intent is not None}
        if multi_label:
            intents = {a for i in intents for a in split_intent(i, intent_split_symbol)}
        return cls(
            intents=sorted(intents),
            entities=sorted({s.entity for s in spans}),
            roles=sorted({s.role for s in spans if s.role is not None}),
            groups=sorted({s.group for s in spans if s.group is not None}),
            scheme=scheme,
            synonyms=nlu.entity_synonyms(),
            response_keys=keys,
            responses={f"utter_{k}": nlu.responses[f"utter_{k}"] for k in keys
                       if f"utter_{k}" in nlu.responses},
            multi_label=multi_label, intent_split_symbol=intent_split_symbol,
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
        if (other.multi_label, other.intent_split_symbol) != (self.multi_label,
                                                              self.intent_split_symbol):
            raise ValueError(f"cannot extend intents with multi_label={self.multi_label} "
                             f"(split symbol {self.intent_split_symbol!r}) by ones with "
                             f"multi_label={other.multi_label} "
                             f"(split symbol {other.intent_split_symbol!r})")
        return DIETLabels(intents=appended(self.intents, other.intents),
                          entities=appended(self.entities, other.entities),
                          roles=appended(self.roles, other.roles),
                          groups=appended(self.groups, other.groups),
                          scheme=self.scheme, synonyms={**self.synonyms, **other.synonyms},
                          response_keys=appended(self.response_keys, other.response_keys),
                          responses={**self.responses, **other.responses},
                          multi_label=self.multi_label,
                          intent_split_symbol=self.intent_split_symbol)

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
        return _index(self.intents, intent)

    def atomic_intents(self, intent: str | None) -> list[str]:
        """The atomic intents of a (multi-)intent label, in order of appearance; ``[intent]``
        for single-label labels; ``[]`` for no intent."""
        if intent is None:
            return []
        return split_intent(intent, self.intent_split_symbol) if self.multi_label else [intent]

    def intent_targets(self, intent: str | None) -> list[float] | None:
        """Multi-hot targets over ``intents`` for a multi-label model (atomic intents unseen in
        training are left out; all zeros: no intent); None for single-label labels."""
        if not self.multi_label:
            return None
        present = set(self.atomic_intents(intent))
        return [1.0 if name in present else 0.0 for name in self.intents]

    def canonical_intent(self, intent: str | None) -> str | None:
        """A multi-intent label with its atomic intents in a canonical (sorted) order, so that
        ``b+a`` and ``a+b`` are the same label; the label itself when not multi-label."""
        if intent is None or not self.multi_label:
            return intent
        return canonical_intent(intent, self.intent_split_symbol)

    def response_id(self, message: Message) -> int:
        """Index of the message's ``intent_response_key`` (``faq/ask_name``) among
        ``response_keys``; -1 for an ordinary intent or an unseen key."""
        return _index(self.response_keys, message.intent) if message.response_key else -1

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
                     tags: dict[str, list[int]], confidences: dict[str, list[float]],
                     response_confidences: Sequence[float] | None = None,
                     multi_label_threshold: float = 0.5) -> dict[str, Any]:
        """Rasa's parse dict for one message from the model's outputs (as plain lists):
        ``intent`` and ``intent_ranking`` (highest first, zeros dropped) and ``entities``; with
        the response selector's confidences also ``response_selector``. Multi-label labels
        add ``intents`` (see :meth:`multi_label_intents`)."""
        result: dict[str, Any] = {"text": text, "intent": None, "intent_ranking": []}
        if intent_confidences is not None:
            ranking = _ranking(intent_confidences, self.intents, "name")
            result["intent"], result["intent_ranking"] = ranking[0], ranking
            if self.multi_label:
                result["intent"], result["intents"] = self.multi_label_intents(
                    intent_confidences, multi_label_threshold)
        result["entities"] = self.decode_entities(text, tokens, tags, confidences)
        if response_confidences is not None:
            result[RESPONSE_SELECTOR] = self.response_selection(response_confidences)
        return result

    def multi_label_intents(self, confidences: Sequence[float], threshold: float
                            ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A multi-label prediction from independent (sigmoid) confidences over ``intents``:
        the predicted set is every intent at or above ``threshold`` (the top one alone when
        none reaches it), listed in label order; the ``intent`` names the set joined by the
        split symbol, with the lowest confidence among them."""
        chosen = [i for i, c in enumerate(confidences) if c >= threshold]
        if not chosen:
            chosen = [max(range(len(confidences)), key=lambda i: confidences[i])]
        intents = [{"name": self.intents[i], "confidence": float(confidences[i])}
                   for i in chosen]
        return combined_intent(intents, self.intent_split_symbol), intents

    @property
    def retrieval_intents(self) -> list[str]:
        return list(dict.fromkeys(k.split(RESPONSE_KEY_SEPARATOR, 1)[0]
                                  for k in self.response_keys))

    def response_selection(self, confidences: Sequence[float]) -> dict[str, Any]:
        """Rasa's ``response_selector`` entry from the selector's confidences over
        ``response_keys`` (ranked, zeros dropped): the best key, its ``utter_action`` and the
        responses stored for it (None when the training data had none; the domain's are used
        then). One selector over all retrieval intents, so it answers under ``default``."""
        ranking = _ranking(confidences, self.response_keys, "intent_response_key")
        best = ranking[0]
        action = f"utter_{best['intent_response_key']}"
        return {"all_retrieval_intents": self.retrieval_intents,
                DEFAULT_SELECTOR: {"response": {"responses": self.responses.get(action),
                                         "confidence": best["confidence"],
                                         "intent_response_key": best["intent_response_key"],
                                         "utter_action": action},
                            "ranking": ranking}}

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


def _ranking(confidences: Sequence[float], names: Sequence[str], key: str
             ) -> list[dict[str, Any]]:
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    return [{key: names[i], "confidence": float(confidences[i])}
            for i in order if confidences[i] > 0]


def split_intent(intent: str, symbol: str) -> list[str]:
    """``a+b`` → ``["a", "b"]`` (empty parts and repeats dropped)."""
    return list(dict.fromkeys(part for part in intent.split(symbol) if part))


def canonical_intent(intent: str, symbol: str) -> str:
    """``b+a`` → ``a+b``: the atomic intents sorted (empty parts and repeats dropped)."""
    return symbol.join(sorted(split_intent(intent, symbol)))


def _index(names: list[str], name: str | None) -> int:
    try:
        return names.index(name) if name is not None else -1
    except ValueError:
        return -1


def appended(old: list[str], new: list[str]) -> list[str]:
    """``old`` with the names of ``new`` it lacks appended: every old name keeps its index (how
    label tables grow for fine-tuning, here and in TED's dialogue space)."""
    known = set(old)
    return old + [name for name in new if name not in known]


def spans_of(entities: Sequence[dict[str, Any]]) -> list[EntitySpan]:
    """Predicted entity dicts as :class:`EntitySpan` objects (value kept as predicted)."""
    return [EntitySpan(e["start"], e["end"], e["value"], e["entity"], e.get("role"),
                       e.get("group")) for e in entities]
