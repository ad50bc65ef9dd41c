"""Tokens with character offsets, entity tags on them (BILOU / BIO), and span alignment checks.

:class:`WhitespaceTokenizer` reproduces Rasa 3.x's ``WhitespaceTokenizer``: punctuation at word
edges is dropped (``"Berlin?"`` → ``Berlin``) but kept inside words and numbers
(``10'000.00``, ``me@mail.com``, URLs), whole-emoji words are dropped, and each word is located in
the original text with ``text.index(word, running_offset)`` as Rasa does.

DIET tags tokens, not characters, so an annotation only trains the model when its start and end
fall on token boundaries. :func:`align_spans` says which annotations do not and why;
:func:`aligned_spans` keeps the good ones (Rasa silently drops the rest).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Sequence

try:  # Rasa uses the `regex` package, whose \w also covers combining marks
    import regex as _re
except ImportError:  # pragma: no cover - `regex` comes with transformers
    import re as _re

from nlu_models.data.schema import EntitySpan, Message

Scheme = Literal["BILOU", "BIO"]
Attribute = Literal["entity", "role", "group"]
NO_ENTITY_TAG = "O"

# Rasa 3.x WhitespaceTokenizer: characters replaced by a space before splitting on whitespace.
_PUNCTUATION = _re.compile(
    # non-word characters at the end of a word (before whitespace or the end of the text)
    r"[^\w#@&]+(?=\s|$)|"
    # non-word characters at the start of a word, unless a digit follows ("-5", ".5")
    r"(\s|^)[^\w#@&]+(?=[^0-9\s])|"
    # inside a word, except between digits (10'000.00) and except e-mail / URL characters
    r"(?<=[^0-9\s])[^\w._~:/?#\[\]()@!$&*+,;=-]+(?=[^0-9\s])"
)
# Rasa's rasa.utils.io.get_emoji_regex(): a word made only of these characters is dropped.
# Emoji are mostly gone already (they are not word characters), but Rasa's U+24C2..U+1F251 range
# also covers CJK and Hangul, so such words vanish too, as in Rasa (which does not support
# whitespace tokenisation of zh / ja / th).
_EMOJI = _re.compile(
    "["
    "\U0001F600-\U0001F64F"  # emoticons
    "\U0001F300-\U0001F5FF"  # symbols & pictographs
    "\U0001F680-\U0001F6FF"  # transport & map symbols
    "\U0001F1E0-\U0001F1FF"  # flags
    "\U00002702-\U000027B0"
    "\U000024C2-\U0001F251"
    "\u200d\u200c"  # zero-width joiner / non-joiner
    "]+"
)


@dataclass(frozen=True)
class Token:
    """``text[start:end]`` of the tokenised string."""

    text: str
    start: int
    end: int


# ---- tokenizers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WhitespaceTokenizer:
    """Rasa 3.x ``WhitespaceTokenizer`` (default config: no ``token_pattern``)."""

    def words(self, text: str) -> list[str]:
        words = _PUNCTUATION.sub(" ", text).split()
        words = [w for w in words if _EMOJI.fullmatch(w) is None]
        # Text made only of punctuation or emoji (":)") becomes one token, as in Rasa.
        # Rasa would also return one empty/blank token for blank text; we return none.
        if not words and text.strip():
            words = [text]
        return words

    def tokenize(self, text: str) -> list[Token]:
        return tokens_from_words(self.words(text), text)


def tokens_from_words(words: Iterable[str], text: str) -> list[Token]:
    """Locate each word in ``text`` left to right (Rasa's ``_convert_words_to_tokens``)."""
    tokens: list[Token] = []
    offset = 0
    for word in words:
        start = text.index(word, offset)
        offset = start + len(word)
        tokens.append(Token(word, start, offset))
    return tokens


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text`` as Rasa's default ``WhitespaceTokenizer`` gives them."""
    return WhitespaceTokenizer().tokenize(text)


def split_whitespace(text: str) -> list[Token]:
    """Plain ``text.split()`` with offsets: the tokenisation of pre-tokenised benchmarks."""
    return tokens_from_words(text.split(), text)


# ---- tags ------------------------------------------------------------------------------------
def bilou_tags(tokens: Sequence[Token], spans: Iterable[EntitySpan],
               label_fn: Callable[[EntitySpan], str | None] = lambda s: s.entity) -> list[str]:
    """One BILOU tag per token; spans not on token boundaries (or overlapping) are skipped."""
    return _encode(tokens, spans, label_fn, "BILOU")


def bio_tags(tokens: Sequence[Token], spans: Iterable[EntitySpan],
             label_fn: Callable[[EntitySpan], str | None] = lambda s: s.entity) -> list[str]:
    """One BIO tag per token; spans not on token boundaries (or overlapping) are skipped."""
    return _encode(tokens, spans, label_fn, "BIO")


def tags_for(tokens: Sequence[Token], spans: Iterable[EntitySpan],
             attribute: Attribute = "entity", scheme: Scheme = "BILOU") -> list[str]:
    """Tags for one of DIET's three CRF heads: entity type, role or group.

    Spans without a role (group) are ``O`` in the role (group) tags.
    """
    if attribute not in ("entity", "role", "group"):
        raise ValueError(f"attribute must be 'entity', 'role' or 'group', not {attribute!r}")
    return _encode(tokens, spans, lambda s: getattr(s, attribute), scheme)


def _encode(tokens: Sequence[Token], spans: Iterable[EntitySpan],
            label_fn: Callable[[EntitySpan], str | None], scheme: Scheme) -> list[str]:
    _check_scheme(scheme)
    tags = [NO_ENTITY_TAG] * len(tokens)
    for first, last, span in _token_ranges(tokens, spans):
        label = label_fn(span)
        if label is None:
            continue
        for i in range(first, last + 1):
            tags[i] = f"{_prefix(i, first, last, scheme)}-{label}"
    return tags


def _prefix(i: int, first: int, last: int, scheme: Scheme) -> str:
    if scheme == "BIO":
        return "B" if i == first else "I"
    if first == last:
        return "U"
    return "B" if i == first else "L" if i == last else "I"


def parse_tag(tag: str) -> tuple[str, str | None]:
    """``"B-city"`` → ``("B", "city")``; ``"O"`` → ``("O", None)``; a bare label → ``("I", it)``."""
    if tag == NO_ENTITY_TAG:
        return NO_ENTITY_TAG, None
    prefix, sep, label = tag.partition("-")
    if sep and prefix in ("B", "I", "L", "U") and label:
        return prefix, label
    return "I", tag


def spans_from_tags(tokens: Sequence[Token], tags: Sequence[str], text: str,
                    scheme: Scheme = "BILOU") -> list[EntitySpan]:
    """Decode tags into spans (the label becomes ``entity``), leniently as Rasa does.

    ``I-``/``L-`` without a preceding ``B-``/``I-`` of the same label starts a new entity; a label
    change always starts one. ``L-`` and ``U-`` close the entity they belong to.
    """
    _check_scheme(scheme)
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    return [EntitySpan(start=tokens[a].start, end=tokens[b].end,
                       value=text[tokens[a].start:tokens[b].end], entity=label)
            for a, b, label in tag_runs(tags)]


def tag_runs(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(first token, last token, label)`` of each entity in ``tags``, read leniently.

    ``I-``/``L-`` without a preceding ``B-``/``I-`` of the same label starts a new entity; a label
    change always starts one. ``L-`` and ``U-`` close the entity they belong to.
    """
    runs: list[tuple[int, int, str]] = []
    open_run = False
    for i, tag in enumerate(tags):
        prefix, label = parse_tag(tag)
        if label is None:
            open_run = False
            continue
        if open_run and prefix in ("I", "L") and runs[-1][2] == label:
            runs[-1] = (runs[-1][0], i, label)
        else:
            runs.append((i, i, label))
        open_run = prefix in ("B", "I")
    return runs


def _check_scheme(scheme: str) -> None:
    if scheme not in ("BILOU", "BIO"):
        raise ValueError(f"tag scheme must be 'BILOU' or 'BIO', not {scheme!r}")


# ---- alignment -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpanIssue:
    """An annotation DIET cannot tag, and why."""

    span: EntitySpan
    reason: str


@dataclass
class AlignmentReport:
    text: str
    aligned: list[EntitySpan] = field(default_factory=list)
    issues: list[SpanIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues


def align_spans(text: str, tokens: Sequence[Token],
                spans: Iterable[EntitySpan]) -> AlignmentReport:
    """Sort ``spans`` into those on token boundaries and those that are not (with reasons).

    A span that overlaps an earlier aligned span is an issue too: a token gets one tag per head.
    """
    report = AlignmentReport(text)
    taken: dict[int, EntitySpan] = {}  # token index → aligned span covering it
    for span in spans:
        reasons = _boundary_problems(text, tokens, span)
        covered = _covered(tokens, span)
        if not reasons and covered is not None:
            first, last = covered
            clash = next((taken[i] for i in range(first, last + 1) if i in taken), None)
            if clash is not None:
                reasons = [f"overlaps {_describe(text, clash)}"]
            else:
                taken.update({i: span for i in range(first, last + 1)})
                report.aligned.append(span)
                continue
        report.issues.append(SpanIssue(span, f"{_describe(text, span)} " + " and ".join(reasons)))
    return report


def aligned_spans(text: str, tokens: Sequence[Token],
                  spans: Iterable[EntitySpan]) -> list[EntitySpan]:
    """Only the spans DIET can tag (what Rasa keeps)."""
    return align_spans(text, tokens, spans).aligned


def check_alignment(messages: Iterable[Message],
                    tokenizer: WhitespaceTokenizer | None = None) -> list[str]:
    """One line per misaligned annotation, prefixed with the example's source location."""
    tokenizer = tokenizer or WhitespaceTokenizer()
    lines = []
    for message in messages:
        if not message.entities:
            continue
        report = align_spans(message.text, tokenizer.tokenize(message.text), message.entities)
        where = f"{message.source}: " if message.source is not None else ""
        lines.extend(f"{where}{issue.reason} in '{message.text}'" for issue in report.issues)
    return lines


def _boundary_problems(text: str, tokens: Sequence[Token], span: EntitySpan) -> list[str]:
    if not 0 <= span.start < span.end <= len(text):
        return [f"is outside the text or empty (text length {len(text)})"]
    if not any(t.start < span.end and span.start < t.end for t in tokens):
        return ["covers no token (only whitespace or punctuation the tokenizer drops)"]
    problems = []
    if not any(t.start == span.start for t in tokens):
        problems.append(_where_boundary("starts", span.start, tokens))
    if not any(t.end == span.end for t in tokens):
        problems.append(_where_boundary("ends", span.end, tokens))
    return problems


def _where_boundary(verb: str, offset: int, tokens: Sequence[Token]) -> str:
    inside = next((t for t in tokens if t.start < offset < t.end), None)
    if inside is not None:
        return f"{verb} inside token '{inside.text}' [{inside.start}:{inside.end}]"
    return (f"{verb} at {offset}, between tokens (whitespace or punctuation the tokenizer "
            "drops)")


def _token_ranges(tokens: Sequence[Token],
                  spans: Iterable[EntitySpan]) -> list[tuple[int, int, EntitySpan]]:
    """(first, last) token index of each span on token boundaries that overlaps no earlier one."""
    ranges = []
    used: set[int] = set()
    for span in spans:
        covered = _covered(tokens, span)
        if covered is None or used.intersection(range(covered[0], covered[1] + 1)):
            continue
        used.update(range(covered[0], covered[1] + 1))
        ranges.append((covered[0], covered[1], span))
    return ranges


def _covered(tokens: Sequence[Token], span: EntitySpan) -> tuple[int, int] | None:
    """Indices of the tokens starting and ending the span; None when it is not on boundaries."""
    first = next((i for i, t in enumerate(tokens) if t.start == span.start), None)
    last = next((i for i, t in enumerate(tokens) if t.end == span.end), None)
    if first is None or last is None or first > last:
        return None
    return first, last


def _describe(text: str, span: EntitySpan) -> str:
    return f"entity '{span.entity}' [{span.start}:{span.end}] '{text[span.start:span.end]}'"
