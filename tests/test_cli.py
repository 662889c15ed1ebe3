"""The CLI as one layer: one module per command group, and the encoder fallback reachable from the commands."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.models import base_model_path
from sitetune.recordio import write_records
from sitetune.records import SectionRecord

runner = CliRunner()


def test_each_command_lives_in_the_module_named_after_its_group() -> None:
    commands = {c.name: c.callback for c in app.registered_commands}
    assert list(commands) == ["crawl", "sectionize", "pairs", "train", "evaluate", "index", "refresh", "search",
                              "answer", "serve", "export", "run", "report"]
    for name in ("index", "refresh", "search", "answer", "serve", "export", "run", "report", "crawl", "evaluate"):
        module = commands[name].__module__  # type: ignore[union-attr]
        assert module == f"sitetune.cli.{name}_cmd", (name, module)


def test_fallback_to_torch_is_reachable_from_index_and_search(tmp_path: Path) -> None:
    # A model folder with no openvino-int8 export: asking for that backend fails, unless the flag allows torch.
    model = tmp_path / "model"
    shutil.copytree(base_model_path(), model, copy_function=os.link)
    shutil.rmtree(model / "sitetune-export", ignore_errors=True)
    corpus = tmp_path / "c.jsonl"
    write_records([
        SectionRecord("MSc Finance", "Deadlines", "Deadlines", "Apply by 1 March for the autumn intake.",
                      "https://example.org/finance"),
        SectionRecord("MSc Finance", "English", "English", "IELTS 7.0 overall is required.",
                      "https://example.org/finance"),
    ], corpus)
    store = str(tmp_path / "store")
    base = ["index", "--corpus", str(corpus), "--model", str(model), "--store", store, "--backend", "openvino-int8",
            "--no-progress"]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and "--fallback-to-torch" in refused.output
    assert runner.invoke(app, [*base, "--fallback-to-torch"]).exit_code == 0
    found = runner.invoke(app, ["search", "What IELTS score?", "--store", store, "--backend", "openvino-int8",
                                "--fallback-to-torch", "--no-rerank", "-k", "1", "--json"])
    assert found.exit_code == 0, found.output
    assert "IELTS 7.0" in found.output


def test_library_errors_reach_the_command_line_as_flags(tmp_path: Path) -> None:
    # The library says `prefix` (a parameter); the command says --prefix (the flag the user typed).
    result = runner.invoke(app, ["crawl", "sample", "--out", str(tmp_path / "c.csv"), "--prefix",
                                 "https://example.org/", "--no-progress"])
    assert result.exit_code == 2
    assert "--prefix applies to URLs, not to a served folder" in result.output
    assert "`prefix`" not in result.output


def test_run_takes_a_corpus_or_a_site_to_crawl_not_both(tmp_path: Path) -> None:
    # The main job can crawl any site now (MainJobConfig.start); a corpus file and a site together are refused
    # before any work, in the flags' words.
    result = runner.invoke(app, ["run", "--workdir", str(tmp_path / "job"), "--corpus", str(tmp_path / "c.csv"),
                                 "--site", "https://www.example.edu/", "--no-serve"])
    assert result.exit_code == 2
    assert "give --corpus or --site, not both" in result.output
    assert not (tmp_path / "job").exists()
