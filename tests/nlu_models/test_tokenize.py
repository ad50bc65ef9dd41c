"""Rasa-compatible whitespace tokenisation, BILOU/BIO tags, and annotation alignment checks."""
from __future__ import annotations

import pytest

from nlu_models.data.errors import SourceLocation
from nlu_models.data.schema import EntitySpan, Message
from nlu_models.tokenize import (
    Token,
    WhitespaceTokenizer,
    align_spans,
    aligned_spans,
    bilou_tags,
    bio_tags,
    check_alignment,
    parse_tag,
    spans_from_tags,
    split_whitespace,
    tags_for,
    tokenize,
)


def span(text: str, surface: str, entity: str, role=None, group=None, nth: int = 0) -> EntitySpan:
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    return EntitySpan(start, start + len(surface), surface, entity, role, group)


# ---- tokenizer -------------------------------------------------------------------------------
# (text, words, start offsets): cases from Rasa's own WhitespaceTokenizer tests plus our own.
RASA_CASES = [
    ("Forecast for lunch", ["Forecast", "for", "lunch"], [0, 9, 13]),
    ("hey ńöñàśçií how're you?", ["hey", "ńöñàśçií", "how", "re", "you"], [0, 4, 13, 17, 20]),
    ("50 क्या आपके पास डेरी मिल्क 10 वाले बॉक्स मिल सकते है",
     ["50", "क्या", "आपके", "पास", "डेरी", "मिल्क", "10", "वाले", "बॉक्स", "मिल", "सकते", "है"],
     [0, 3, 8, 13, 17, 22, 28, 31, 36, 42, 46, 51]),
    ("https://www.google.com/search?client=safari&rls=en&q=i+like+rasa&ie=UTF-8&oe=UTF-8 "
     "https://rasa.com/docs/nlu/components/#tokenizer-whitespace",
     ["https://www.google.com/search?client=safari&rls=en&q=i+like+rasa&ie=UTF-8&oe=UTF-8",
      "https://rasa.com/docs/nlu/components/#tokenizer-whitespace"], [0, 83]),
    ("Joselico gracias Dois 🙏🇺🇸🏦🛠🔥⭐️🦅👑💪", ["Joselico", "gracias", "Dois"], [0, 9, 17]),
    (":)", [":)"], [0]),
    ("Hi :-)", ["Hi"], [0]),
    ("👍", ["👍"], [0]),
    ("Hi, how are you?", ["Hi", "how", "are", "you"], [0, 4, 8, 12]),
    ("it costs 10'000.00 dollars", ["it", "costs", "10'000.00", "dollars"], [0, 3, 9, 19]),
    ("mail bla.bla@gmail.com!", ["mail", "bla.bla@gmail.com"], [0, 5]),
    ("Forecast for  Berlin   tomorrow.", ["Forecast", "for", "Berlin", "tomorrow"],
     [0, 9, 14, 23]),
    ("München, Zürich & Köln", ["München", "Zürich", "&", "Köln"], [0, 9, 16, 18]),
    ("(Berlin) -5 .5 \"quoted\"", ["Berlin", "-5", ".5", "quoted"], [1, 9, 12, 16]),
    ("#hashtag @user", ["#hashtag", "@user"], [0, 9]),
    ("hello\tworld\nnew", ["hello", "world", "new"], [0, 6, 12]),
    ("fly to new york, then to york", ["fly", "to", "new", "york", "then", "to", "york"],
     [0, 4, 7, 11, 17, 22, 25]),
]


@pytest.mark.parametrize("text, words, starts", RASA_CASES)
def test_whitespace_tokenizer_matches_rasa(text, words, starts):
    tokens = tokenize(text)
    assert [t.text for t in tokens] == words
    assert [t.start for t in tokens] == starts
    for token in tokens:
        assert text[token.start:token.end] == token.text
        assert token.end == token.start + len(token.text)


def test_blank_text_gives_no_tokens():
    assert tokenize("") == []
    assert tokenize("   ") == []


def test_rasa_emoji_filter_quirk_drops_cjk_words():
    # Rasa's emoji character range spans CJK ideographs; it keeps only the Latin word here.
    assert [t.text for t in WhitespaceTokenizer().tokenize("東京 tokyo")] == ["tokyo"]


def test_split_whitespace_keeps_punctuation():
    tokens = split_whitespace(" a  b-c ,d ")
    assert tokens == [Token("a", 1, 2), Token("b-c", 4, 7), Token(",d", 8, 10)]


# ---- tags ------------------------------------------------------------------------------------
TEXT = "fly from new york to berlin tomorrow"


@pytest.fixture
def tokens():
    return tokenize(TEXT)


@pytest.fixture
def spans():
    return [span(TEXT, "new york", "city", role="from", group="1"),
            span(TEXT, "berlin", "city", role="to")]


def test_bilou_and_bio_tags(tokens, spans):
    assert bilou_tags(tokens, spans) == ["O", "O", "B-city", "L-city", "O", "U-city", "O"]
    assert bio_tags(tokens, spans) == ["O", "O", "B-city", "I-city", "O", "B-city", "O"]
    three = [span(TEXT, "from new york", "x")]
    assert bilou_tags(tokens, three) == ["O", "B-x", "I-x", "L-x", "O", "O", "O"]


def test_tags_for_role_and_group_heads(tokens, spans):
    assert tags_for(tokens, spans, "role") == ["O", "O", "B-from", "L-from", "O", "U-to", "O"]
    assert tags_for(tokens, spans, "group", "BIO") == ["O", "O", "B-1", "I-1", "O", "O", "O"]
    assert bilou_tags(tokens, spans, label_fn=lambda s: s.label) == [
        "O", "O", "B-city.1.from", "L-city.1.from", "O", "U-city.to", "O"]
    with pytest.raises(ValueError, match="attribute"):
        tags_for(tokens, spans, "value")
    with pytest.raises(ValueError, match="scheme"):
        tags_for(tokens, spans, scheme="IOB2")


def test_tags_skip_misaligned_and_overlapping_spans(tokens):
    bad = [EntitySpan(9, 15, "new yo", "city"), span(TEXT, "berlin", "city"),
           span(TEXT, "berlin tomorrow", "date")]
    assert bilou_tags(tokens, bad) == ["O", "O", "O", "O", "O", "U-city", "O"]


@pytest.mark.parametrize("scheme", ["BILOU", "BIO"])
def test_encode_decode_round_trip(tokens, spans, scheme):
    tags = tags_for(tokens, spans, scheme=scheme)
    decoded = spans_from_tags(tokens, tags, TEXT, scheme)
    assert [(s.start, s.end, s.entity, s.value) for s in decoded] == [
        (s.start, s.end, s.entity, TEXT[s.start:s.end]) for s in spans]
    assert tags_for(tokens, decoded, scheme=scheme) == tags


def test_adjacent_same_type_entities_round_trip(tokens):
    adjacent = [span(TEXT, "new", "city"), span(TEXT, "york", "city")]
    for scheme in ("BILOU", "BIO"):
        tags = tags_for(tokens, adjacent, scheme=scheme)
        assert len(spans_from_tags(tokens, tags, TEXT, scheme)) == 2


@pytest.mark.parametrize("tags, expected", [
    (["I-x", "I-x", "O"], [(0, 2, "x")]),                       # I- without B- starts one
    (["O", "I-x", "L-x"], [(1, 3, "x")]),
    (["B-x", "I-y", "O"], [(0, 1, "x"), (1, 2, "y")]),          # a label change starts one
    (["U-x", "U-x", "O"], [(0, 1, "x"), (1, 2, "x")]),
    (["B-x", "L-x", "L-x"], [(0, 2, "x"), (2, 3, "x")]),        # L- closes the entity
    (["B-x", "O", "L-x"], [(0, 1, "x"), (2, 3, "x")]),
    (["x", "x", "O"], [(0, 2, "x")]),                           # bare labels (no prefix)
])
def test_lenient_decoding(tags, expected):
    tokens = [Token("a", 0, 1), Token("b", 2, 3), Token("c", 4, 5)]
    decoded = spans_from_tags(tokens, tags, "a b c", "BILOU")
    assert [(tokens.index(next(t for t in tokens if t.start == s.start)),
             tokens.index(next(t for t in tokens if t.end == s.end)) + 1, s.entity)
            for s in decoded] == expected
    assert all(s.value == "a b c"[s.start:s.end] for s in decoded)


def test_decoding_checks_lengths():
    with pytest.raises(ValueError, match="1 tokens but 2 tags"):
        spans_from_tags([Token("a", 0, 1)], ["O", "O"], "a")


def test_parse_tag():
    assert parse_tag("B-fromloc.city_name") == ("B", "fromloc.city_name")
    assert parse_tag("O") == ("O", None)
    assert parse_tag("U-a-b") == ("U", "a-b")


# ---- alignment -------------------------------------------------------------------------------
def test_span_ending_inside_a_token_is_reported():
    text = "to Berlins please"
    report = align_spans(text, tokenize(text), [EntitySpan(3, 9, "Berlin", "city")])
    assert not report.ok and report.aligned == []
    assert report.issues[0].reason == (
        "entity 'city' [3:9] 'Berlin' ends inside token 'Berlins' [3:10]")


def test_span_starting_inside_a_token_is_reported():
    text = "to xBerlin please"
    [issue] = align_spans(text, tokenize(text), [EntitySpan(4, 10, "Berlin", "city")]).issues
    assert issue.reason == "entity 'city' [4:10] 'Berlin' starts inside token 'xBerlin' [3:10]"


def test_span_including_dropped_punctuation_is_reported():
    text = "see (Berlin) now"
    [issue] = align_spans(text, tokenize(text), [EntitySpan(4, 12, "(Berlin)", "city")]).issues
    assert "starts at 4, between tokens" in issue.reason
    assert "ends at 12, between tokens" in issue.reason


@pytest.mark.parametrize("bad, reason", [
    (EntitySpan(3, 40, "x", "city"), "outside the text"),
    (EntitySpan(5, 5, "", "city"), "outside the text or empty"),
    (EntitySpan(2, 3, " ", "gap"), "covers no token"),
])
def test_other_alignment_problems(bad, reason):
    text = "to Berlin"
    [issue] = align_spans(text, tokenize(text), [bad]).issues
    assert reason in issue.reason


def test_overlapping_span_is_reported_and_first_kept():
    text = "to new york"
    first, second = span(text, "new york", "city"), span(text, "york", "state")
    report = align_spans(text, tokenize(text), [first, second])
    assert report.aligned == [first]
    assert report.issues[0].reason == (
        "entity 'state' [7:11] 'york' overlaps entity 'city' [3:11] 'new york'")


def test_aligned_spans_keeps_the_good_ones():
    text = "from Berlins to Paris"
    good = span(text, "Paris", "city")
    assert aligned_spans(text, tokenize(text), [EntitySpan(5, 11, "Berlin", "city"), good]) == [
        good]


def test_check_alignment_prefixes_source_location():
    bad = Message("to Berlins", "travel", [EntitySpan(3, 9, "Berlin", "city")],
                  source=SourceLocation("data/nlu.yml", 12))
    ok = Message("to Berlin", "travel", [EntitySpan(3, 9, "Berlin", "city")],
                 source=SourceLocation("data/nlu.yml", 13))
    unknown = Message("to Berlins", "travel", [EntitySpan(3, 9, "Berlin", "city")])
    lines = check_alignment([bad, ok, unknown])
    assert lines == [
        "data/nlu.yml:12: entity 'city' [3:9] 'Berlin' ends inside token 'Berlins' [3:10] "
        "in 'to Berlins'",
        "entity 'city' [3:9] 'Berlin' ends inside token 'Berlins' [3:10] in 'to Berlins'",
    ]
