"""Label spaces (Rasa's tag ids) and BILOU decoding of predicted tags into Rasa entities."""
from __future__ import annotations

from nlu_models.data.schema import EntitySpan, Message, NLUData
from nlu_models.diet.labels import DIETLabels
from nlu_models.tokenize import tokenize

TEXT = "fly from New York to Paris"
TOKENS = tokenize(TEXT)  # fly from New York to Paris


def labels() -> DIETLabels:
    data = NLUData(examples=[
        Message(TEXT, "travel", [EntitySpan(9, 17, "New York", "city", role="from"),
                                 EntitySpan(21, 26, "Paris", "city", role="to")]),
        Message("a big apple trip", "travel", [EntitySpan(2, 11, "NYC", "city")]),
        Message("hi", "greet"),
    ])
    return DIETLabels.from_data(data)


def test_tag_ids_follow_rasa():
    lab = labels()
    assert lab.intents == ["greet", "travel"]
    assert lab.tags("entity") == ["O", "B-city", "I-city", "L-city", "U-city"]
    assert lab.tags("role") == ["O", "B-from", "I-from", "L-from", "U-from",
                                "B-to", "I-to", "L-to", "U-to"]
    assert lab.num_tags("group") == 0
    assert lab.intent_id("greet") == 0 and lab.intent_id("unseen") == -1
    message = Message(TEXT, "travel", [EntitySpan(9, 17, "New York", "city", role="from"),
                                       EntitySpan(21, 26, "Paris", "city", role="to")])
    assert lab.tag_ids(message, TOKENS, "entity") == [0, 0, 1, 3, 0, 4]
    assert lab.tag_ids(message, TOKENS, "role") == [0, 0, 1, 3, 0, 8]
    assert lab.synonyms == {"big apple": "NYC"}


def test_decode_bilou_into_entities_with_min_confidence_and_roles():
    lab = labels()
    entity_tags = [0, 0, 1, 3, 0, 4]           # O O B L O U
    role_tags = [0, 0, 1, 3, 0, 8]
    conf = [0.9, 0.8, 0.7, 0.6, 0.9, 0.95]
    entities = lab.decode_entities(TEXT, TOKENS, {"entity": entity_tags, "role": role_tags},
                                   {"entity": conf, "role": [0.5] * 6})
    assert [(e["start"], e["end"], e["value"], e["entity"], e["role"]) for e in entities] == [
        (9, 17, "New York", "city", "from"), (21, 26, "Paris", "city", "to")]
    assert entities[0]["confidence_entity"] == 0.6      # min over the entity's tokens
    assert entities[1]["confidence_role"] == 0.5
    assert all(e["extractor"] == "DIETClassifier" for e in entities)


def test_decode_repairs_inconsistent_bilou_and_maps_synonyms():
    lab = labels()
    text = "the big apple please"
    tokens = tokenize(text)
    # I-city L-city without B: still one entity; value mapped through the synonyms
    entities = lab.decode_entities(text, tokens, {"entity": [0, 2, 3, 0]},
                                   {"entity": [1.0, 0.9, 0.8, 1.0]})
    assert len(entities) == 1
    assert (entities[0]["start"], entities[0]["end"], entities[0]["value"]) == (4, 13, "NYC")
    # U followed by L of the same type: two entities (U closes its entity)
    entities = lab.decode_entities(text, tokens, {"entity": [0, 4, 3, 0]},
                                   {"entity": [1.0] * 4})
    assert [(e["start"], e["end"]) for e in entities] == [(4, 7), (8, 13)]


def test_labels_round_trip_through_json():
    import json

    lab = labels()
    assert DIETLabels.from_dict(json.loads(json.dumps(lab.to_dict()))) == lab
