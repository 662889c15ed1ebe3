"""Request ids and ``serve --log-format json``: one JSON object a line, each with the request it belongs to.

Every HTTP request gets an id (:func:`request_id_from`): a client's or proxy's ``X-Request-ID`` when it is
a sane token (:data:`REQUEST_ID_PATTERN`), else a fresh random one. It is returned in the response's
``X-Request-ID`` header (:class:`sitetune.serve.observe.ObserveMiddleware`) and held in a context variable
while the request runs, so every log line written on its behalf, in the event loop or in the threadpool
(Starlette copies the context into it), carries it.

With ``--log-format json`` (:func:`logging_config`), sitetune's and uvicorn's loggers write lines like::

    {"timestamp": "2026-05-04T09:12:03.114Z", "level": "INFO", "logger": "sitetune.serve.requests",
     "message": "GET /search 200 in 8.2 ms", "request_id": "4f1c...", "method": "GET", "path": "/search",
     "status": 200, "duration_ms": 8.2}

(one line each). The path never holds the query string (``/search?q=`` holds what a student typed) and no
line holds a client address; ``--access-log`` adds uvicorn's access lines, which hold both.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

from sitetune.errors import InputError

#: The header that carries a request's id, in and out.
REQUEST_ID_HEADER = "X-Request-ID"
#: An incoming id is kept only when it matches this: letters, digits and ``. _ : -``, 1 to 128 characters,
#: starting with a letter or digit (uuids, hex ids, nginx's ``$request_id``). Anything else is replaced, so
#: an id cannot smuggle spaces, quotes or line breaks into the logs or an unbounded string into each line.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
#: The values ``--log-format`` accepts.
LOG_FORMATS = ("text", "json")
#: The logger of the one line per request.
REQUEST_LOGGER = "sitetune.serve.requests"
#: Fields a request's line carries besides the request id (passed in ``extra=``).
REQUEST_FIELDS = ("method", "path", "status", "duration_ms")

_REQUEST_ID: ContextVar[str | None] = ContextVar("sitetune_request_id", default=None)


def new_request_id() -> str:
    """A fresh random request id (32 hex digits)."""
    return uuid.uuid4().hex


def request_id_from(header: str | bytes | None) -> str:
    """The id for a request: the incoming ``X-Request-ID`` when it matches the pattern, else a new one."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if header is not None and REQUEST_ID_PATTERN.fullmatch(header):
        return header
    return new_request_id()


def set_request_id(request_id: str | None) -> None:
    """Make ``request_id`` the current request's id for log lines written from this context on.

    Not reset when the request ends: uvicorn runs each request in its own task, whose context copy ends with
    it, and uvicorn's own "Exception in ASGI application" line comes after the app returns yet should still
    carry the id.
    """
    _REQUEST_ID.set(request_id)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or ``None`` outside any request."""
    return _REQUEST_ID.get()


def check_log_format(value: str) -> str:
    """Return ``value`` if it is a known log format.

    Raises:
        InputError: It is not one of :data:`LOG_FORMATS`.
    """
    if value not in LOG_FORMATS:
        raise InputError(f"--log-format {value!r}: expected one of {', '.join(LOG_FORMATS)}")
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (ASCII, so a line is one line whatever the message holds).

    Keys: ``timestamp`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``, the current
    ``request_id`` when there is one, a request line's ``method``, ``path``, ``status`` and ``duration_ms``,
    and ``exception`` (the traceback) when the record has one.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object without line breaks."""
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for key in REQUEST_FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


def logging_config(log_format: str) -> dict[str, Any] | None:
    """A :func:`logging.config.dictConfig` for ``log_format``, also handed to uvicorn (and so to each worker).

    Returns:
        ``None`` for ``"text"`` (uvicorn's own configuration, Python's defaults elsewhere: nothing changes);
        for ``"json"``, every line to stderr through :class:`JsonFormatter`: sitetune's loggers from INFO
        (the line per request included), uvicorn's as uvicorn sets them, other libraries' from WARNING.

    Raises:
        InputError: An unknown format.
    """
    if check_log_format(log_format) == "text":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "sitetune": {"level": "INFO"},
            "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["json"], "level": "WARNING"},
    }


def configure_logging(log_format: str) -> None:
    """Apply :func:`logging_config` in this process (nothing for ``"text"``).

    Raises:
        InputError: An unknown format.
    """
    import logging.config

    config = logging_config(log_format)
    if config is not None:
        logging.config.dictConfig(config)


def uvicorn_log_options(log_format: str) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``: none for text (uvicorn's own setup).

    Raises:
        InputError: An unknown format.
    """
    config = logging_config(log_format)
    return {} if config is None else {"log_config": config}


def json_logging() -> bool:
    """Whether this process logs through :class:`JsonFormatter` (``--log-format json`` was applied)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def say(line: str, *, error: bool = False) -> None:
    """Tell the operator something (the URL served, a worker ready or failed).

    A printed line (stdout, or stderr for an error) with text logs; a log record of ``sitetune.serve`` with
    JSON logs, so that every line of the server's output is a JSON object.
    """
    import sys

    if json_logging():
        logging.getLogger("sitetune.serve").log(logging.ERROR if error else logging.INFO, "%s", line)
    else:
        print(line, file=sys.stderr if error else sys.stdout, flush=True)
