"""Load NLU data from any supported format: one entry point, format detected or given."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from nlu_models.data.errors import DataError
from nlu_models.data.schema import NLUData

FORMATS = ("auto", "rasa", "rasa-md", "jointbert", "clinc150", "hwu64")
YAML_SUFFIXES = (".yml", ".yaml")
MARKDOWN_SUFFIXES = (".md",)


def iter_data_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """``path`` itself, or the files with ``suffixes`` below it (sorted, hidden ones skipped)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def detect_format(path: str | Path) -> str:
    """The format of ``path`` (a file or folder) among :data:`FORMATS` minus ``auto``."""
    from nlu_models.data.benchmarks import detect_benchmark_format

    path = Path(path)
    if not path.exists():
        raise DataError("path does not exist", path)
    benchmark = detect_benchmark_format(path)
    if benchmark:
        return benchmark
    files = iter_data_files(path, YAML_SUFFIXES + MARKDOWN_SUFFIXES)
    if any(f.suffix in YAML_SUFFIXES for f in files):
        return "rasa"
    if any(_has_markdown_sections(f) for f in files):
        return "rasa-md"  # NLU or stories; the loaders tell them apart file by file
    raise DataError("cannot tell the data format: no Rasa YAML/Markdown NLU file and no "
                    "known benchmark layout found", path,
                    hint=f"pass --format, one of {', '.join(FORMATS[1:])}")


def _has_markdown_sections(file: Path) -> bool:
    text = file.read_text(encoding="utf-8", errors="replace")
    return any(line.startswith("## ") for line in text.splitlines())


def load_nlu(path: str | Path, format: str = "auto", split: str = "train") -> NLUData:
    """NLU examples from ``path``. ``split`` picks train/val/test for benchmark layouts."""
    from nlu_models.data import benchmarks
    from nlu_models.data.rasa_markdown import is_markdown_nlu, read_markdown_nlu
    from nlu_models.data.rasa_yaml import read_nlu_yaml

    path = Path(path)
    if format not in FORMATS:
        raise DataError(f"unknown format '{format}'", path, hint=f"use one of {', '.join(FORMATS)}")
    if format == "auto":
        format = detect_format(path)
    if format == "rasa":
        return NLUData.concat(read_nlu_yaml(f) for f in iter_data_files(path, YAML_SUFFIXES))
    if format == "rasa-md":
        files = iter_data_files(path, MARKDOWN_SUFFIXES)
        return NLUData.concat(read_markdown_nlu(f) for f in files
                              if f == path or is_markdown_nlu(f.read_text(encoding="utf-8")))
    if format == "jointbert":
        return benchmarks.read_jointbert(_split_dir(path, split))
    if format == "clinc150":
        json_file = path if path.is_file() else path / "data_full.json"
        return benchmarks.read_clinc150(json_file, split="val" if split == "dev" else split)
    return benchmarks.read_hwu64(path, split="test" if split in ("val", "dev", "test") else split)


def _split_dir(path: Path, split: str) -> Path:
    if (path / "seq.in").exists():
        return path
    candidates: Iterable[str] = {"val": ("dev", "valid", "val")}.get(split, (split,))
    for name in candidates:
        if (path / name / "seq.in").exists():
            return path / name
    raise DataError(f"no '{split}' split (a folder with seq.in) under this JointBERT folder",
                    path, hint="use split=train, dev or test")
