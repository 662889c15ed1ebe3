"""Assemble BENCHMARKS.md from the result fragments each benchmark script writes.

Every script in ``benchmarks/`` runs alone and writes ``benchmarks/results/<name>.md`` (command, machine,
date, tables, reading). BENCHMARKS.md is:

1. ``benchmarks/results/_summary.md``, written by hand: how to read the file and the "Current figures"
   table (one row per question, with its command, machine and date);
2. one section per question, in the order of :data:`SECTIONS`: a short hand-written reading (the question
   and its current answer), then from each current fragment one line with its date, machine, load and
   command, a link to the whole fragment, and its main table(s) (some rows only, where a section says so).

A fragment that a newer run replaces, or that measured a variant not adopted, moves to
``benchmarks/history/`` (plain ``mv``) with one line in ``benchmarks/history/README.md``: its question,
date and conclusion. When a script rewrites a fragment, check the section's reading (and the summary row)
still says what the new table shows. A fragment in ``benchmarks/results/`` that no section uses is
reported (and appended at the end) so that nothing is dropped silently.

Usage: python benchmarks/assemble.py
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SUMMARY = RESULTS / "_summary.md"

#: Fragments a section will hold but that no section lists yet (the lead places them).
RESERVED: set[str] = set()

_COMMAND = re.compile(r"^(?:- )?Command: (.*)$")


@dataclass(frozen=True)
class Part:
    """What one section shows of one fragment.

    ``tables``: which tables, counted from 0 in the fragment's order. ``rows``: a regular expression; when
    given, only the body rows that match it are kept (the header always is). ``meta``: show the fragment's
    date, machine, load and command on one line, with a link to the whole fragment.
    """

    stem: str  # a fragment only linked from the section's text: tables=(), meta=False
    tables: tuple[int, ...] = (0,)
    rows: str | None = None
    meta: bool = True


@dataclass(frozen=True)
class Section:
    """One question: its heading, a hand-written reading (the current answer) and the fragments shown."""

    title: str
    text: str
    parts: tuple[Part, ...] = ()
    level: int = 2


SECTIONS: tuple[Section, ...] = (
    Section(
        "Quality on real sites: base, BM25, tuned dense and the served search",
        """Rows ranked by the served `Searcher` (`sitetune evaluate`); `+search` = the served pipeline; tuned = the
default 80-step `sitetune train` (a base store is served best with `--sentence-weight 0`). The `cbs` set (60
questions written with the pages in view): served tuned 0.643 / 63.3% (whole fragment).""",
        (Part("quality", tables=(2, 4)),),
    ),
    Section(
        "Signposts, testimonials, scope and two-step answers (section signals)",
        """Index-time signals (`sitetune.sectionkind`): signpost probability, testimonial flag, scope, pages named.
Chosen on development halves, they move neither test half by more than a question; added to the others, the
testimonial penalty gains one answered first on both. Signpost F1 on a left-out site 0.35–0.50; the
testimonial flag finds 22 of CBS's 28 labelled testimonials with one false alarm.""",
        (Part("section_signals"), Part("section_kinds")),
    ),
    Section(
        "Where the served search's first result goes wrong (development and test halves)",
        """CBS development, 54 of 107 miss: 24 another section of an answering page first, 30 a page holding none; 13
a "signpost" (probability ≥ 0.5; mostly one programme's short fact), 1 a testimonial; answer in top 5: 24.""",
        (Part("first_hit_misses"),),
    ),
    Section(
        "Served search settings chosen on development questions, reported on test questions",
        """126 fusion settings scored on development halves; test halves shown. No development pick wins on both
sites, so RRF k 5, BM25 0.75, programme boost 0.05 stay. Run before the programme-page step and the
sentence stage were served: "default (served)" is the fusion alone.""",
        (Part("fusion"),),
    ),
    Section(
        "A named programme page's sections ranked by the rest of the question",
        """`intent_weight` 0.5 (served), chosen on development halves: a CBS gain; Stirling unchanged (no question
names its one template page). Ranking *any* named page's sections lost on Stirling. Sentence stage off.""",
        (Part("fusion_intent"),),
    ),
    Section(
        "Query spelling and abbreviations: how search reads a question (development and test halves)",
        """Both on (`correct_spelling`, `abbreviations`), not tuned on these questions: neutral on the development
halves, a gain on both test halves (shown) and both models. Development rows and changed questions: whole
fragment.""",
        (Part("query_reading", rows=r"\| test \|"),),
    ),
    Section(
        "Second stages: the served sentence stage (sentence max-sim)",
        """Sentence max-sim, weight 0.5 on the top 5 (`sentence_weight`, `sentence_depth`): best on both development
halves with the default 80-step models, no worse on either test half; late interaction loses on both. It
costs 1 ms warm (the server encodes all sentences at start). With the base model it hurts.""",
        (Part("rerank-maxsim"),),
    ),
    Section(
        "Second stages: the cross-encoder reranker (optional, off by default)",
        """`sitetune train --reranker` + `--rerank-weight`; off by default: it loses CBS's test first result (39.5% →
35.5%; the sample site agrees: rerank-ce-sample.md). Too slow: 138 ms alone (top 10), so at 20 requests/s one
core sheds load (CBS p50 5.0 s with 503s; goal p50 ≤ 40 ms: rerank_latency_cbs.md, _stirling, _sample).
Training it: `mini_batch_size` 16 cuts peak RSS 9.2 → 3.7 GB for 1.53x the time (rerank_memory_sample.md).""",
        (
            Part("rerank-ce", rows=r"fused|cross-encoder"),
            Part("rerank-ce-sample", tables=(), meta=False),
            Part("rerank_latency_cbs", tables=(), meta=False),
            Part("rerank_latency_stirling", tables=(), meta=False),
            Part("rerank_latency_sample", tables=(), meta=False),
            Part("rerank_memory_sample", tables=(), meta=False),
        ),
    ),
    Section(
        "Extractive answers with the default tuned models (test halves)",
        """The first citation is always search's first hit, so it is bounded by search's answers@1: the CBS goal (50%)
is a ranking goal. Goals not met: CBS first citation ≥ 50%; Stirling ≥ 92% holding the answer and 4 of 5
unanswerable → "not found". Re-chosen on development questions (`answer_settings`, second run), the
settings stay: the pick lost the first citation on both test halves (CBS 38.3% → 31.9%, Stirling 75.0% →
70.8%).""",
        (Part("answers_tuned", rows=r"\| test \("), Part("answer_settings", tables=())),
    ),
    Section(
        "Answer threshold chosen on development questions, reported on test questions",
        """`AnswerConfig.min_score` 0.39: the highest keeping answerable → "not found" ≤ 10% on the pooled
development halves, for the default 80-step models; base-model stores pick 0.54.""",
        (Part("answer_threshold"),),
    ),
    Section(
        "Training: time and step cost of the default recipe",
        """80 steps of batch 64, retrained on a quiet host for "Quality on real sites": CBS 912 s, Stirling 326 s. The
served loss (`sorted_mnrl` 16) trains as well as the former (30-step models 0.542 vs 0.550 nDCG@10, -1.3 SE:
benchmarks/results/train_step_quality.md); six set-ups: benchmarks/results/train_step_cost.md.""",
        (
            Part("train_step_trainer", rows=r"^\| 2 \|"),
            Part("train_step_quality", tables=(), meta=False),
            Part("train_step_cost", tables=(), meta=False),
        ),
    ),
    Section(
        "Card recipe vs the published training log",
        """`--recipe card` matches the published loss log (the step-500 row averages steps 360-500 only: a resume);
bf16 leaves it unchanged (fp32/bf16 ratio 1.00 over 12 steps). Its checkpoint ranks real questions far
below the base model: the default recipe is retrieval.""",
        (Part("card_reproduction", tables=(0, 2), rows=r"^\| (\d+|base|card-step1001|retrieval-24steps) \|"),),
    ),
    Section(
        "Encoder speed and query latency (quiet machine)",
        """`auto` = OpenVINO bf16: 4.60x fp32, nDCG@10 +0.003; a query (encode + exact search, 961 chunks) 1.77 ms
p50. Static: 69x, −0.12 nDCG@10, never the default. int8 was measured on a shared machine only (history).""",
        (Part("encode-quiet"),),
    ),
    Section(
        "Opening a store for search (cold, and again in the same process)",
        """The site analysis is written at index time (`site.json`) and read, not derived, when a store opens
(before: 0.7–1.1 s to reopen the CBS store). A cold open is mostly the model's load.""",
        (Part("store_open", rows=r"cbs-tuned|without"),),
    ),
    Section(
        "Exact search and the approximate index up to 100k vectors: faiss vs hnswlib vs usearch",
        """Exact numpy search (p50): 0.30 ms at 10k vectors, 2.9 ms at 50k, 7.9 ms at 100k, 19 ms at 200k: below
50k about what encoding the question costs, so the store indexes from 50k chunks
(`SITETUNE_ANN_MIN_VECTORS`). hnswlib matches faiss, usearch builds 4x slower: the store uses faiss HNSW.
Shown: faiss at efSearch 64 and 256 (all libraries and values: whole fragment).""",
        (Part("ann", tables=(1,), rows=r"exact|faiss efSearch (64|256) \|"),),
    ),
    Section(
        "Approximate search at a million vectors (the store's HNSW)",
        """Topics varying mostly in a 16-d subspace; efSearch 256 is what the store's recall check chose; build peak
RSS 3.3 GiB. Full-rank topics (history) reach 0.915 only at efSearch 512; where the check fails the store
keeps exact search.""",
        (Part("ann-1m-lowdim", tables=(1,), rows=r"exact|efSearch (64|256|1024) "),),
    ),
    Section(
        "Milvus standalone server vs the embedded store",
        """Same rankings (dense and hybrid top-10 on CBS: 60/60); slower on one machine (CBS dense p50 3.54 ms vs
0.110 ms embedded; the server shares the client's 2 cores): for scale beyond one machine. Rows shown: ef
256, what the store asks.""",
        (Part("milvus_server", tables=(2,), rows=r"ef 256"),),
    ),
    Section(
        "Indexing a million sections in bounded memory (`sitetune index`, streaming build)",
        """Static encoder; a SIGKILLed run resumes from what it kept; on these generated corpora HNSW fails the recall
check, so exact search is kept. Rows dated 2026-12-02 13:10-16:52 UTC.""",
        (Part("index_million"),),
    ),
    Section(
        "Crash safety: kill-and-check of `sitetune index`",
        """After every run the store held exactly one of the two corpora: no missing, phantom or duplicate chunk.""",
        (Part("crash_index"),),
    ),
    Section(
        "Refresh: an unchanged site, one changed page, and SIGKILLs of `sitetune refresh`",
        """Unchanged refresh / first crawl + index: Stirling 7.8% (18.8% before dead links were cached), sample 14.5%
(1 s of it the site's own 503 Retry-After). One edited page re-embeds only its changed sections. 20 SIGKILLs
mid-refresh: the store always opened whole, one generation, searchable (PASS; table in the fragment).""",
        (Part("refresh", tables=(0,)),),
    ),
    Section(
        "Load: `sitetune serve` under an open-model arrival rate",
        """One core, whole CBS store, served defaults. `/answer` misses p99 < 100 ms: the core is near saturation.
Sentence stage off (history): `/search` p50 14.9 ms, so the stage costs 1.15x. Near capacity use
`--workers 2`.""",
        (Part("load"),),
    ),
    Section(
        "Load: `sitetune serve --workers N`, throughput at 1 and 2 workers",
        """Workers pinned to their own cores: 240 vs 120 searches/s at p99 ≤ 100 ms, **2.00x**, a lower bound (goal ≥
1.6x); steps around each limit shown. The closed-loop `wrk` run (history): 2.43x searches, 1.89x answers.""",
        (Part("load_workers_open", rows=r"\| (1 \| `GET /search` \| 1[24]0|2 \| `GET /search` \| (120|240)) \|"),),
    ),
    Section(
        "Load under hostile clients: one normal client beside four worst-case ones",
        """Four clients back to back (999-letter words, 1,000-character queries, `/answer` on a 5 s LLM), each from
its own address: long queries now get a 422 before any model work and the model lock takes clients in turn.
A fifth client's `/search` p50 31 ms, p99 436 ms on one worker and 168 ms on two (before: 2,258 / 239; goal
≤ 50 ms: **not met**: ~400 refused requests a second on new connections still saturate the core); no
process grew more than 12 MB (goal ≤ 200).""",
        (Part("hostile_load", tables=(), meta=False),),
    ),
    Section(
        'Superseded runs and measured "no"s',
        """Older runs and variants measured and not adopted are kept unchanged in `benchmarks/history/`; its
[README](benchmarks/history/README.md) gives each one's question, date and conclusion.""",
    ),
)


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """Split a fragment into blocks: ("table" | "heading" | "text", lines); blank lines separate."""
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            blocks.append(("blank", []))
            continue
        kind = "table" if line.startswith("|") else "heading" if line.startswith("#") else "text"
        if blocks and blocks[-1][0] == kind and kind != "heading":
            blocks[-1][1].append(line)
        else:
            blocks.append((kind, [line]))
    return [b for b in blocks if b[0] != "blank"]


def _caption(previous: tuple[str, list[str]] | None) -> str | None:
    """A table's caption: the heading just above it, or a one-line lead-in ending in a colon."""
    if previous is None:
        return None
    kind, lines = previous
    if kind == "heading":
        return "**" + lines[0].lstrip("#").strip() + "**"
    if kind == "text" and len(lines) == 1 and lines[0].rstrip().endswith(":") and not lines[0].startswith("-"):
        return lines[0].strip()
    return None


def _run_line(text: str, rel: str) -> str:
    """One line naming a fragment's run: date, machine, load at start, command, and a link to it."""
    date = re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", text)
    machine = "host not named"
    if "AMD EPYC" in text:
        machine = "AMD EPYC, 2 CPUs"
    elif "Intel(R) Xeon(R)" in text:
        machine = "Intel Xeon, 2 CPUs"
    load = re.search(r"[Ll]oad average[^\n]*?at start:? (\d+(?:\.\d+)?)", text)
    command = next((m.group(1) for line in text.splitlines() if (m := _COMMAND.match(line))), "not recorded")
    return (
        f"Run: {date.group(0) if date else 'date not recorded'}, {machine}"
        + (f", load {load.group(1)} at start" if load else "")
        + f"; [`{rel}`]({rel}). Command: {command.replace('(notes below)', '').strip()}"
    )


def _part(part: Part) -> list[str]:
    path = RESULTS / f"{part.stem}.md"
    if not path.exists():
        print(f"warning: {path.relative_to(ROOT)} is missing; its part is left out", file=sys.stderr)
        return []
    text = path.read_text(encoding="utf-8")
    out: list[str] = []
    rel = path.relative_to(ROOT).as_posix()
    if part.meta:
        out += [_run_line(text, rel), ""]
    blocks = _blocks(text)
    tables = [(i, lines) for i, (kind, lines) in enumerate(blocks) if kind == "table"]
    keep = re.compile(part.rows) if part.rows else None
    for index in part.tables:
        if index >= len(tables):
            print(f"warning: {rel} has no table {index}", file=sys.stderr)
            continue
        position, lines = tables[index]
        caption = _caption(blocks[position - 1] if position > 0 else None)
        if caption:
            out += [caption, ""]
        body = lines[2:] if keep is None else [row for row in lines[2:] if keep.search(row)]
        out += lines[:2] + body + [""]
    return out


def main() -> None:
    parts = [SUMMARY.read_text(encoding="utf-8").strip(), ""]
    used: set[str] = set()
    for section in SECTIONS:
        parts += ["#" * section.level + " " + section.title, "", section.text.strip(), ""]
        for part in section.parts:
            used.add(part.stem)
            parts += _part(part)
    unplaced = sorted(p for p in RESULTS.glob("*.md") if not p.stem.startswith("_") and p.stem not in used | RESERVED)
    if unplaced:
        names = ", ".join(p.name for p in unplaced)
        print(
            f"warning: fragments in no section (appended at the end; place them or move them to "
            f"benchmarks/history/): {names}",
            file=sys.stderr,
        )
        parts += ["## Fragments not yet placed in a section", ""]
        for fragment in unplaced:
            parts += [re.sub(r"(?m)^## ", "### ", fragment.read_text(encoding="utf-8").strip()), ""]
    text = "\n".join(parts).rstrip() + "\n"
    tmp = ROOT / "BENCHMARKS.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(ROOT / "BENCHMARKS.md")
    print(f"BENCHMARKS.md: {len(SECTIONS)} sections, {text.count(chr(10))} lines")


if __name__ == "__main__":
    main()
