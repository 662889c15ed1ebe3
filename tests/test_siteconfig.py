"""The site configuration file (``site.toml``): checked with file:line:key errors, read by run and serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from serve_helpers import session_store
from sitetune.cli.main import app
from sitetune.errors import InputError
from sitetune.siteconfig import ConfigFileError, load_site_config

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _write(folder: Path, text: str, name: str = "site.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_an_unknown_key_stops_serve_and_run_naming_file_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[site]\nstart = "sample"\n\n[crawl]\nmax_page = 10\n')
    for command in ("serve", "run", "refresh"):
        result = runner.invoke(app, [command, "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert f"{path}:5: [crawl] max_page: unknown key (did you mean 'max_pages'?)" in result.output


def test_a_wrong_type_names_the_expected_type_and_every_problem_is_listed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[serve]\nport = "8080"\ncors_origins = "https://www.example.edu"\n\n[encoder]\nbackend = "gpu"\n'
        "\n[crawl]\ndelay_s = true\nrefresh_every = \"daily\"\n[srve]\nport = 1\n",
    )
    with pytest.raises(ConfigFileError) as caught:
        load_site_config(path)
    assert caught.value.problems == [
        f'{path}:2: [serve] port: expected an integer, got the string "8080"',
        f'{path}:3: [serve] cors_origins: expected a list of strings, got the string "https://www.example.edu"',
        f"{path}:6: [encoder] backend: expected one of 'auto', 'torch', 'openvino', 'openvino-int8', 'static', "
        "'sentence-transformers', got 'gpu'",
        f"{path}:9: [crawl] delay_s: expected a number, got the boolean true",
        f"{path}:11: [srve]: unknown table (did you mean 'serve'?)",
    ]
    assert caught.value.line == 2 and caught.value.field == "[serve] port"
    # The schedule is read once the tables are known to be sound.
    path = _write(tmp_path, '[crawl]\nrefresh_every = "daily"\n')
    with pytest.raises(ConfigFileError, match=r":2: \[crawl\] refresh_every: 'daily' is not a duration"):
        load_site_config(path)
    result = runner.invoke(app, ["serve", "--config", str(_write(tmp_path, "[serve]\nworkers = -1\n"))])
    assert result.exit_code == 2 and f"{path}:2: [serve] workers: must be 0 or more, got -1" in result.output


def test_syntax_errors_keys_outside_tables_and_secrets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"site\.toml: not valid TOML: .*line 2"):
        load_site_config(_write(tmp_path, "[serve]\nport = \n"))
    outside = r"site\.toml:1: port: unknown key outside any table: put it under \[serve\]"
    with pytest.raises(ConfigFileError, match=outside):
        load_site_config(_write(tmp_path, "port = 8080\n"))
    with pytest.raises(ConfigFileError) as caught:
        load_site_config(_write(tmp_path, '[llm]\nurl = "http://127.0.0.1:9/v1"\nmodel = "m"\napi_key = "sk-1"\n'))
    assert "[llm] api_key: an API key does not belong in a file" in str(caught.value)
    assert "sk-1" not in str(caught.value)
    with pytest.raises(ConfigFileError, match=r":1: \[llm\]: needs model"):
        load_site_config(_write(tmp_path, '[llm]\nurl = "http://127.0.0.1:9/v1"\n'))
    result = runner.invoke(app, ["serve", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "missing.toml: no such configuration file" in result.output


def test_tables_map_onto_the_settings_and_paths_are_read_from_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "models" / "ce").mkdir(parents=True)
    path = _write(
        tmp_path,
        """
[site]
start = "https://www.example.edu/graduate/"
prefix = "https://www.example.edu/"
workdir = "runs/site"

[crawl]
max_pages = 40
delay_s = 1
refresh_every = "1h30m"

[model]
base = "some-org/multilingual-model"
reranker = "models/ce"

[train]
max_steps = 3
reranker = true

[answer]
min_score = 0.3

[llm]
url = "http://127.0.0.1:8080/v1"
model = "local"
api_key_env = "SITE_LLM_KEY"
max_tokens = 200

[serve]
port = 8123
cors_origins = ["https://www.example.edu"]
query_log = "logs/q.jsonl"
""",
    )
    site = load_site_config(path)
    job = site.job
    assert job.start == "https://www.example.edu/graduate/" and job.prefix == "https://www.example.edu/"
    assert job.workdir == tmp_path / "runs/site" and site.store == str(tmp_path / "runs/site/store")
    assert job.crawl is not None and (job.crawl.max_pages, job.crawl.delay_s) == (40, 1.0)
    assert site.refresh_every_s == 5400
    assert job.base_model == "some-org/multilingual-model"  # a Hub id, kept as it is
    assert job.search.reranker_model == str(tmp_path / "models/ce") and job.search.rerank_weight == 1.0
    assert job.train.max_steps == 3 and job.train.loss == "sorted_mnrl"  # the main job's recipe, adjusted
    assert job.reranker is not None and job.answer.min_score == 0.3
    assert job.llm is not None and (job.llm.api_key_env, job.llm.max_tokens) == ("SITE_LLM_KEY", 200)
    assert job.serve.port == 8123 and job.serve.cors_origins == ("https://www.example.edu",)
    assert site.serve_command.query_log == tmp_path / "logs/q.jsonl"
    # The bundled example is itself a valid file.
    example = load_site_config(REPO / "examples" / "site.toml")
    assert example.job.start == "sample" and example.refresh_every_s == 86_400


def test_run_flags_override_the_file_and_a_given_corpus_drops_the_files_start(tmp_path: Path) -> None:
    path = _write(tmp_path, '[site]\nstart = "https://www.example.edu/"\n[train]\nmax_steps = 2\n')
    # --corpus given: the file's start is not crawled (no "corpus or start, not both"), the flag's corpus is read.
    result = runner.invoke(app, ["run", "--config", str(path), "--corpus", str(tmp_path / "flag.csv"), "--no-serve"])
    assert result.exit_code != 0
    assert "flag.csv" in result.output and "not both" not in result.output
    path = _write(tmp_path, '[site]\ncorpus = "file.csv"\n')
    result = runner.invoke(app, ["run", "--config", str(path), "--no-serve"])
    assert result.exit_code != 0 and str(tmp_path / "file.csv") in result.output


def test_serve_reads_a_good_file_and_a_flag_given_overrides_it(
    cbs_csv: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    store = session_store(cbs_csv, tmp_path_factory)
    file_port, flag_port = _free_port(), _free_port()
    path = _write(
        tmp_path,
        f'[serve]\nstore = "{store}"\nport = {file_port}\nmax_query_words = 3\nwarm_answers = false\n'
        "[answer]\nmin_score = 2.0\n",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "sitetune.cli.main", "serve", "--config", str(path), "--port", str(flag_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO,
    )
    try:
        url = f"http://127.0.0.1:{flag_port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        # The file's settings hold where no flag was given: a query limit, the "not found" threshold.
        too_long = httpx.get(f"{url}/search", params={"q": "when is the application deadline"}, timeout=30)
        assert too_long.status_code == 422 and "at most 3 words" in too_long.text
        answer = httpx.post(f"{url}/answer", json={"question": "application deadline"}, timeout=60).json()
        assert answer["found"] is False  # no sentence scores 2.0
        with pytest.raises(httpx.TransportError):  # the --port flag won over the file's port
            httpx.get(f"http://127.0.0.1:{file_port}/healthz", timeout=2)
    finally:
        process.terminate()
        process.wait(20)
