"""Environment overrides: read and checked in one place, with the variable named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitetune.environment import cache_dir, number_from_env
from sitetune.errors import SitetuneError
from sitetune.index.ann import MIN_VECTORS, MIN_VECTORS_ENV, min_vectors


def test_unset_gives_the_default_and_a_set_value_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIN_VECTORS_ENV, raising=False)
    assert min_vectors() == MIN_VECTORS
    monkeypatch.setenv(MIN_VECTORS_ENV, "0")
    assert min_vectors() == 0


@pytest.mark.parametrize("raw", ["-1", "many", "2.5"])
def test_a_bad_value_names_the_variable_and_what_it_expects(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(MIN_VECTORS_ENV, raw)
    with pytest.raises(SitetuneError, match=rf"{MIN_VECTORS_ENV}='{raw}': expected a whole number"):
        min_vectors()


def test_float_overrides_and_the_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SITETUNE_TEST_SECONDS", "2.5")
    assert number_from_env("SITETUNE_TEST_SECONDS", 30.0, float, lambda s: s > 0, "seconds") == 2.5
    monkeypatch.setenv("SITETUNE_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
