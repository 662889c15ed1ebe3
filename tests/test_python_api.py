"""The Python API: docs/python.md's code, run as written on the bundled sample site, and the import contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "python.md"


def _doc_code() -> str:
    """Every ```python block of docs/python.md, in order, as one script."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 2, "docs/python.md lost its code"
    return "\n".join(blocks)


@pytest.mark.slow
def test_the_documented_pipeline_runs_as_written(tmp_path: Path) -> None:
    # A fresh interpreter in an empty folder, exactly like a notebook: crawl, train, index, search, answer, evaluate.
    script = tmp_path / "notebook.py"
    script.write_text(_doc_code())
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    out = run.stdout
    assert re.search(r"^\d+ pages, \d+ sections, \d+ unique texts$", out, re.M)
    assert "trained 2 steps" in out
    hit_lines = re.findall(r"^\d\.\d{3}  .+ > .+  https?://\S+$", out, re.M)
    assert len(hit_lines) == 3
    assert re.search(r"^\[1\] .+ > .+  https?://\S+$", out, re.M), out  # the answer cites a source
    assert (tmp_path / "model" / "modules.json").is_file()
    assert (tmp_path / "evaluation" / "report.md").is_file()
    assert not (tmp_path / "corpus.jsonl").exists()  # nothing written that was not asked for


def test_import_is_light_and_changes_no_process_state() -> None:
    # HF_HUB_OFFLINE and friends are set where a model loads, not by importing the package.
    env = {k: v for k, v in os.environ.items()
           if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"}}
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import sitetune\n"
        "names = [getattr(sitetune, n) for n in sitetune.__all__]\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'openvino', 'pymilvus')\n"
        "               if m in sys.modules)\n"
        "print('env-changed' if dict(os.environ) != before else 'env-same')\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "env-same" in run.stdout
    light = subprocess.run([sys.executable, "-c", "import sys, sitetune; print(sorted(m for m in "
                            "('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert light.stdout.strip() == "[]"  # `import sitetune` alone loads no model library


def test_every_public_name_resolves_and_is_listed() -> None:
    import sitetune

    assert sorted(sitetune.__all__) == sorted(["__version__", *sitetune._EXPORTS])
    for name in sitetune._EXPORTS:
        assert getattr(sitetune, name) is not None
    with pytest.raises(AttributeError):
        sitetune.no_such_name  # noqa: B018


def test_a_corpus_saves_and_loads_unchanged(tmp_path: Path) -> None:
    import sitetune
    from sitetune.records import SectionRecord

    corpus = sitetune.Corpus.from_records([
        SectionRecord("Page A", "Admission", "Admission", "Apply by 1 March.", "https://example.org/a"),
        SectionRecord("Page B", "Admission", "Admission", "Apply by 1 March.", "https://example.org/b"),
    ])
    assert corpus.source is None
    saved = corpus.save(tmp_path / "c.jsonl")
    assert saved.source == str(tmp_path / "c.jsonl")
    loaded = sitetune.load_corpus(tmp_path / "c.jsonl")
    assert loaded == corpus and len(loaded) == 1 and loaded.chunks[0].pages == ("Page A", "Page B")


def test_library_errors_name_parameters_not_flags() -> None:
    import sitetune

    with pytest.raises(sitetune.InputError, match="`prefix` applies to URLs") as caught:
        sitetune.crawl_corpus("sample", prefix="https://example.org/", progress=False)
    assert "--" not in str(caught.value)
