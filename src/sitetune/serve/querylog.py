"""The query log: what was asked, whether the pages answered it, and what readers thought of the answer.

``sitetune serve --query-log PATH`` appends one JSON object per line to PATH (off by default):

- ``{"v": 1, "type": "question", "id": ..., "time": ..., "question": ..., "page": ..., "answered": ...,
  "mode": ..., "score": ..., "top": [section, ...], "cited": [section, ...]}`` for every ``POST /answer``;
  a section is ``{"chunk_id", "page_name", "section_title"}``.
- ``{"v": 1, "type": "feedback", "id": ..., "time": ..., "helpful": true|false}`` for every thumbs-up or
  thumbs-down posted from the page to ``POST /feedback``; ``id`` is the answer's, so the report joins them.

Privacy by construction: no IP address, user agent, cookie, session or account is written, and ``id`` is
random per answer, so two questions from one person cannot be linked. Questions are stored as typed but
with contact details and identifiers replaced (:func:`redact`). Times are UTC to the second.

Feedback only for answers this server gave: :meth:`QueryLog.log_question` hands out the logged id followed
by its signature, an HMAC of the id under the log's key (:func:`feedback_key`), and
:meth:`QueryLog.log_feedback` writes nothing for an id it cannot verify. All workers of
``sitetune serve --workers N`` share one key (``$SITETUNE_FEEDBACK_KEY``, set by the supervisor), so any
of them accepts the ids the others issued; a key set by the operator keeps ids valid across restarts.
One process writes at most :data:`MAX_FEEDBACK_PER_ANSWER` votes per answer, so feedback cannot flush the
questions out of the log.

The file is capped: when the next line would pass ``max_bytes``, PATH becomes PATH.1 (PATH.1 becomes
PATH.2 and so on) and the oldest beyond ``keep`` files is deleted, so the log never holds more than
about ``max_bytes * (keep + 1)`` bytes. Each line is written with one ``write`` under an exclusive lock on
PATH.lock, so several server processes can share one log. The log and its lock file are created readable
and writable by their owner only (0600); rotated files keep that mode.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections import OrderedDict
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
#: An id as the log stores it: 16 lower-case hex digits, random per answer.
ID_PATTERN = r"^[0-9a-f]{16}$"
#: An id as the API hands it out (``log_id``): the logged id, then 16 hex digits of its signature.
ANSWER_ID_PATTERN = r"^[0-9a-f]{32}$"
#: The environment variable holding the feedback key shared by the workers of one server (32+ characters).
FEEDBACK_KEY_ENV = "SITETUNE_FEEDBACK_KEY"
MIN_FEEDBACK_KEY_CHARS = 32
#: Feedback lines one process writes per answer (a reader may change their mind; a script may not flood).
MAX_FEEDBACK_PER_ANSWER = 3
#: Answers whose feedback count one process remembers (the oldest is forgotten first).
FEEDBACK_TRACKED = 20_000

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A phone number with its area code in brackets: "(555) 123-4567", "+1 (555) 123 4567", "+44 (0)20 7946 0958".
_BRACKETED_PHONE = re.compile(r"(?:\+\d{1,3}[\s.-]?)?\(\d{1,4}\)[\s.-]?\d(?:[\s.-]?\d){4,}")
# Seven or more digits in one run, allowing the separators people type in phone and ID numbers
# ("+45 12 34 56 78", "2025-0012345").
_LONG_NUMBER = re.compile(r"\+?\d(?:[\s().-]?\d){6,}")
# A word of ASCII letters and digits, hyphens inside ("AB12CD34", "APP-2025-XK7").
_TOKEN = re.compile(r"(?<![\w-])[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?![\w-])")
_LETTER_THEN_DIGIT = re.compile(r"[A-Za-z][^0-9]*[0-9]")
_ID = re.compile(ID_PATTERN)
_ANSWER_ID = re.compile(ANSWER_ID_PATTERN)


def _id_like(token: str) -> bool:
    """A token that looks like an identifier: 6+ letters and digits, 3+ of them digits, a letter before a digit.

    "AB12CD34", "S1234567" and "k3h9pq2z7" are; "COVID-19" (two digits), "120ECTS" (a number and its unit),
    "B2" and "2025" are not.
    """
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    return digits + letters >= 6 and digits >= 3 and letters >= 1 and bool(_LETTER_THEN_DIGIT.search(token))


def redact(question: str) -> str:
    """``question`` with contact details and identifiers replaced.

    - e-mail addresses become ``[email]``;
    - tokens mixing letters and digits like an identifier (student, application or passport numbers such as
      "S1234567" or "AB12CD34", see :func:`_id_like`) become ``[id]``;
    - phone numbers with a bracketed area code ("(555) 123-4567", "+1 (555) 123-4567") and any run of 7
      or more digits, with the spaces, dots, hyphens and brackets people type between them
      ("+45 12 34 56 78", "2025-0012345"), become ``[number]``.

    Years, scores and fees ("2025", "6.5", "12,000") are kept: they are what questions are about. Names
    and street addresses are not recognised.
    """
    question = _EMAIL.sub("[email]", question)
    question = _TOKEN.sub(lambda m: "[id]" if _id_like(m.group()) else m.group(), question)
    question = _BRACKETED_PHONE.sub("[number]", question)
    return _LONG_NUMBER.sub("[number]", question)


class AnswerIdError(ValueError):
    """An id sent with feedback that names no answer of this server."""


class MalformedAnswerId(AnswerIdError):
    """Not shaped like an id the server hands out (32 lower-case hex digits)."""


class UnknownAnswerId(AnswerIdError):
    """Shaped like an answer id, but not one this server (its feedback key) issued."""


def feedback_key(environ: dict[str, str] | None = None) -> bytes:
    """The key that signs answer ids: ``$SITETUNE_FEEDBACK_KEY`` if set, else random for this process.

    Raises:
        InputError: The variable is set but shorter than 32 characters.
    """
    env = os.environ if environ is None else environ
    text = env.get(FEEDBACK_KEY_ENV)
    if text is None:
        return secrets.token_bytes(32)
    if len(text) < MIN_FEEDBACK_KEY_CHARS:
        raise InputError(f"${FEEDBACK_KEY_ENV} must be at least {MIN_FEEDBACK_KEY_CHARS} characters")
    return text.encode("utf-8")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def section_entry(chunk_id: str, page_name: str, section_title: str) -> dict[str, str]:
    """A section as the log stores it."""
    return {"chunk_id": chunk_id, "page_name": page_name, "section_title": section_title}


class QueryLog:
    """Appends questions and feedback to a size-capped, rotated JSON-lines file.

    Args:
        path: The log file (created mode 0600 if missing; its folder must exist).
        max_bytes: Size at which the file is rotated.
        keep: Rotated files kept (PATH.1 is the newest).
        key: Signs the answer ids handed out; ``None``: :func:`feedback_key` (the environment's or random).

    Raises:
        InputError: The folder does not exist, the path is a folder, the cap is below MIN_MAX_BYTES, or
            ``$SITETUNE_FEEDBACK_KEY`` is too short.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        key: bytes | None = None,
    ) -> None:
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
        self._key = feedback_key() if key is None else key
        self._lock = threading.Lock()
        self._votes: OrderedDict[str, int] = OrderedDict()
        os.close(_open_private(self.path))  # fail now, at start, if the file cannot be written

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
        """Append a question and return its answer id: the random id logged, then its signature.

        The page sends the answer id back with feedback (:meth:`log_feedback`).
        """
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
        return answer_id + self._signature(answer_id)

    def _signature(self, logged_id: str) -> str:
        return hmac.new(self._key, b"sitetune-feedback:" + logged_id.encode("ascii"), hashlib.sha256).hexdigest()[:16]

    def logged_id(self, answer_id: str) -> str:
        """The id the log stores for the answer id ``answer_id`` that :meth:`log_question` handed out.

        Raises:
            MalformedAnswerId: ``answer_id`` is not 32 lower-case hex digits.
            UnknownAnswerId: Its signature does not match: this log (its key) never issued it.
        """
        if not _ANSWER_ID.match(answer_id):
            raise MalformedAnswerId(f"not an answer id: {answer_id[:80]!r}")
        logged, signature = answer_id[:16], answer_id[16:]
        if not hmac.compare_digest(signature, self._signature(logged)):
            raise UnknownAnswerId(f"no answer was given with the id {answer_id!r}")
        return logged

    def log_feedback(self, answer_id: str, helpful: bool) -> bool:
        """Append a thumbs-up (``helpful``) or thumbs-down for the answer ``answer_id`` (from :meth:`log_question`).

        Returns:
            True when written; False when this process already wrote ``MAX_FEEDBACK_PER_ANSWER`` votes for it.

        Raises:
            MalformedAnswerId: ``answer_id`` is not shaped like an answer id.
            UnknownAnswerId: This log never issued ``answer_id``.
        """
        logged = self.logged_id(answer_id)
        with self._lock:
            count = self._votes.pop(logged, 0)
            self._votes[logged] = min(count + 1, MAX_FEEDBACK_PER_ANSWER + 1)
            while len(self._votes) > FEEDBACK_TRACKED:
                self._votes.popitem(last=False)
        if count >= MAX_FEEDBACK_PER_ANSWER:
            return False
        self._append({"v": LOG_VERSION, "type": "feedback", "id": logged, "time": _now(), "helpful": helpful})
        return True

    def _append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._lock:
            lock_fd = _open_private(lock_path)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                try:
                    size = self.path.stat().st_size
                except FileNotFoundError:
                    size = 0
                if size and size + len(line) > self.max_bytes:
                    self._rotate()
                fd = _open_private(self.path)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            finally:
                os.close(lock_fd)  # closing the descriptor releases its lock

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


def _open_private(path: Path) -> int:
    """Open ``path`` for appending, creating it readable and writable by its owner only (0600)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


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
