"""Shared fixtures: the real CBS corpus from ../shared, the packaged base model, the bundled sample site."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from site_fixtures import stirling_corpus  # noqa: F401  (the Stirling mirror, crawled once per session)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's OpenMP threads sleep between parallel regions instead of spinning (read once, when torch loads,
# so before any test imports it; subprocesses inherit it). Spinning threads take the time slices of the
# thread they wait for when other jobs share the cores: in-process training steps ran 3x slower, with 3x the
# CPU, on the loaded 2-core host. `sitetune train` and `run` choose the same for their own processes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parents[1]
CBS_CSV = REPO_ROOT.parent / "shared" / "data" / "cbs_graduate_programs.csv"


@pytest.fixture(scope="session")
def cbs_csv() -> Path:
    """The real CBS corpus. CI lays ../shared beside the clone; its absence is a failure, not a skip."""
    assert CBS_CSV.is_file(), f"the CBS corpus is missing at {CBS_CSV}: tests expect ../shared beside the repo"
    return CBS_CSV


@pytest.fixture(scope="session")
def cbs_corpus(cbs_csv: Path):  # type: ignore[no-untyped-def]
    from sitetune.corpus import Corpus

    return Corpus.load(cbs_csv)


@pytest.fixture(scope="session")
def base_encoder():  # type: ignore[no-untyped-def]
    """One loaded base-model encoder for the whole session (loading costs seconds)."""
    from sitetune.encode import load_encoder

    return load_encoder("base")
