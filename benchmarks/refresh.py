"""``sitetune refresh``: its cost against a first build, what one changed page re-embeds, and SIGKILLs.

Issue 30's goals: a refresh of an unchanged site finishes in under 10% of the first crawl + index time;
a change to one page re-embeds only that page's sections; a refresh SIGKILLed at random moments leaves the
served store searchable and never mixed.

1. **Per site** (the bundled sample site and the Stirling mirror, each a copy served on 127.0.0.1 by the
   commands themselves, as ``sitetune crawl FOLDER`` does): ``sitetune crawl --sitemaps`` then ``sitetune
   index --model base``, each timed as a whole process; an unchanged ``sitetune refresh --json``, timed the
   same way; then one page's paragraphs are edited and the site refreshed again. The changed refresh's
   ``embedded`` is checked against the corpus: the sections it added must all be that page's, and be
   exactly the ones embedded.
2. **Crash mode** (``--kills N`` on ``--crash-site``): the edited page is switched between its two
   versions so every refresh has work; each ``sitetune refresh`` is SIGKILLed (its process group) at a
   moment uniform over an uncut refresh's duration (seeded). After each kill the store must hold exactly
   one of the two corpora (:func:`sitetune.index.crashcheck.check_store`: chunk ids, vectors, manifest)
   and a :class:`~sitetune.search.Searcher` on it must return hits whose chunk ids all belong to that
   generation and that corpus. The stage a kill landed in is read from the refresh's progress lines.
   A last uncut refresh must complete and hold its corpus.

Writes ``benchmarks/results/refresh.md``.

Usage:
    .venv/bin/python benchmarks/refresh.py [--sites sample stirling] [--kills 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import describe_machine, run_sitetune, write_fragment
from sites import STIRLING_PUBLIC_BASE, STIRLING_ROOT, stirling_corpus

REPO = Path(__file__).resolve().parents[1]
#: The page each site gets edited on, and a query its store answers (for the searchable check).
PAGES = {"sample": "programmes/msc-digital-business.html", "stirling": "study/fees-funding/index.html"}
QUERIES = {"sample": "tuition fee for the digital business programme", "stirling": "tuition fees and funding"}
#: Appended to every paragraph of the edited page: its sections change text, the others do not.
EDIT = " This paragraph was revised for the next academic year."
#: The refresh's progress lines, in order, and the stage a kill after each falls in.
STAGE_LINES = (("refresh: crawling", "crawl"), ("pages crawled", "corpus"), ("refresh: corpus", "drift"),
               ("refresh: indexing", "index"), ("published", "recording"))
STAGES = ("start-up", "crawl", "corpus", "drift", "index", "recording")


@dataclass
class Site:
    """One site's copy, corpus and store, and what was measured on it."""

    name: str
    folder: Path
    corpus: Path
    store: Path
    extra: tuple[str, ...]  # refresh/crawl options the site needs (a public base)
    page: str
    versions: dict[str, str] = field(default_factory=dict)  # "A": the page's HTML, "B": edited
    corpora: dict[str, Path] = field(default_factory=dict)  # the corpus of each version (copies)
    figures: dict[str, Any] = field(default_factory=dict)

    def refresh_args(self) -> list[str]:
        return ["refresh", str(self.folder), "--store", str(self.store), "--no-progress", *self.extra]

    def set_version(self, version: str) -> None:
        (self.folder / self.page).write_text(self.versions[version], encoding="utf-8")


def _timed(*args: str) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    out = run_sitetune(*args)
    return time.perf_counter() - began, out


def _prepare(name: str, root: Path, workdir: Path) -> Site:
    """A copy of the site to edit, and where its corpus and store go."""
    from sitetune.crawl import sample_site_dir

    source = sample_site_dir() if name == "sample" else stirling_corpus(workdir).parent / STIRLING_ROOT
    folder = root / name / "site"
    shutil.copytree(source, folder)
    extra = () if name == "sample" else ("--public-base", STIRLING_PUBLIC_BASE)
    site = Site(name, folder, root / name / "corpus.jsonl", root / name / "store", extra, PAGES[name])
    html = (folder / site.page).read_text(encoding="utf-8")
    edited = html.replace("</p>", EDIT + "</p>")
    if edited == html:
        sys.exit(f"{folder / site.page}: no paragraph to edit")
    site.versions = {"A": html, "B": edited}
    return site


def _chunks(corpus: Path) -> dict[str, set[str]]:
    """Each chunk id of ``corpus`` and the URLs it occurs on."""
    from sitetune.corpus import Corpus

    return {c.chunk_id: {o.url for o in c.occurrences} for c in Corpus.load(corpus).chunks}


def measure_site(site: Site) -> None:
    """First build, unchanged refresh and one-page refresh of ``site``, into ``site.figures``."""
    from sitetune.crawl import default_report_path

    f = site.figures
    f["crawl_s"], _ = _timed("crawl", str(site.folder), "--out", str(site.corpus), "--sitemaps",
                                 "--no-progress", *site.extra)
    f["index_s"], _ = _timed("index", "--corpus", str(site.corpus), "--store", str(site.store),
                                 "--model", "base", "--no-progress")
    site.corpora["A"] = site.corpus.with_name("corpus-A.jsonl")
    shutil.copy(site.corpus, site.corpora["A"])
    f["unchanged_s"], f["unchanged"] = _timed(*site.refresh_args())
    report = json.loads(default_report_path(site.corpus).read_text(encoding="utf-8"))
    f["dead_links"] = report.get("skip_reasons", {}).get("http-404", 0)  # asked for again on every crawl
    site.set_version("B")
    f["changed_s"], f["changed"] = _timed(*site.refresh_args())
    site.corpora["B"] = site.corpus.with_name("corpus-B.jsonl")
    shutil.copy(site.corpus, site.corpora["B"])
    before, after = _chunks(site.corpora["A"]), _chunks(site.corpora["B"])
    added = set(after) - set(before)
    f["page_sections"] = sum(1 for urls in after.values() if any(u.endswith(site.page) for u in urls))
    f["added"] = len(added)
    f["added_elsewhere"] = sum(1 for c in added if not any(u.endswith(site.page) for u in after[c]))
    f["chunks"] = len(after)
    f["first_s"] = f["crawl_s"] + f["index_s"]
    f["ratio"] = f["unchanged_s"] / f["first_s"]
    print(f"{site.name}: first {f['first_s']:.1f} s, unchanged refresh {f['unchanged_s']:.1f} s "
          f"({f['ratio']:.1%}); changed page: {f['changed']['embedded']} embedded, {len(added)} new sections",
          flush=True)


def _stage_of(stderr: str) -> str:
    stage = "start-up"
    for marker, name in STAGE_LINES:
        if marker in stderr:
            stage = name
    return stage


def _refresh_process(site: Site, kill_after: float | None) -> tuple[bool, str, float]:
    """Run one refresh, SIGKILL its group after ``kill_after`` s; (killed, stage reached, seconds)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "sitetune.cli.main", *site.refresh_args()], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    killed = False
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's group: the refresh and its site server
        proc.wait()
        killed = True
    seconds = time.perf_counter() - began
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if not killed and proc.returncode != 0:
        raise RuntimeError(f"refresh exited {proc.returncode}: {err[-2000:]}")
    return killed, _stage_of(err), seconds


@dataclass
class CrashReport:
    """What the kill loop saw."""

    run_seconds: float = 0.0
    kills: int = 0
    completed: int = 0
    stages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    old: int = 0
    new: int = 0
    searches: int = 0
    failures: list[str] = field(default_factory=list)
    final_ok: bool = False


def _check(site: Site, corpora: dict[str, Any], encoder: Any, query: str) -> tuple[str | None, list[str]]:
    """The corpus the store holds, and every violated check (store, manifest, search)."""
    from sitetune.index.crashcheck import check_store
    from sitetune.search import Searcher

    found, _, problems = check_store(site.store, corpora)
    if found is None:
        return None, problems
    try:
        with Searcher.open(site.store, encoder=encoder) as searcher:
            generation = {c.chunk_id for c in searcher.reader.chunks}
            hits = searcher.search(query, k=10)
    except Exception as exc:  # any failure to search is what this check reports
        return found, [*problems, f"not searchable: {type(exc).__name__}: {exc}"]
    ids = {h.chunk_id for h in hits}
    if not hits:
        problems.append("search returned no hits")
    if ids - generation:
        problems.append(f"{len(ids - generation)} hits not in the generation opened")
    if ids - {c.chunk_id for c in corpora[found].chunks}:
        problems.append(f"hits outside corpus {found}")
    return found, problems


def crash_loop(site: Site, kills: int, seed: int) -> CrashReport:
    """SIGKILL refreshes of ``site`` (switching its page A <-> B) ``kills`` times, checking after each."""
    from sitetune.corpus import Corpus
    from sitetune.encode import load_encoder
    from sitetune.models import resolve_model_path

    rng = random.Random(seed)
    corpora = {v: Corpus.load(p) for v, p in site.corpora.items()}
    encoder = load_encoder(resolve_model_path("base"))
    query = QUERIES[site.name]
    report = CrashReport()
    served = "B"  # measure_site left the store at B
    site.set_version("A")
    _, _, report.run_seconds = _refresh_process(site, None)
    served = "A"
    i = 0
    while report.kills < kills and i < 3 * kills:
        target = "B" if served == "A" else "A"
        site.set_version(target)
        moment = rng.uniform(0.0, report.run_seconds)
        killed, stage, _ = _refresh_process(site, moment)
        if killed:
            report.kills += 1
            report.stages[stage] += 1
        else:
            report.completed += 1
        found, problems = _check(site, corpora, encoder, query)
        report.searches += int(found is not None)
        if found is None:
            problems = problems or ["the store holds neither corpus"]
        elif found == target:
            report.new += 1
        else:
            report.old += 1
            if not killed:
                problems.append(f"the refresh finished but the store holds {found}")
        if problems:
            report.failures.append(f"run {i} (to {target}, kill at {moment:.2f} s in {stage}): " + "; ".join(problems))
        served = found or served
        i += 1
        print(f"  run {i}: {'killed' if killed else 'finished'} at {moment:.2f} s ({stage}) -> {found}"
              + (f" FAIL {problems}" if problems else ""), flush=True)
    target = "B" if served == "A" else "A"
    site.set_version(target)
    _refresh_process(site, None)
    found, problems = _check(site, corpora, encoder, query)
    report.final_ok = found == target and not problems
    if not report.final_ok:
        report.failures.append(f"the refresh after the kills: store holds {found}, {problems}")
    return report


def _stages(report: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in report.get("stages", {}).items())


def _fragment(args: argparse.Namespace, sites: list[Site], crash: CrashReport | None, machine: str,
              minutes: float) -> list[str]:
    cmd = (f".venv/bin/python benchmarks/refresh.py --sites {' '.join(args.sites)} --kills {args.kills} "
           f"--seed {args.seed}")
    lines = [
        "## Refresh: an unchanged site, one changed page, and SIGKILLs",
        "",
        f"- Command: `{cmd}`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {minutes:.1f} min",
        f"- Machine: {machine}",
        "- Each site a copy served on 127.0.0.1 by the command itself (`sitetune crawl FOLDER`); model `base` "
        "(no training); every time is a whole process (`python -m sitetune.cli.main ...`), start-up included",
        "",
        "| site | pages | sections | first crawl + index s | unchanged refresh s | ratio | page edited: its "
        "sections / new in the corpus / embedded (`--json`) | one-page refresh s |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for s in sites:
        f = s.figures
        u, c = f["unchanged"], f["changed"]
        lines.append(f"| {s.name} | {u['pages']} | {f['chunks']} | {f['first_s']:.1f} | {f['unchanged_s']:.2f} | "
                     f"{f['ratio']:.1%} | `{s.page}`: {f['page_sections']} / {f['added']} / {c['embedded']} | "
                     f"{f['changed_s']:.1f} |")
    lines += [
        "",
        "Where the time goes (crawl and index: whole processes; the refreshes' stages from `--json`, in process):",
        "",
        "| site | crawl s | index s | dead links asked for (404) | unchanged refresh: in process s, stages | "
        "one-page refresh: in process s, stages | new sections on other pages | generation |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for s in sites:
        f = s.figures
        u, c = f["unchanged"], f["changed"]
        lines.append(f"| {s.name} | {f['crawl_s']:.1f} | {f['index_s']:.1f} | {f['dead_links']} | {u['seconds']:.2f}: "
                     f"{_stages(u)} | {c['seconds']:.2f}: {_stages(c)} | {f['added_elsewhere']} | "
                     f"{c['previous_generation']} → {c['generation']} |")
    lines.append("")
    if crash is not None:
        verdict = "PASS" if not crash.failures else f"FAIL ({len(crash.failures)})"
        stages = ", ".join(f"{k} {v}" for k, v in crash.stages.items())
        lines += [
            f"Crash mode on the {args.crash_site} site: the edited page switched between its two versions before "
            f"each refresh; SIGKILL at a moment uniform over an uncut refresh ({crash.run_seconds:.1f} s), seed "
            f"{args.seed}.",
            "",
            "| refreshes | SIGKILLed | finished first | kills by stage | store held old | store held new | "
            "searched | refresh after the kills | result |",
            "|---:|---:|---:|---|---:|---:|---:|---|---|",
            f"| {crash.kills + crash.completed} | {crash.kills} | {crash.completed} | {stages} | {crash.old} | "
            f"{crash.new} | {crash.searches} | {'completed' if crash.final_ok else 'FAILED'} | {verdict} |",
            "",
        ]
        if crash.failures:
            lines += ["Violations:", "", *(f"- {x}" for x in crash.failures), ""]
        else:
            lines += ["After every run the store opened holding exactly one of the two corpora (chunk ids, "
                      "vectors and manifest), and a search on it returned only that generation's chunks.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", nargs="+", choices=sorted(PAGES), default=["sample", "stirling"])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in crash mode (0: skip it)")
    parser.add_argument("--crash-site", choices=sorted(PAGES), default="sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "sites",
                        help="Where the Stirling mirror is extracted (benchmarks/sites.py)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "refresh.md")
    args = parser.parse_args()
    if args.kills and args.crash_site not in args.sites:
        parser.error("--crash-site must be one of --sites")

    machine = describe_machine()
    started = time.perf_counter()
    crash = None
    with tempfile.TemporaryDirectory(prefix="sitetune-refresh-") as tmp:
        sites = [_prepare(name, Path(tmp), args.workdir) for name in args.sites]
        for site in sites:
            measure_site(site)
        if args.kills:
            crash = crash_loop(next(s for s in sites if s.name == args.crash_site), args.kills, args.seed)
    lines = _fragment(args, sites, crash, machine, (time.perf_counter() - started) / 60)
    write_fragment(args.out, lines)
    bad = crash is not None and bool(crash.failures)
    bad |= any(s.figures["added_elsewhere"] or s.figures["changed"]["embedded"] != s.figures["added"] for s in sites)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
