"""Split section text into chunks that fit the model: sentence boundaries first, then words, then tokens.

Token counts come from the base model's tokenizer with special tokens included, so "fits" means exactly
what the encoder will see. Packing uses per-piece counts (cheap, one batched tokenizer call), and every
packed chunk is then re-counted as a whole; a chunk that does not fit is split again, so the limit holds
even where tokenisation across a join differs from the sum of its parts.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sitetune.config import MAX_MODEL_TOKENS

Counter = Callable[[list[str]], list[int]]

# A sentence ends at . ! ? or … (optionally followed by closing quotes/brackets) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[tuple[str, str]]:
    r"""Sentences of ``text``, each with the separator that preceded it ("\n" at a line break, else " ").

    Each line of a flattened list or table is its own piece, so packing keeps the line structure.
    """
    pieces: list[tuple[str, str]] = []
    for line in text.split("\n"):
        sep = "\n"
        for sentence in _SENTENCE_END.split(line):
            if sentence.strip():
                pieces.append((sentence.strip(), sep))
                sep = " "
    return pieces


def _default_counter(texts: list[str]) -> list[int]:
    from sitetune.models import base_tokenizer, count_tokens

    # Over-long inputs are the point of counting here; silence the tokenizer's "longer than 512" warning.
    warned = getattr(base_tokenizer(), "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    return count_tokens(texts)


def _hard_split(piece: str, budget: int) -> list[str]:
    """Cut one whitespace-free run at tokenizer offsets so each part holds at most ``budget`` tokens."""
    from sitetune.models import base_tokenizer

    offsets = base_tokenizer()(piece, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    parts = []
    start_char = 0
    for i in range(budget, len(offsets), budget):
        cut = offsets[i][0]
        if cut > start_char:
            parts.append(piece[start_char:cut])
            start_char = cut
    parts.append(piece[start_char:])
    return [p for p in parts if p.strip()]


def _pack(pieces: list[tuple[str, str]], counts: list[int], limit: int) -> list[str]:
    """Greedy packing by summed counts (special tokens counted once per chunk)."""
    chunks: list[str] = []
    current = ""
    used = 2
    for (piece, sep), n in zip(pieces, counts, strict=True):
        inner = n - 2
        if current and used + inner > limit:
            chunks.append(current)
            current, used = "", 2
        current = f"{current}{sep}{piece}" if current else piece
        used += inner
    if current:
        chunks.append(current)
    return chunks


def split_to_fit(text: str, max_tokens: int = MAX_MODEL_TOKENS, *,
                 counter: Counter | None = None) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (special tokens included).

    Use it for any text bound for the encoder. Sentences are never cut unless one alone is too long;
    such a sentence is split between words, and a single too-long "word" between tokens.

    Args:
        text: The text (newlines separate list or table lines and are kept inside chunks).
        max_tokens: The limit, special tokens included; must leave room for at least one token.
        counter: Token counter (texts to counts with special tokens); the base tokenizer by default.

    Returns:
        The chunks in order, each non-empty; ``[]`` for blank text.

    Raises:
        ValueError: ``max_tokens`` is below 3.
    """
    if max_tokens < 3:
        raise ValueError(f"max_tokens must be at least 3, got {max_tokens}")
    count = counter or _default_counter
    text = text.strip()
    if not text:
        return []
    if count([text])[0] <= max_tokens:
        return [text]
    return _split(text, max_tokens, count, level=0)


def _split(text: str, limit: int, count: Counter, level: int) -> list[str]:
    # level 0: sentences and lines; level 1: words; level 2: tokenizer offsets.
    if level >= 2:
        return _split_tokens(text, limit, count)
    pieces = split_sentences(text) if level == 0 else [(word, " ") for word in text.split()]
    if len(pieces) <= 1:
        return _split(text, limit, count, level + 1)
    chunks = _pack(pieces, count([p for p, _ in pieces]), limit)
    out: list[str] = []
    for chunk, n in zip(chunks, count(chunks), strict=True):
        out.extend([chunk] if n <= limit else _split(chunk, limit, count, level + 1))
    return out


def _split_tokens(text: str, limit: int, count: Counter) -> list[str]:
    """Cut at tokenizer offsets; a part that re-tokenises longer is cut again with a smaller budget."""
    budget = limit - 2
    pending = [text]
    out: list[str] = []
    while pending:
        part = pending.pop(0)
        if count([part])[0] <= limit:
            out.append(part)
            continue
        pieces = _hard_split(part, budget)
        if len(pieces) <= 1:
            # No offset to cut at (one huge token would be absurd); cut by characters instead.
            half = max(len(part) // 2, 1)
            pieces = [part[:half], part[half:]]
        pending = [p.strip() for p in pieces if p.strip()] + pending
        budget = max(budget - max(budget // 10, 1), 1)
    return out
