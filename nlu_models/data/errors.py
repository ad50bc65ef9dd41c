"""Errors and warnings about training data, always pointing at a file and a line."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """Malformed training data. ``str(err)`` reads ``file:line: reason`` (plus a hint line)."""

    def __init__(self, reason: str, file: str | Path | None = None, line: int | None = None,
                 hint: str | None = None):
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.line = line
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = f"{where}: {self.reason}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


@dataclass(frozen=True)
class SourceLocation:
    """Where an object was read from (1-based line)."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class DataIssue:
    """One finding of ``dialab data validate``: an error or a warning at a location."""

    level: str  # "error" | "warning"
    message: str
    location: SourceLocation | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{self.level.upper()} {where}{self.message}"
