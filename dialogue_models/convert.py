"""Write a loaded :class:`BotData` back as Rasa YAML 3.1 (``dialab data convert``)."""
from __future__ import annotations

from pathlib import Path

from dialogue_models.domain import domain_to_plain
from dialogue_models.project import BotData
from dialogue_models.stories import StoryData, stories_to_plain
from nlu_models.data.errors import DataError
from nlu_models.data.rasa_yaml import WRITE_VERSION, dump_yaml, nlu_to_plain
from nlu_models.data.schema import NLUData


def _sections(nlu: NLUData, stories: StoryData) -> dict:
    return {**nlu_to_plain(nlu), **stories_to_plain(stories)}


def write_rasa_yaml(bot: BotData, out: Path) -> list[Path]:
    """One file when ``out`` ends in .yml/.yaml, else a Rasa project folder. Returns the files."""
    domain = domain_to_plain(bot.domain) if bot.domain.files else {}
    domain.pop("version", None)
    if out.suffix in (".yml", ".yaml"):
        if _sections(bot.test_nlu, bot.test_stories):
            raise DataError("the data has test examples or test stories; convert to a folder "
                            "to keep them apart from the training data", out)
        return [_write(out, {**domain, **_sections(bot.nlu, bot.stories)})]
    files = {
        out / "domain.yml": domain,
        out / "data" / "nlu.yml": nlu_to_plain(bot.nlu),
        out / "data" / "stories.yml": stories_to_plain(StoryData(stories=bot.stories.stories)),
        out / "data" / "rules.yml": stories_to_plain(StoryData(rules=bot.stories.rules)),
        out / "tests" / "test_nlu.yml": nlu_to_plain(bot.test_nlu),
        out / "tests" / "test_stories.yml": _sections(NLUData(), bot.test_stories),
    }
    return [_write(path, content) for path, content in files.items() if content]


def _write(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml({"version": WRITE_VERSION, **content}), encoding="utf-8")
    return path
