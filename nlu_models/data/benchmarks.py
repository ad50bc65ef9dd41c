"""Readers for the public NLU benchmarks in their upstream formats, producing :class:`NLUData`.

- JointBERT / SlotGated-SLU folders (SNIPS, ATIS): ``seq.in`` (space-tokenised text),
  ``seq.out`` (BIO tags) and ``label`` (intent), one example per line.
- CLINC150 (oos-eval) JSON: ``{"train": [[text, intent], ...], "oos_train": [...], ...}``.
- HWU64 (NLU-Evaluation-Data, Liu et al. 2019 folds): ``;``-separated CSV with entities inline
  as ``[type : value]``, plus optional Rasa-style JSON under ``testset/annotated``.

Every message carries ``source=SourceLocation(file, line)``; malformed input raises
:class:`DataError` naming the file and line.
"""
from __future__ import annotations

import csv
import json
import re
from bisect import bisect_right
from pathlib import Path
from typing import Any, Iterator

from nlu_models.data.errors import DataError, SourceLocation
from nlu_models.data.schema import EntitySpan, Message, NLUData
from nlu_models.tokenize import split_whitespace, spans_from_tags

_BIO_TAG = re.compile(r"O|[BI]-\S+")
HWU64_COLUMNS = ("answerid", "scenario", "intent", "answer_annotation")


# ---- JointBERT (SNIPS, ATIS) -------------------------------------------------------------------
def read_jointbert(split_dir: str | Path) -> NLUData:
    """Read ``seq.in`` / ``seq.out`` / ``label`` from one split folder (e.g. ``snips/.../train``).

    The text is the tokens joined by single spaces; BIO tags become character spans on those
    tokens. Multi-intent labels such as ``atis_flight#atis_airfare`` are kept as they are.
    """
    split_dir = Path(split_dir)
    paths = {name: split_dir / name for name in ("seq.in", "seq.out", "label")}
    for path in paths.values():
        if not path.is_file():
            raise DataError(f"missing file {path.name} in JointBERT split folder", path,
                            hint="a JointBERT split folder holds seq.in, seq.out and label")
    lines = {name: _read_lines(path) for name, path in paths.items()}
    counts = {name: len(found) for name, found in lines.items()}
    if len(set(counts.values())) != 1:
        shortest = min(counts, key=counts.get)
        raise DataError(f"line counts differ: {counts}", paths[shortest], counts[shortest] + 1,
                        hint="seq.in, seq.out and label need one line per example")
    examples = [
        _jointbert_example(words, tags, label, paths, number)
        for number, (words, tags, label)
        in enumerate(zip(lines["seq.in"], lines["seq.out"], lines["label"]), start=1)
    ]
    return NLUData(examples=examples)


def _jointbert_example(words: str, tags: str, label: str, paths: dict[str, Path],
                       number: int) -> Message:
    text = " ".join(words.split())
    tokens = split_whitespace(text)
    tag_list = tags.split()
    if not tokens:
        raise DataError("empty utterance", paths["seq.in"], number)
    if len(tag_list) != len(tokens):
        raise DataError(f"{len(tokens)} tokens in seq.in but {len(tag_list)} tags in seq.out",
                        paths["seq.out"], number, hint=f"utterance: '{text}'")
    bad = next((t for t in tag_list if not _BIO_TAG.fullmatch(t)), None)
    if bad is not None:
        raise DataError(f"'{bad}' is not a BIO tag (O, B-type or I-type)", paths["seq.out"],
                        number)
    intent = label.strip()
    if not intent or " " in intent:
        raise DataError(f"intent label '{label}' is empty or has spaces", paths["label"], number)
    return Message(text=text, intent=intent, entities=spans_from_tags(tokens, tag_list, text,
                                                                       scheme="BIO"),
                   source=SourceLocation(str(paths["seq.in"]), number))


def _read_lines(path: Path) -> list[str]:
    """Lines without their ``\\n`` (only ``\\n`` separates; no final empty line)."""
    content = path.read_text(encoding="utf-8")
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


# ---- CLINC150 ----------------------------------------------------------------------------------
def read_clinc150(json_file: str | Path, split: str = "train",
                  include_oos: bool = True) -> NLUData:
    """One split of a CLINC150 file (``data_full.json`` etc.); out-of-scope examples get ``oos``."""
    path = Path(json_file)
    located = _top_level_lists(path)
    if split not in located:
        raise DataError(f"no split '{split}' in CLINC150 file; available: "
                        f"{', '.join(sorted(located))}", path)
    keys = [split, f"oos_{split}"] if include_oos else [split]
    examples = []
    for key in keys:
        for line, pair in located.get(key, []):
            examples.append(_clinc_example(pair, key, path, line))
    return NLUData(examples=examples)


def _clinc_example(pair: Any, key: str, path: Path, line: int) -> Message:
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
        raise DataError(f"'{key}' entry is not a [text, intent] pair: {pair!r}", path, line)
    text, intent = pair
    intent = "oos" if key.startswith("oos_") else intent
    return Message(text=text, intent=intent, source=SourceLocation(str(path), line))


def _top_level_lists(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """For a JSON object whose values are lists: key → [(line of the element, element), ...]."""
    content = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(content)  # validates, and reports the line of a syntax error
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON ({err.msg})", path, err.lineno) from None
    if not isinstance(whole, dict):
        raise DataError("expected a JSON object at the top level", path, 1)
    line_of = _line_index(content)
    return {key: [(line_of(offset), element) for offset, element in elements]
            for key, elements in _walk_object(content)}


def _walk_object(content: str) -> Iterator[tuple[str, list[tuple[int, Any]]]]:
    """Walk a valid top-level JSON object: (key, [(offset, element), ...]) per list value."""
    decoder = json.JSONDecoder()
    pos = _skip_space(content, _skip_space(content, 0) + 1)  # past "{"
    while content[pos] != "}":
        key, pos = decoder.raw_decode(content, pos)
        pos = _skip_space(content, _skip_space(content, pos) + 1)  # past ":"
        if content[pos] == "[":
            elements, pos = _walk_array(content, pos)
            yield key, elements
        else:
            _, pos = decoder.raw_decode(content, pos)
        pos = _skip_space(content, pos)
        pos = _skip_space(content, pos + 1) if content[pos] == "," else pos


def _walk_array(content: str, pos: int) -> tuple[list[tuple[int, Any]], int]:
    """Elements of the array opening at ``pos`` with their offsets, and the offset after it."""
    decoder = json.JSONDecoder()
    elements = []
    pos = _skip_space(content, pos + 1)  # past "["
    while content[pos] != "]":
        element, end = decoder.raw_decode(content, pos)
        elements.append((pos, element))
        pos = _skip_space(content, end)
        pos = _skip_space(content, pos + 1) if content[pos] == "," else pos
    return elements, pos + 1


def _skip_space(content: str, pos: int) -> int:
    while pos < len(content) and content[pos] in " \t\r\n":
        pos += 1
    return pos


def _line_index(content: str):
    """A function from character offset to 1-based line number."""
    newlines = [i for i, char in enumerate(content) if char == "\n"]
    return lambda offset: bisect_right(newlines, offset - 1) + 1


# ---- HWU64 -------------------------------------------------------------------------------------
def read_hwu64(fold_dir: str | Path, split: str = "train") -> NLUData:
    """One fold of the Liu et al. (2019) 10-fold split: ``KFold_N/trainset/*.csv`` (train) or
    ``KFold_N/testset/csv/*.csv`` (test). The intent is ``{scenario}_{intent}``."""
    fold_dir = Path(fold_dir)
    folders = {"train": fold_dir / "trainset", "test": fold_dir / "testset" / "csv"}
    if split not in folders:
        raise DataError(f"unknown HWU64 split '{split}'; available: train, test", fold_dir)
    files = sorted(folders[split].glob("*.csv"))
    if not files:
        raise DataError(f"no CSV files in {folders[split]}", folders[split],
                        hint="point at a KFold_N folder of liu2019_10fold")
    return NLUData(examples=[m for path in files for m in _read_hwu64_csv(path)])


def _read_hwu64_csv(path: Path) -> list[Message]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=";", quotechar='"')
        header = next(reader, None)
        if header is None or tuple(header[:4]) != HWU64_COLUMNS:
            raise DataError(f"unexpected header {header}; expected it to start with "
                            f"{';'.join(HWU64_COLUMNS)}", path, 1)
        messages = []
        for row in reader:
            line = reader.line_num
            if len(row) < len(HWU64_COLUMNS):
                raise DataError(f"{len(row)} columns, expected at least {len(HWU64_COLUMNS)}",
                                path, line)
            _, scenario, intent, annotated = row[:4]
            text, spans = parse_hwu64_annotation(annotated, path, line)
            messages.append(Message(text=text, intent=f"{scenario}_{intent}", entities=spans,
                                    source=SourceLocation(str(path), line)))
        return messages


def parse_hwu64_annotation(annotated: str, file: str | Path | None = None,
                           line: int | None = None) -> tuple[str, list[EntitySpan]]:
    """``"wake me at [time : six am]"`` → ``("wake me at six am", [time 11:17])``."""
    plain: list[str] = []
    spans: list[EntitySpan] = []
    length = 0
    pos = 0
    while pos < len(annotated):
        opening = annotated.find("[", pos)
        closing = annotated.find("]", pos)
        if closing >= 0 and (opening < 0 or closing < opening):
            raise DataError(f"']' without '[' at column {closing + 1} in '{annotated}'", file,
                            line, hint="entities are written [type : value]")
        if opening < 0:
            plain.append(annotated[pos:])
            break
        plain.append(annotated[pos:opening])
        length += opening - pos
        entity, value, pos = _hwu64_entity(annotated, opening, file, line)
        spans.append(EntitySpan(start=length, end=length + len(value), value=value,
                                entity=entity))
        plain.append(value)
        length += len(value)
    return "".join(plain), spans


def _hwu64_entity(annotated: str, opening: int, file, line) -> tuple[str, str, int]:
    """Parse ``[type : value]`` at ``opening``; return type, value and the offset after ``]``."""
    closing = annotated.find("]", opening + 1)
    nested = annotated.find("[", opening + 1)
    if closing < 0 or 0 <= nested < closing:
        raise DataError(f"unclosed '[' at column {opening + 1} in '{annotated}'", file, line,
                        hint="entities are written [type : value]")
    entity, colon, value = annotated[opening + 1:closing].partition(":")
    entity, value = entity.strip(), value.strip()
    if not colon or not entity or not value or " " in entity:
        raise DataError(f"malformed entity '{annotated[opening:closing + 1]}' in '{annotated}'",
                        file, line, hint="entities are written [type : value]")
    return entity, value, closing + 1


def read_hwu64_annotated_json(fold_dir: str | Path) -> NLUData:
    """The test fold as Rasa-style JSON: ``KFold_N/testset/annotated/<intent>/*.json``."""
    folder = Path(fold_dir) / "testset" / "annotated"
    files = sorted(folder.glob("*/*.json"))
    if not files:
        raise DataError(f"no annotated JSON files in {folder}", folder)
    examples = []
    for path in files:
        for line, entry in _top_level_lists(path).get("test_data_annotation", []):
            examples.append(_annotated_example(entry, path, line))
    return NLUData(examples=examples)


def _annotated_example(entry: Any, path: Path, line: int) -> Message:
    try:
        text = entry["text"]
        spans = [EntitySpan(start=e["start"], end=e["end"], value=e["value"], entity=e["entity"])
                 for e in entry.get("entities", [])]
        return Message(text=text, intent=entry["intent"], entities=spans,
                       source=SourceLocation(str(path), line))
    except (KeyError, TypeError) as err:
        raise DataError(f"annotated example lacks {err}: {entry!r}", path, line,
                        hint="each example needs text, intent and entities with start, end, "
                             "value, entity") from None


# ---- format detection --------------------------------------------------------------------------
def detect_benchmark_format(path: str | Path) -> str | None:
    """``"jointbert"``, ``"clinc150"``, ``"hwu64"`` or None for anything else."""
    path = Path(path)
    if path.is_dir():
        if (path / "seq.in").is_file() or (path / "train" / "seq.in").is_file():
            return "jointbert"
        if (path / "trainset").is_dir() or any(path.glob("KFold_*/trainset")):
            return "hwu64"
        return None
    if path.is_file() and path.suffix == ".json" and _looks_like_clinc150(path):
        return "clinc150"
    return None


def _looks_like_clinc150(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    if not isinstance(data, dict) or not {"train", "val", "test"} <= data.keys():
        return False
    return all(isinstance(data[k], list) and
               all(isinstance(p, list) and len(p) == 2 for p in data[k][:5])
               for k in ("train", "val", "test"))
