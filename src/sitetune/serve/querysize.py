"""How long a query the server takes: ``ServeConfig.max_query_chars`` and ``max_query_words``.

Encoding and ranking cost grows with the query, and the server does model work one request at a time, so
the longest query accepted bounds how long one request can hold the others up. Longer queries are refused
before any model work with a 422 that names the field, the limit and the option that sets it.
"""

from __future__ import annotations

from sitetune.config import MAX_QUESTION_CHARS, ServeConfig
from sitetune.errors import InputError
from sitetune.serve.errors import InvalidInput


def check_query_limits(config: ServeConfig) -> None:
    """Refuse limits a server cannot use.

    Raises:
        InputError: ``max_query_chars`` is not between 1 and :data:`~sitetune.config.MAX_QUESTION_CHARS`,
            or ``max_query_words`` is below 1.
    """
    if not 1 <= config.max_query_chars <= MAX_QUESTION_CHARS:
        raise InputError(f"--max-query-chars {config.max_query_chars}: expected 1 to {MAX_QUESTION_CHARS} characters")
    if config.max_query_words < 1:
        raise InputError(f"--max-query-words {config.max_query_words}: expected 1 or more words")


def check_query_size(text: str, field: str, config: ServeConfig) -> None:
    """Refuse a query longer than the server takes.

    Args:
        text: The query or question.
        field: Its name in the request (``q``, ``body.question``), named in the error.
        config: Supplies ``max_query_chars`` and ``max_query_words``.

    Raises:
        InvalidInput: Too many characters or words (the endpoint answers 422).
    """
    chars = len(text)
    if chars > config.max_query_chars:
        raise InvalidInput(
            field,
            f"must be at most {config.max_query_chars} characters, not {chars} (the server's --max-query-chars)",
        )
    words = len(text.split())
    if words > config.max_query_words:
        raise InvalidInput(
            field, f"must be at most {config.max_query_words} words, not {words} (the server's --max-query-words)"
        )
