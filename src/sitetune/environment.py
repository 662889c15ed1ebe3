"""Settings read from the environment: sitetune's cache folder and numeric overrides, each checked once here."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sitetune.errors import SitetuneError

N = TypeVar("N", int, float)

#: Where caches go (exports of read-only models, Milvus sidecars); default ``~/.cache/sitetune``.
CACHE_DIR_ENV = "SITETUNE_CACHE_DIR"


def cache_dir() -> Path:
    """Sitetune's cache folder: ``$SITETUNE_CACHE_DIR``, else ``~/.cache/sitetune`` (not created here)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "sitetune")


def number_from_env(name: str, default: N, parse: Callable[[str], N], valid: Callable[[N], bool],
                    expected: str) -> N:
    """The number the environment variable ``name`` holds, or ``default`` when it is unset or empty.

    Args:
        name: The variable.
        default: Its value when unset.
        parse: ``int`` or ``float``.
        valid: Whether a parsed value is allowed.
        expected: What a valid value is, for the error ("a positive number of seconds").

    Raises:
        SitetuneError: The variable is set to something ``parse`` rejects or ``valid`` refuses.
    """
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SitetuneError(f"{name}={raw!r}: expected {expected}") from None
    if not valid(value):
        raise SitetuneError(f"{name}={raw!r}: expected {expected}")
    return value


#: OpenMP's wait policy for training processes. torch's OpenMP threads (libgomp) spin for a while after each
#: parallel region by default; when another job shares the cores, the spinning threads take its time slices
#: and each step waits for a descheduled peer (measured in docs/train.md, "Threads on a shared machine").
#: PASSIVE makes them sleep instead. libgomp reads it once, when torch loads.
OPENMP_WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


def prefer_passive_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` where the caller left it unset, if torch has not loaded yet.

    Called at the start of the processes that train (``sitetune train``, ``sitetune run``'s child), never
    at import, so a user's own program keeps its OpenMP settings.

    Returns:
        Whether the policy in force for torch's threads is PASSIVE (False once torch has loaded with
        another policy, or where the caller chose another).
    """
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault(OPENMP_WAIT_POLICY_ENV, "PASSIVE")
    return os.environ.get(OPENMP_WAIT_POLICY_ENV, "").upper() == "PASSIVE"
