"""The query log: what was asked, whether the pages answered it, and what readers thought of the answer.

``sitetune serve --query-log PATH`` appends one JSON object per line to PATH (off by default):

- ``{"v": 1, "type": "question", "id": ..., "time": ..., "question": ..., "page": ..., "answered": ...,
  "mode": ..., "score": ..., "top": [section, ...], "cited": [section, ...]}`` for every ``POST /answer``;
  a section is ``{"chunk_id", "page_name", "section_title"}``.
- ``{"v": 1, "type": "feedback", "id": ..., "time": ..., "helpful": true|false}`` for every thumbs-up or
  thumbs-down posted from the page to ``POST /feedback``; ``id`` is the answer's, so the report joins them.

Privacy by construction: no IP address, user agent, cookie, session or account is written, and ``id`` is
random per answer, so two questions from one person cannot be linked. Questions are stored as typed but
with e-mail addresses and long digit runs (phone, student and application numbers) replaced by
``[email]`` and ``[number]``. Times are UTC to the second.

The file is capped: when the next line would pass ``max_bytes``, PATH becomes PATH.1 (PATH.1 becomes
PATH.2 and so on) and the oldest beyond ``keep`` files is deleted, so the log never holds more than
about ``max_bytes * (keep + 1)`` bytes. Each line is written with one ``write`` under an exclusive lock on
PATH.lock, so several server processes can share one log.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitetune.errors import InputError

LOG_VERSION = 1
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
#: Smallest cap accepted: a line (a question of 1,000 characters and its sections) must fit.
MIN_MAX_BYTES = 64 * 1024
#: Sections listed under "top" (the best hits) per question.
TOP_SECTIONS = 3
ID_PATTERN = r"^[0-9a-f]{16}$"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven or more digits in one run, allowing the separators people type in phone and ID numbers.
_LONG_NUMBER = re.compile(r"\+?\d(?:[\s().-]?\d){6,}")
_ID = re.compile(ID_PATTERN)


def redact(question: str) -> str:
    """``question`` with e-mail addresses and runs of 7+ digits replaced by ``[email]`` and ``[number]``.

    Years, scores and fees ("2025", "6.5", "12,000") are kept: they are what questions are about.
    """
    return _LONG_NUMBER.sub("[number]", _EMAIL.sub("[email]", question))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def section_entry(chunk_id: str, page_name: str, section_title: str) -> dict[str, str]:
    """A section as the log stores it."""
    return {"chunk_id": chunk_id, "page_name": page_name, "section_title": section_title}


class QueryLog:
    """Appends questions and feedback to a size-capped, rotated JSON-lines file.

    Args:
        path: The log file (created if missing; its folder must exist).
        max_bytes: Size at which the file is rotated.
        keep: Rotated files kept (PATH.1 is the newest).

    Raises:
        InputError: The folder does not exist, the path is a folder, or the cap is below MIN_MAX_BYTES.
    """

    def __init__(self, path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        self.path = Path(path)
        if max_bytes < MIN_MAX_BYTES:
            raise InputError(f"the query log cap must be at least {MIN_MAX_BYTES} bytes", path=str(self.path))
        if keep < 0:
            raise InputError("the number of rotated query logs kept must be 0 or more", path=str(self.path))
        if not self.path.parent.is_dir():
            raise InputError("the query log's folder does not exist", path=str(self.path))
        if self.path.is_dir():
            raise InputError("the query log path is a folder, not a file", path=str(self.path))
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self.path.touch()  # fail now, at start, if the file cannot be written

    def log_question(
        self,
        question: str,
        *,
        page: str | None,
        answered: bool,
        mode: str,
        score: float,
        top: Sequence[dict[str, str]],
        cited: Sequence[dict[str, str]],
    ) -> str:
        """Append a question and return its random id (the page sends it back with feedback)."""
        answer_id = secrets.token_hex(8)
        self._append({
            "v": LOG_VERSION,
            "type": "question",
            "id": answer_id,
            "time": _now(),
            "question": redact(question),
            "page": page,
            "answered": answered,
            "mode": mode,
            "score": round(float(score), 4),
            "top": list(top)[:TOP_SECTIONS],
            "cited": list(cited),
        })
        return answer_id

    def log_feedback(self, answer_id: str, helpful: bool) -> None:
        """Append a thumbs-up (``helpful``) or thumbs-down for the answer ``answer_id``."""
        if not _ID.match(answer_id):
            raise ValueError(f"not an answer id: {answer_id!r}")
        self._append({"v": LOG_VERSION, "type": "feedback", "id": answer_id, "time": _now(), "helpful": helpful})

    def _append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock, open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                try:
                    size = self.path.stat().st_size
                except FileNotFoundError:
                    size = 0
                if size and size + len(line) > self.max_bytes:
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _rotate(self) -> None:
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            return
        rotated_path(self.path, self.keep).unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            older = rotated_path(self.path, n)
            if older.exists():
                older.replace(rotated_path(self.path, n + 1))
        self.path.replace(rotated_path(self.path, 1))


def rotated_path(path: Path, n: int) -> Path:
    """The ``n``-th rotated file of ``path`` (1 is the newest)."""
    return path.with_name(f"{path.name}.{n}")


def log_files(path: str | Path) -> list[Path]:
    """``path`` and its rotated files, oldest first.

    Raises:
        InputError: Neither ``path`` nor any rotated file of it exists.
    """
    path = Path(path)
    numbered = []
    for candidate in path.parent.glob(glob_escape(path.name) + ".*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit() and candidate.is_file():
            numbered.append((int(suffix), candidate))
    files = [p for _, p in sorted(numbered, reverse=True)]
    if path.is_file():
        files.append(path)
    if not files:
        raise InputError("no query log here (`sitetune serve --query-log FILE` writes one)", path=str(path))
    return files


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _require(entry: dict[str, Any], key: str, kind: type, where: dict[str, Any]) -> Any:
    if key not in entry:
        raise InputError("missing", field=key, **where)
    value = entry[key]
    if not isinstance(value, kind):
        raise InputError(f"expected {kind.__name__}, got {type(value).__name__}", field=key, **where)
    return value


def _check_sections(entry: dict[str, Any], key: str, where: dict[str, Any]) -> None:
    for i, section in enumerate(_require(entry, key, list, where)):
        if not isinstance(section, dict) or not all(
            isinstance(section.get(k), str) for k in ("chunk_id", "page_name", "section_title")
        ):
            raise InputError("expected {chunk_id, page_name, section_title} strings", field=f"{key}[{i}]", **where)


def read_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every entry of the log at ``path`` and its rotated files, oldest first, checked.

    Raises:
        InputError: A line is not a JSON object of the documented shape; the message names the file,
            the line and the field.
    """
    for file in log_files(path):
        with open(file, encoding="utf-8", errors="strict") as handle:
            try:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    yield _checked(line, {"path": str(file), "line": number})
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text: {exc.reason}", path=str(file)) from exc


def _checked(line: str, where: dict[str, Any]) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}", **where) from exc
    if not isinstance(entry, dict):
        raise InputError("expected a JSON object", **where)
    kind = _require(entry, "type", str, where)
    answer_id = _require(entry, "id", str, where)
    if not _ID.match(answer_id):
        raise InputError("expected 16 lower-case hex digits", field="id", **where)
    stamp = _require(entry, "time", str, where)
    try:
        datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as exc:
        raise InputError("expected a UTC time like 2025-01-31T12:00:00Z", field="time", **where) from exc
    if kind == "question":
        _require(entry, "question", str, where)
        _require(entry, "answered", bool, where)
        if entry.get("page") is not None and not isinstance(entry["page"], str):
            raise InputError("expected a string or null", field="page", **where)
        _check_sections(entry, "top", where)
        _check_sections(entry, "cited", where)
    elif kind == "feedback":
        _require(entry, "helpful", bool, where)
    else:
        raise InputError(f"unknown entry type '{kind}' (expected 'question' or 'feedback')", field="type", **where)
    return entry
