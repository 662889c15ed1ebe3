"""Kill-and-check: SIGKILL ``sitetune index`` at random moments and check the store after every kill.

After each kill the store must open, and hold exactly the chunks of the old corpus or of the new one:
no missing, phantom or duplicate chunk_ids, one unit vector per chunk, a manifest that names that corpus.
Used by ``tests/test_index_crash.py`` (a few kills) and ``benchmarks/crash_index.py`` (50 and more).

Random moments need not land in the short window where a generation is written and switched, so
:func:`kill_at_steps` also kills the writer at each named step of :meth:`EmbeddedStore.write` (through
:data:`sitetune.index.store.write_step_hook`): before the switch the old corpus must be found, after it
the new one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sitetune.corpus import Corpus
from sitetune.index.identity import corpus_hash
from sitetune.index.reader import open_store
from sitetune.index.store import StoreError

#: The steps of a generation write, in order, and the ones after which ``CURRENT`` names the new one.
WRITE_STEPS = ("files-written", "synced", "renamed", "switched", "pruning")
SWITCHED_STEPS = frozenset({"switched", "pruning"})

# Runs the CLI with the store's write hook set to SIGKILL the process at the step named in argv[1].
_KILL_AT_STEP = """
import os, signal, sys
import sitetune.index.store as store
step = sys.argv.pop(1)
def kill(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)
store.write_step_hook = kill
from sitetune.cli.main import app
app(prog_name="sitetune")
"""


@dataclass
class KillReport:
    """What a kill loop saw.

    Attributes:
        kills: Runs killed by SIGKILL.
        completed: Runs that finished before their kill moment.
        old: Checks that found the previous corpus (killed before the switch).
        new: Checks that found the new corpus.
        fell_back: Opens that warned and used an older generation.
        failures: Descriptions of every violated check (empty when the store held up).
        run_seconds: Duration of one uninterrupted re-index, used to pick kill moments.
    """

    kills: int = 0
    completed: int = 0
    old: int = 0
    new: int = 0
    fell_back: int = 0
    failures: list[str] = field(default_factory=list)
    run_seconds: float = 0.0


def _command(corpus: Path, store: Path, kill_at_step: str | None = None) -> list[str]:
    launch = ["-m", "sitetune.cli.main"] if kill_at_step is None else ["-c", _KILL_AT_STEP, kill_at_step]
    return [
        sys.executable,
        *launch,
        "index",
        "--corpus",
        str(corpus),
        "--store",
        str(store),
        "--model",
        "base",
        "--no-progress",
    ]


def _run(corpus: Path, store: Path, kill_after: float | None, kill_at_step: str | None = None) -> bool:
    """Run one index; SIGKILL it after ``kill_after`` seconds or at a write step. True if it was killed."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.Popen(
        _command(corpus, store, kill_at_step),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's group: the index and anything it started
        proc.wait()
        return True
    finally:
        if proc.stderr is not None:
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
    if proc.returncode == -signal.SIGKILL and kill_at_step is not None:
        return True
    if proc.returncode != 0:
        raise RuntimeError(f"index exited {proc.returncode}: {err[-2000:]}")
    return False


def check_store(store: Path, corpora: dict[str, Corpus]) -> tuple[str | None, bool, list[str]]:
    """Open ``store`` and check it holds exactly one of ``corpora``.

    Returns:
        (name of the corpus found or None, whether the open fell back, problems).
    """
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reader = open_store(store)
        except StoreError as exc:
            return None, False, [f"unreadable: {exc}"]
    fell_back = any(issubclass(w.category, RuntimeWarning) for w in caught)
    with reader:
        ids = [c.chunk_id for c in reader.chunks]
        vectors = reader.generation.vectors
        if len(ids) != len(set(ids)):
            problems.append(f"{len(ids) - len(set(ids))} duplicate chunk_ids")
        found = next(
            (name for name, c in corpora.items() if {x.chunk_id for x in c.chunks} == set(ids)), None
        )
        if found is None:
            sets = {name: {x.chunk_id for x in c.chunks} for name, c in corpora.items()}
            detail = ", ".join(
                f"vs {n}: {len(s - set(ids))} missing, {len(set(ids) - s)} phantom" for n, s in sets.items()
            )
            problems.append(f"chunk_ids match no corpus ({detail})")
        elif reader.manifest.corpus_hash != corpus_hash(corpora[found].chunks):
            problems.append(f"manifest corpus hash is not {found}'s")
        if vectors is None or vectors.shape[0] != len(ids):
            problems.append("vector count differs from chunk count")
        elif not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2):
            problems.append("vectors that are not unit length (unwritten rows)")
    return found, fell_back, problems


def kill_loop(corpus_a: Path, corpus_b: Path, store: Path, kills: int, *, seed: int = 0) -> KillReport:
    """Alternate re-indexes A -> B -> A ... into ``store``, SIGKILL each at a random moment, check after each.

    The store is first built from A (also killed once mid-build: a store killed before its first
    generation is complete must read as "no index", never as half an index). Half the kill moments are
    uniform over a whole run, half fall in its last quarter, where the generation is written and switched.

    Args:
        corpus_a: The old corpus.
        corpus_b: The new corpus (overlapping A, so re-indexes reuse, add and drop chunks).
        store: An embedded store directory (created).
        kills: How many SIGKILLs to deliver (runs that finish first are checked but not counted).
        seed: For the kill moments.

    Returns:
        A :class:`KillReport`; ``failures`` lists every violated check.
    """
    rng = random.Random(seed)
    corpora = {"A": Corpus.load(corpus_a), "B": Corpus.load(corpus_b)}
    paths = {"A": corpus_a, "B": corpus_b}
    report = KillReport()
    _run(corpus_a, store, kill_after=1.0)  # killed during start-up: nothing may be visible
    found, _, problems = check_store(store, corpora)
    if found is not None or not all("no index" in p for p in problems):
        report.failures.append(f"after a kill before the first generation: {found} {problems}")
    _run(corpus_a, store, kill_after=None)
    # Kill moments are fractions of an uninterrupted *re-index* (shorter than the first build).
    started = time.perf_counter()
    _run(corpus_b, store, kill_after=None)
    report.run_seconds = time.perf_counter() - started
    current = "B"
    i = 0
    # Count SIGKILLs, not runs: a run that finishes before its kill moment is checked too, but a loop
    # of ``kills`` must deliver that many kills (bounded, in case runs keep finishing first).
    durations = [report.run_seconds]
    while report.kills < kills and i < 3 * kills:
        target = "A" if current == "B" else "B"
        # Kill moments follow how long runs take now (the median of recent uninterrupted runs): on a
        # shared machine a run's length drifts, and moments past its end would only let it finish.
        t = float(np.median(durations[-5:]))
        moment = rng.uniform(0.05, 1.0) * t if i % 2 == 0 else rng.uniform(0.75, 1.0) * t
        begun = time.perf_counter()
        killed = _run(paths[target], store, kill_after=moment)
        if killed:
            report.kills += 1
        else:
            report.completed += 1
            durations.append(time.perf_counter() - begun)
        found, fell_back, problems = check_store(store, corpora)
        report.fell_back += int(fell_back)
        if problems:
            report.failures.append(f"run {i} ({target}, kill at {moment:.2f} s): " + "; ".join(problems))
        if found == target:
            report.new += 1
        elif found is not None:
            report.old += 1
            if not killed:
                report.failures.append(f"run {i} ({target}) finished but the store holds {found}")
        current = found or current
        i += 1
    return report


def kill_at_steps(corpus_a: Path, corpus_b: Path, store: Path) -> KillReport:
    """SIGKILL a re-index at each step of :data:`WRITE_STEPS` in turn, alternating A and B, and check.

    The store is built from A; by the kill at "pruning" the killed runs have left enough generations
    for that write to have an old one to prune. Each kill must land (the step is reached), leave the
    old corpus before the switch and the new one after it, and leave the evidence of where it landed:
    the ``.gen-*.tmp`` folder before the rename, the unswitched ``gen-*`` after it, the ``.trash-*``
    folder while pruning. A last uninterrupted run must clear every leftover and hold its corpus.

    Args:
        corpus_a: One corpus.
        corpus_b: Another (overlapping) corpus.
        store: An embedded store directory (created).

    Returns:
        A :class:`KillReport` with ``kills == len(WRITE_STEPS)`` and ``failures`` naming every violated check.
    """
    from sitetune.index.store import EmbeddedStore

    corpora = {"A": Corpus.load(corpus_a), "B": Corpus.load(corpus_b)}
    paths = {"A": corpus_a, "B": corpus_b}
    report = KillReport()
    embedded = EmbeddedStore(store)

    def check(label: str, target: str, expected: str) -> None:
        found, fell_back, problems = check_store(store, corpora)
        report.fell_back += int(fell_back)
        report.failures.extend(f"{label}: {p}" for p in problems)
        if found != expected:
            report.failures.append(f"{label}: expected corpus {expected}, found {found}")
        elif found == target:
            report.new += 1
        else:
            report.old += 1

    _run(corpus_a, store, kill_after=None)
    report.completed += 1
    check("build of A", "A", "A")
    current = "A"
    for step in WRITE_STEPS:
        target = "A" if current == "B" else "B"
        before = embedded.current()
        if not _run(paths[target], store, kill_after=None, kill_at_step=step):
            report.failures.append(f"kill at {step!r}: the run finished, the step was never reached")
            continue
        report.kills += 1
        leftovers = sorted(p.name for p in store.iterdir() if p.name.startswith((".gen-", ".trash-")))
        after = embedded.current()
        if step in ("files-written", "synced") and not any(n.endswith(".tmp") for n in leftovers):
            report.failures.append(f"kill at {step!r}: no .gen-*.tmp folder left, the kill missed the write")
        if step == "renamed" and (after != before or max(embedded.generations()) == before):
            report.failures.append(f"kill at {step!r}: expected a renamed generation that CURRENT does not name")
        if step == "pruning" and not any(n.startswith(".trash-") for n in leftovers):
            report.failures.append(f"kill at {step!r}: no .trash-* folder left, the kill missed the prune")
        expected = target if step in SWITCHED_STEPS else current
        check(f"kill at {step!r} writing {target}", target, expected)
        current = expected
    target = "A" if current == "B" else "B"
    _run(paths[target], store, kill_after=None)
    report.completed += 1
    check(f"final run writing {target}", target, target)
    leftovers = sorted(p.name for p in store.iterdir() if p.name.startswith((".gen-", ".trash-")))
    if leftovers:
        report.failures.append(f"a finished run left {leftovers}")
    return report
