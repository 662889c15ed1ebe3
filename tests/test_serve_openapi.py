"""The OpenAPI document states what depends on the server: the query's length limit and the served pages."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_helpers import live_server, session_store
from sitetune.config import ServeConfig
from sitetune.index.build import build_index
from sitetune.index.lease import LEASE_DIR
from sitetune.recordio import read_records, write_records
from sitetune.records import SectionRecord
from sitetune.search import Searcher
from sitetune.serve.app import create_app
from sitetune.serve.reload import Follow, store_opener

NEW_PAGE = "Rowing club"


def _page_enums(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The page enum of ``/search``'s ``page`` parameter and of ``AnswerRequest.page``."""
    param = next(p for p in spec["paths"]["/search"]["get"]["parameters"] if p["name"] == "page")
    body = spec["components"]["schemas"]["AnswerRequest"]["properties"]["page"]["anyOf"]
    return param["schema"]["enum"], next(o for o in body if o.get("type") == "string")["enum"]


def test_the_page_enums_follow_a_store_switch_and_the_query_limit_is_stated(
    cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(session_store(cbs_csv, tmp_path_factory), store, ignore=shutil.ignore_patterns(LEASE_DIR, ".lock"))
    searcher = Searcher.open(store)
    app = create_app(searcher, ServeConfig(reload_poll_s=0.1, max_query_chars=150),
                     follow=Follow(str(store), store_opener(store)))
    try:
        with live_server(app) as url:
            spec = httpx.get(f"{url}/openapi.json").json()
            pages = httpx.get(f"{url}/pages").json()["pages"]
            assert NEW_PAGE not in pages
            assert _page_enums(spec) == (pages, pages)
            q = next(p for p in spec["paths"]["/search"]["get"]["parameters"] if p["name"] == "q")
            assert q["schema"]["maxLength"] == 150
            assert spec["components"]["schemas"]["AnswerRequest"]["properties"]["question"]["maxLength"] == 150

            records = list(read_records(Path(tmp_path_factory.getbasetemp()) / "serve-slice.csv"))
            records.append(SectionRecord(NEW_PAGE, "Regatta", "Regatta", "The harbour regatta is held in May.",
                                         "https://example.org/rowing-club"))
            write_records(records, tmp_path / "corpus.csv")
            build_index(tmp_path / "corpus.csv", "base", store, progress=False)
            deadline = time.monotonic() + 60
            while NEW_PAGE not in (pages := httpx.get(f"{url}/pages").json()["pages"]):
                assert time.monotonic() < deadline, "the server never switched to the new generation"
                time.sleep(0.1)
            assert _page_enums(httpx.get(f"{url}/openapi.json").json()) == (pages, pages)
    finally:
        app.state.follower.close()
