"""Schemathesis against the app's own OpenAPI document: valid and malformed requests, no 5xx, clear 4xx.

Runs in-process over ASGI with the real model and a small real store; examples are bounded so the whole
file takes well under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from serve_helpers import session_store
from sitetune.serve import create_app

#: Examples per operation and mode; with 4 operations and 2 modes this keeps the file near 30 s.
EXAMPLES = 40


@pytest.fixture(scope="module")
def api_schema(cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, base_encoder):  # type: ignore[no-untyped-def]
    from sitetune.search import Searcher

    with Searcher.open(session_store(cbs_csv, tmp_path_factory), encoder=base_encoder) as searcher:
        yield schemathesis.openapi.from_asgi("/openapi.json", create_app(searcher, model_name="base"))


def _errors_are_clear(ctx: Any, response: Any, case: Any) -> bool:
    """Every 4xx names what is wrong in one readable line, in our error shape; nothing is a 5xx."""
    assert response.status_code < 500, f"server error {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert response.status_code in (404, 405, 413, 422), response.status_code
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"], body
        assert "Traceback" not in response.text
        if response.status_code == 422:
            assert body["errors"] and all(e["field"] and e["message"] for e in body["errors"]), body
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api_schema: Any, mode: GenerationMode) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest fixture loader does not run on pytest 9.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} == {"/healthz", "/pages", "/site", "/search", "/answer", "/feedback"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.path in ("/healthz", "/pages", "/site"):
            continue  # no parameters, so no malformed variant exists

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(additional_checks=[_errors_are_clear])

        check()
