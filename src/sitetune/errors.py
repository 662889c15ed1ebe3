"""Errors every stage raises for bad input; the CLI turns them into a message and a non-zero exit."""

from __future__ import annotations


class SitetuneError(Exception):
    """A user-facing error: the message says what is wrong and, where it can, where (file, line, field)."""


class InputError(SitetuneError):
    """Malformed input: a file, row or field that cannot be used.

    Args:
        message: What is wrong.
        path: The file (or URL) it was read from, if any.
        line: 1-based line (CSV, JSONL) or row number (Parquet), if known.
        field: The column or key at fault, if known.
    """

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join([', '.join(where)] if where else [])}{': ' if where else ''}{message}")


class MissingDependencyError(SitetuneError):
    """An optional dependency is not installed; the message names the pip command that installs it."""

    def __init__(self, package: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the '{package}' package: pip install '{package}'")
