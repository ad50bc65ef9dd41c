"""A whole Rasa assistant (or any set of data files) loaded into one :class:`BotData`.

A Rasa YAML file may mix ``nlu``, ``stories``, ``rules`` and domain keys; each file is parsed
once and every part goes where it belongs. Files under a ``tests``/``test_stories`` folder, or
named ``test*``, are test data and kept apart from training data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from dialogue_models.domain import DOMAIN_KEYS, Domain, domain_from_yaml, read_domain_yaml
from dialogue_models.stories import StoryData, read_markdown_stories, stories_from_yaml
from nlu_models.data.errors import DataError, DataIssue, SourceLocation
from nlu_models.data.loading import (MARKDOWN_SUFFIXES, YAML_SUFFIXES, detect_format,
                                     iter_data_files, load_nlu)
from nlu_models.data.rasa_markdown import is_markdown_nlu, parse_markdown_nlu
from nlu_models.data.rasa_yaml import check_version, nlu_from_yaml
from nlu_models.data.schema import NLUData
from nlu_models.data.files import read_text

# keys of Rasa's config.yml, endpoints.yml and credentials.yml: not data, skipped quietly
CONFIG_KEYS = frozenset({"recipe", "language", "pipeline", "policies", "assistant_id",
                         "action_endpoint", "tracker_store", "event_broker", "rest", "socketio"})
TRAINING_KEYS = frozenset({"nlu", "stories", "rules"}) | DOMAIN_KEYS
TEST_FOLDERS = frozenset({"tests", "test", "test_stories", "test_data"})


@dataclass
class BotData:
    """Domain, training NLU and stories, and test NLU and stories of one assistant."""

    domain: Domain = field(default_factory=Domain)
    nlu: NLUData = field(default_factory=NLUData)
    stories: StoryData = field(default_factory=StoryData)
    test_nlu: NLUData = field(default_factory=NLUData)
    test_stories: StoryData = field(default_factory=StoryData)
    files: list[Path] = field(default_factory=list)
    issues: list[DataIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[DataIssue]:
        return [i for i in self.issues if i.level == "error"]


def is_test_file(path: Path, root: Path) -> bool:
    """Test data inside a folder: under tests/ (or similar) or named test*. A file given on its
    own is whatever the caller uses it for, so it counts as training data."""
    if path == root:
        return False
    parts = path.relative_to(root).parts
    return any(p in TEST_FOLDERS for p in parts[:-1]) or path.name.startswith("test")


def load_bot(paths: str | Path | Iterable[str | Path], format: str = "auto",
             collect_errors: bool = False) -> BotData:
    """Load every data file under ``paths``.

    With ``collect_errors`` a broken file becomes an error in ``BotData.issues`` and the other
    files are still read (what ``dialab data validate`` needs); otherwise the DataError is raised.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    bot = BotData()
    for root in map(Path, paths):
        try:
            fmt = detect_format(root) if format == "auto" else format
            if fmt in ("rasa", "rasa-md"):
                _load_rasa_files(bot, root, collect_errors)
            else:
                _load_benchmark(bot, root, fmt)
        except DataError as err:
            if not collect_errors:
                raise
            bot.issues.append(_issue_from(err))
    return bot


def _load_benchmark(bot: BotData, root: Path, fmt: str) -> None:
    """Benchmark layouts: train split as training data, test split as test data."""
    bot.files.append(root)
    bot.nlu = bot.nlu.merge(load_nlu(root, fmt, split="train"))
    bot.test_nlu = bot.test_nlu.merge(load_nlu(root, fmt, split="test"))


def _load_rasa_files(bot: BotData, root: Path, collect_errors: bool) -> None:
    for file in iter_data_files(root, YAML_SUFFIXES + MARKDOWN_SUFFIXES):
        try:
            _load_file(bot, file, is_test_file(file, root))
        except DataError as err:
            if not collect_errors:
                raise
            bot.issues.append(_issue_from(err))


def _load_file(bot: BotData, file: Path, is_test: bool) -> None:
    if file.suffix in MARKDOWN_SUFFIXES:
        text = read_text(file)
        if is_markdown_nlu(text):
            nlu, stories = parse_markdown_nlu(text, file), StoryData()
        elif _looks_like_markdown_stories(text):
            nlu, stories = NLUData(), read_markdown_stories(file)
        else:
            return  # a README or other prose
    else:
        doc, tab_warnings = read_domain_yaml(file)
        bot.issues.extend(DataIssue("warning", w) for w in tab_warnings)
        if isinstance(doc, dict) and not (TRAINING_KEYS & set(doc)) and CONFIG_KEYS & set(doc):
            return
        if not isinstance(doc, dict) or not (TRAINING_KEYS & set(doc)):
            bot.issues.append(DataIssue("warning", "not training data (no nlu, stories, rules "
                                        "or domain keys); skipped", SourceLocation(str(file))))
            return
        check_version(doc, file)
        nlu = nlu_from_yaml(doc, file)
        stories = stories_from_yaml(doc, file) if {"stories", "rules"} & set(doc) else StoryData()
        if DOMAIN_KEYS & set(doc):
            domain = domain_from_yaml(doc, file)
            bot.domain = bot.domain.merge(domain)
            bot.issues.extend(DataIssue("warning", w) for w in getattr(domain, "warnings", []))
    bot.files.append(file)
    if is_test:
        bot.test_nlu = bot.test_nlu.merge(nlu)
        bot.test_stories = bot.test_stories.merge(stories)
    else:
        bot.nlu = bot.nlu.merge(nlu)
        bot.stories = bot.stories.merge(stories)


def _looks_like_markdown_stories(text: str) -> bool:
    lines = [ln.strip() for ln in text.splitlines()]
    return any(ln.startswith("## ") for ln in lines) and any(ln.startswith("* ") for ln in lines)


def _issue_from(err: DataError) -> DataIssue:
    location = SourceLocation(err.file, err.line) if err.file else None
    message = err.reason + (f" (hint: {err.hint})" if err.hint else "")
    return DataIssue("error", message, location)


def bot_stats(bot: BotData) -> dict:
    """Counts of everything in ``bot``, as printed by ``dialab data stats``."""
    nlu, domain = bot.nlu, bot.domain
    return {
        "files": len(bot.files),
        "examples": len(nlu.examples),
        "intents": len({m.retrieval_intent for m in nlu.examples if m.intent}),  # faq once
        "response_keys": len({m.intent for m in nlu.examples if m.response_key}),
        "entity_types": len(nlu.entity_types),
        "entity_annotations": sum(len(m.entities) for m in nlu.examples),
        "synonyms": len(nlu.synonyms),
        "regexes": len(nlu.regexes),
        "lookups": len(nlu.lookups),
        "lookup_elements": sum(len(t.elements) for t in nlu.lookups),
        "retrieval_intents": len(nlu.retrieval_intents),
        "stories": len(bot.stories.stories),
        "rules": len(bot.stories.rules),
        "test_examples": len(bot.test_nlu.examples),
        "test_stories": len(bot.test_stories.stories),
        "domain_intents": len(domain.intents),
        "domain_entities": len(domain.entities),
        "slots": len(domain.slots),
        "forms": len(domain.forms),
        "responses": len(domain.responses),
        "actions": len(domain.actions),
        "examples_per_intent": nlu.count_by_intent(),
    }
