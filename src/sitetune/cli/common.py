"""Shared CLI plumbing: turning stage errors into messages and exit codes, printing JSON."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from sitetune.errors import SitetuneError

P = ParamSpec("P")
R = TypeVar("R")


def _default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (dataclasses, paths and arrays converted)."""
    sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False, indent=2) + "\n")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn sitetune's and the OS's errors into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SitetuneError as exc:
            raise fail(str(exc)) from None
        except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            raise fail(f"I/O error: {exc}") from None

    return wrapper
