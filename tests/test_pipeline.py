"""The main job end to end on the bundled sample site: crawl → train → index, then a re-run reuses it all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(workdir: Path, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "sitetune.cli.main", "run", "--workdir", str(workdir), "--train-steps", "2", "--json",
         *extra],
        capture_output=True, text=True, cwd=REPO, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_main_job_builds_a_searchable_store_and_reuses_it(tmp_path: Path) -> None:
    from sitetune.config import EncoderConfig
    from sitetune.search import Searcher

    first = _run(tmp_path)
    assert first["reranker"] is False  # opt-in (docs/rerank.md)
    # Training length is a step count (here set; by default planned from the corpus), never a time box.
    assert first["trained"] is True and first["train_steps"] == first["planned_steps"] == 2
    assert first["reused"] == 0 and first["embedded"] == first["unique_chunks"]
    model = Path(str(first["model"]))
    assert json.loads((model / "sitetune.json").read_text())["recipe"] == "retrieval"

    with Searcher.open(str(first["store"]), EncoderConfig()) as searcher:
        hits = searcher.search("What IELTS score does the supply chain programme require?", k=3)
    assert hits and all(h.url.startswith("http") for h in hits)
    assert any("IELTS" in h.text for h in hits)

    # Asking for the reranker on the second run keeps the model and trains only its cross-encoder.
    second = _run(tmp_path, "--reranker", "--reranker-steps", "1")
    assert second["trained"] is False  # same corpus: the model is reused, not retrained
    assert second["embedded"] == 0 and second["reused"] == first["unique_chunks"]
    assert second["reranker"] is True
    summary = json.loads((model / "reranker" / "rerank_training.json").read_text())
    assert summary["steps"] == 1 and summary["bi_encoder"] == str(model)
    assert "## Reranker" in (model / "README.md").read_text()
