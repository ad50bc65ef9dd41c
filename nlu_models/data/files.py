"""Reading the text files that training data consists of, with errors that name file and line."""
from __future__ import annotations

from pathlib import Path

from nlu_models.data.errors import DataError


def read_text(path: str | Path) -> str:
    """A UTF-8 text file; decoding and I/O problems become DataError with file (and line)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read file: {err.strerror}", path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataError(f"file is not valid UTF-8 ({err.reason} at byte {err.start})", path,
                        line, hint="save the file with UTF-8 encoding") from None


def read_lookup_file(reference: str, file: str | Path, line: int | None) -> list[str]:
    """Elements of a lookup table kept in a text file, one per line, relative to ``file``."""
    candidate = Path(file).parent / reference
    if not candidate.is_file():
        raise DataError(f"lookup table file '{reference}' not found (looked in "
                        f"{candidate.parent})", file, line,
                        hint="give the path relative to the data file, or list the elements "
                             "as '- item' lines")
    return [ln.strip() for ln in read_text(candidate).splitlines() if ln.strip()]
