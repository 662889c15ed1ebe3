"""docs/architecture.md names real code: every dotted name in backticks imports and resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
NAME = re.compile(r"`(sitetune(?:\.\w+)+)`")


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            target = getattr(target, attr)
        return target
    raise ModuleNotFoundError(dotted)


def test_every_name_in_the_architecture_page_exists() -> None:
    names = sorted(set(NAME.findall(DOC.read_text(encoding="utf-8"))))
    assert len(names) > 30
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ModuleNotFoundError, AttributeError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, "docs/architecture.md names code that does not exist:\n" + "\n".join(missing)


def test_a_renamed_function_is_caught() -> None:
    try:
        _resolve("sitetune.search.Searcher.no_such_method")
    except AttributeError:
        return
    raise AssertionError("a missing attribute resolved")
