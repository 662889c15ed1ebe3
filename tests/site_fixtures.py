"""Fixtures for the real sites: the Stirling mirror, crawled once per session into a temporary folder.

Use it from a test module with ``from site_fixtures import stirling_corpus  # noqa: F401`` (or from
conftest). The crawl is ``benchmarks/sites.py``'s, so tests and benchmarks read the same corpus.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``name`` (benchmarks/ is a folder of scripts, not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def stirling_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Stirling corpus (JSONL). CI lays ../shared beside the clone; its absence is a failure, not a skip."""
    sites = benchmark_module("sites")
    tarball: Path = sites.STIRLING_TARBALL
    assert tarball.is_file(), f"the Stirling mirror is missing at {tarball}: tests expect ../shared beside the repo"
    corpus: Path = sites.stirling_corpus(tmp_path_factory.mktemp("sites"))
    return corpus
