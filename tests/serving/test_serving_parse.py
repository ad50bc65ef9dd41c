"""/model/parse and its batch form: Rasa's parse result shape, the "/intent{...}" shortcut
(no model call), the same results one at a time and batched."""
from __future__ import annotations

import pytest

from serving.intent_shortcut import parse_intent_shortcut


def test_parse_returns_rasas_parse_result(make_client, models):
    client = make_client(policy=False)
    answer = client.post("/model/parse", json={"text": "two large pepperoni pizzas please",
                                               "message_id": "m1"})
    assert answer.status_code == 200
    result = answer.json()
    assert {"text", "intent", "entities", "intent_ranking"} <= set(result)
    assert result["text"] == "two large pepperoni pizzas please"
    assert result["message_id"] == "m1"
    assert set(result["intent"]) == {"name", "confidence"}
    assert result["intent"]["name"] in models[0].labels.intents
    assert result["intent_ranking"][0] == result["intent"]
    confidences = [r["confidence"] for r in result["intent_ranking"]]
    assert confidences == sorted(confidences, reverse=True)
    for entity in result["entities"]:
        assert {"entity", "start", "end", "value", "confidence_entity", "extractor"} <= \
            set(entity)
    # the same as the interpreter itself
    expected = models[0].parse("two large pepperoni pizzas please")
    assert result["intent"]["name"] == expected["intent"]["name"]
    assert result["intent"]["confidence"] == pytest.approx(expected["intent"]["confidence"])


def test_the_intent_shortcut_skips_the_model(make_client, models, monkeypatch):
    client = make_client()  # the domain knows "inform" (the tiny DIET saw a slice of intents)

    def no_model(*_):
        raise AssertionError("the model was called")

    monkeypatch.setattr(models[0], "parse", no_model)
    text = '/inform{"size": "small", "topping": ["ham", "olives"]}'
    result = client.post("/model/parse", json={"text": text}).json()
    assert result["intent"] == {"name": "inform", "confidence": 1.0}
    assert result["intent_ranking"] == [{"name": "inform", "confidence": 1.0}]
    start = text.index("{")
    assert result["entities"] == [
        {"entity": "size", "start": start, "end": len(text), "value": "small"},
        {"entity": "topping", "start": start, "end": len(text), "value": "ham"},
        {"entity": "topping", "start": start, "end": len(text), "value": "olives"}]
    assert client.post("/model/parse", json={"text": "/greet"}).json()["entities"] == []


def test_shortcut_variants():
    assert parse_intent_shortcut("hello") is None
    assert parse_intent_shortcut("/ greet") is None
    assert parse_intent_shortcut("/greet@0.25")["intent"] == {"name": "greet",
                                                              "confidence": 0.25}
    roles = parse_intent_shortcut('/change_order[{"entity": "topping", "value": "ham", '
                                  '"role": "add"}]')
    assert [(e["entity"], e["value"], e.get("role")) for e in roles["entities"]] == \
        [("topping", "ham", "add")]
    broken = parse_intent_shortcut('/inform{"size": ')  # Rasa: the intent, no entities
    assert broken["intent"]["name"] == "inform" and broken["entities"] == []


def test_a_shortcut_to_an_unknown_intent_goes_to_the_model(make_client, models):
    result = make_client().post("/model/parse", json={"text": "/no_such_intent"})
    assert result.json()["intent"]["name"] in models[0].labels.intents


def test_batch_parse_matches_single_parses(make_client):
    client = make_client()
    texts = ["hi", "/greet", "I want a small margherita", '/inform{"crust": "thin"}', "bye"]
    answer = client.post("/model/parse/batch", json={"texts": texts})
    assert answer.status_code == 200
    batch = answer.json()
    assert [r["text"] for r in batch] == texts
    for text, result in zip(texts, batch):
        single = client.post("/model/parse", json={"text": text}).json()
        assert result["intent"]["name"] == single["intent"]["name"]
        assert result["intent"]["confidence"] == pytest.approx(single["intent"]["confidence"],
                                                               abs=1e-5)
    assert client.post("/model/parse/batch", json={"texts": []}).json() == []


def test_responses_render_as_json_would():
    """The server's orjson rendering gives what json.loads reads back from json.dumps for a
    parse result (unicode, nested lists, floats at full precision), numpy scalars as numbers,
    integer keys as strings, and NaN as null rather than an error."""
    import json

    import numpy as np

    from serving.middleware import FastJSONResponse

    result = {"text": "café à 8 €", "intent": {"name": "order", "confidence": 0.1 + 0.2},
              "entities": [{"entity": "size", "start": 0, "end": 4, "value": "café",
                            "confidence_entity": 0.999999123456789}],
              "intent_ranking": [{"name": "order", "confidence": 1e-12}]}
    body = FastJSONResponse(result).body
    assert json.loads(body) == json.loads(json.dumps(result))
    assert "café".encode() in body                      # UTF-8, not \\u escapes
    assert json.loads(FastJSONResponse({1: np.float32(0.5), "n": np.int64(3),
                                        "a": np.arange(2), "x": float("nan")}).body) == \
        {"1": 0.5, "n": 3, "a": [0, 1], "x": None}
