"""The embedded demo bot meets its brief and validates without a single warning."""
from __future__ import annotations

from dialogue_models.project import bot_stats, load_bot
from dialogue_models.validation import validate_bot
from tests.conftest import DEMO_BOT


def test_demo_bot_meets_its_brief():
    bot = load_bot(DEMO_BOT)
    stats = bot_stats(bot)
    assert stats["intents"] >= 12 and stats["examples"] >= 400
    assert {"size", "topping", "crust", "city", "date"} <= set(bot.nlu.entity_types)
    assert stats["synonyms"] >= 1 and stats["lookups"] >= 1 and stats["regexes"] >= 1
    assert any(e.role for m in bot.nlu.examples for e in m.entities)
    assert "pizza_order_form" in bot.domain.forms and stats["slots"] >= 5
    assert stats["stories"] >= 25 and stats["rules"] >= 10
    assert stats["test_examples"] > 0 and stats["test_stories"] > 0


def test_demo_bot_validates_cleanly():
    issues = validate_bot(load_bot(DEMO_BOT, collect_errors=True))
    assert issues == []


def test_demo_test_data_is_held_out():
    bot = load_bot(DEMO_BOT)
    training = {m.text.lower() for m in bot.nlu.examples}
    assert not [m.text for m in bot.test_nlu.examples if m.text.lower() in training]
