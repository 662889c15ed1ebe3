"""Durations written for people: ``90s``, ``15m``, ``24h``, ``7d``, ``1h30m`` (``serve --refresh-every``)."""

from __future__ import annotations

import re

from sitetune.errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str, *, name: str = "duration", minimum_s: float = 1.0) -> float:
    """Seconds in ``text``: numbers each followed by a unit (s, m, h, d), e.g. ``24h`` or ``1h30m``.

    Args:
        text: What the user wrote.
        name: The option or field named in the error.
        minimum_s: Shortest duration accepted.

    Raises:
        InputError: ``text`` is not of that form, or is shorter than ``minimum_s``.
    """
    value = text.strip().lower().replace(" ", "")
    parts = _PART.findall(value)
    if not value or not parts or "".join(n + u for n, u in parts) != value:
        raise InputError(f"{name}: {text!r} is not a duration (write e.g. 90s, 15m, 24h, 7d or 1h30m)")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < minimum_s:
        raise InputError(f"{name}: {text!r} is shorter than the minimum of {minimum_s:g} s")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` as :func:`parse_duration` reads it back, largest units first (``86400`` -> ``24h``)."""
    rest = round(seconds)
    if rest < 60 or rest != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
