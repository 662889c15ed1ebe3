"""Writing an evaluation: report.md, metrics.json and the PNG plots, each file atomically."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sitetune.atomic import atomic_write_text
from sitetune.evaluation.metrics import METRICS

if TYPE_CHECKING:
    from sitetune.evaluation.result import EvaluationResult


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def metrics_table(result: EvaluationResult, query_set: str, metrics: tuple[str, ...] = tuple(METRICS)) -> str:
    """A markdown table for one query set: a row per system, a column per metric, best value in bold."""
    rows = [label for label in result.labels if query_set in result.metrics[label]]
    best = {m: max(result.metrics[label][query_set][m] for label in rows) for m in metrics}
    lines = ["| system | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for label in rows:
        cells = []
        for m in metrics:
            v = result.metrics[label][query_set][m]
            cells.append(f"**{v:.3f}**" if v == best[m] and len(rows) > 1 else f"{v:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def answers_table(result: EvaluationResult, query_set: str) -> str | None:
    """A markdown table of the answer metrics of one query set, a row per served pipeline; None without any."""
    rows = [(label, sets[query_set]) for label, sets in result.answers.items() if query_set in sets]
    if not rows:
        return None
    lines = ["| served pipeline | answered correctly | answerable → not found | unanswerable → not found |",
             "|---|---:|---:|---:|"]
    for label, m in rows:
        unanswerable = ("–" if m["unanswerable"] == 0
                        else f"{m['unanswerable_not_found']:.1%} of {int(m['unanswerable'])}")
        lines.append(f"| {label} | {m['answered_correctly']:.1%} of {int(m['answerable'])} | "
                     f"{m['wrongly_not_found']:.1%} | {unanswerable} |")
    return "\n".join(lines)


def settings_lines(result: EvaluationResult) -> list[str]:
    """The served pipeline's settings, one bullet per configuration object."""
    return [f"- {name}: " + ", ".join(f"{k}={v}" for k, v in values.items())
            for name, values in result.settings.items()]


def terminal_summary(result: EvaluationResult) -> str:
    """The tables printed after ``sitetune evaluate``: one per query set, then the STS check."""
    parts = []
    if result.settings:
        parts.append("## served pipeline settings\n\n" + "\n".join(settings_lines(result)))
    for name, info in result.query_sets.items():
        parts.append(f"## {name} ({info['queries']} queries)\n\n{metrics_table(result, name)}")
        answers = answers_table(result, name)
        if answers:
            parts.append(f"### {name}: answers\n\n{answers}")
    parts.append("## general-English similarity (Spearman)\n\n"
                 + "\n".join(f"- {label}: {v:.3f}" for label, v in result.sts.items()))
    parts.append(f"report: {result.out / 'report.md'}")
    return "\n\n".join(parts) + "\n"


def _plots(result: EvaluationResult, pair_cosines: dict[str, tuple[list[float], list[float]]]) -> list[str]:
    from sitetune.evaluation import plots

    out = result.out
    written: list[str] = []
    for name in result.query_sets:
        rel = f"metrics_{_slug(name)}.png"
        plots.metric_bars({label: result.metrics[label][name] for label in result.labels},
                          f"{name}: metrics per system", out / rel)
        written.append(rel)
    for label, (same, other) in pair_cosines.items():
        rel = f"similarity_{_slug(label)}.png"
        plots.similarity_histogram(same, other, f"{label}: chunk-pair cosine similarity", out / rel)
        written.append(rel)
    models = list(pair_cosines)
    base = "base" if "base" in models else models[0]
    for label in (m for m in models if m != base):
        for name in result.query_sets:
            rel = f"per_query_{_slug(name)}_{_slug(label)}.png"
            plots.per_query_scatter(result.per_query[base][name], result.per_query[label][name],
                                    f"{name}: per-query nDCG@10", base, label, out / rel)
            written.append(rel)
    return written


def report_markdown(result: EvaluationResult) -> str:
    """The text of report.md."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Evaluation of {', '.join(result.labels)}", "",
             f"Corpus `{result.corpus}`: {result.chunks} unique chunks ranked "
             "(a duplicated text is one chunk). "
             f"Written {now}. nDCG gain 2^grade − 1 (metric definitions as in ranx).", "",
             "## Text form each system got", ""]
    lines += [f"- **{label}**: {result.text_forms[label]}" for label in result.labels]
    if result.settings:
        lines += ["", "## Served pipeline settings", "", *settings_lines(result)]
    lines += ["", "## Query sets", ""]
    for name, info in result.query_sets.items():
        lines.append(f"- **{name}**: {info['queries']} scored queries. {info['description']}.")
    for name in result.query_sets:
        lines += ["", f"## {name}", "", metrics_table(result, name), "",
                  f"![{name}](metrics_{_slug(name)}.png)"]
        answers = answers_table(result, name)
        if answers:
            lines += ["", "Answers (the served answerer; \"answered correctly\" = the answer text holds an answer "
                          "string, or its first citation answers the question):", "", answers]
    lines += ["", "## General-English similarity", "",
              "Spearman between cosine and the packaged 0–5 pair scores (data/sts/general_english.tsv); "
              "a drop after tuning means the model forgot general similarity.", "",
              "| model | Spearman | same-page cosine (mean) | other-page cosine (mean) |",
              "|---|---|---|---|"]
    for label, rho in result.sts.items():
        sim = result.similarity[label]
        lines.append(f"| {label} | {rho:.3f} | {sim['same_page_mean']:.3f} | {sim['other_page_mean']:.3f} |")
    lines += ["", "## Plots", ""]
    lines += [f"- [{p}]({p})" for p in result.plots]
    lines += ["", "## Input problems", ""]
    lines += [f"- {p}" for p in result.problems] or ["None: every judged chunk_id is in the corpus."]
    return "\n".join(lines) + "\n"


def write_report(result: EvaluationResult,
                 pair_cosines: dict[str, tuple[list[float], list[float]]]) -> None:
    """Write plots, report.md and metrics.json into ``result.out`` (created if missing)."""
    out = Path(result.out)
    out.mkdir(parents=True, exist_ok=True)
    result.plots = _plots(result, pair_cosines)
    atomic_write_text(out / "report.md", report_markdown(result))
    data = {
        "corpus": result.corpus, "chunks": result.chunks, "labels": result.labels,
        "text_forms": result.text_forms, "query_sets": result.query_sets, "metrics": result.metrics,
        "per_query_ndcg@10": result.per_query, "answers": result.answers, "settings": result.settings,
        "sts_spearman": result.sts, "similarity": result.similarity,
        "problems": result.problems, "plots": result.plots,
    }
    atomic_write_text(out / "metrics.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
