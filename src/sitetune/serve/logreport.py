"""What the query log tells the site team: most asked topics, content gaps, unhelpful answers, a plot.

:func:`summarise` reads the entries of :func:`sitetune.serve.querylog.read_log`; ``sitetune report``
prints the summary (or ``--json``) and with ``--out DIR`` writes ``report.json``, ``report.md`` and
``report.png``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from sitetune.atomic import atomic_path, atomic_write_text
from sitetune.plotting import pyplot

# Words that say nothing about a question's topic (question words, fillers, "programme"-like words
# people type on any site's search box are kept: they are what the team wants to see grouped).
_FILLER = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between
    both but by can could did do does doing done for from further get gets getting got had has have having
    he her here hers him his how i if in into is it its itself just know let like me might more most must my
    need needs no nor not now of off on once only or other our out over own please same she should so some
    such tell than that the their them then there these they this those through to too under until up us
    very want was we were what when where which while who whom why will with would you your yours""".split()  # noqa: SIM905
)
_TERM = re.compile(r"[^\W_][\w'.-]*[^\W_]|[^\W_]", re.UNICODE)
# Characters that mean something to Markdown (or a GitHub table) inside a line: emphasis, code, links,
# images, raw HTML, entities, headings, strike-through and table cells.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!~&])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: on one line, every Markdown special character backslash-escaped.

    Questions and section names come from the public and from crawled pages, so the report must not let them
    add links, images, HTML, headings or table cells to ``report.md``.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def normalise_question(question: str) -> str:
    """Lower-cased, whitespace collapsed, trailing punctuation dropped: how repeated questions are grouped."""
    return " ".join(question.lower().split()).rstrip(" ?!.")


def question_terms(question: str) -> list[str]:
    """The question's topic words (lower-cased, filler words dropped; bigrams of them too)."""
    words = [w for w in _TERM.findall(question.lower()) if w not in _FILLER and not w.isdigit() and len(w) > 1]
    return words + [f"{a} {b}" for a, b in pairwise(words)]


@dataclass
class Counted:
    """A question (as first typed) and how often it, or one like it, was asked."""

    question: str
    count: int
    sections: list[str] = field(default_factory=list)


@dataclass
class Topic:
    """A section that answered questions: how many, and a few of them."""

    page_name: str
    section_title: str
    count: int
    examples: list[str]


@dataclass
class LogReport:
    """The summary of a query log.

    Attributes:
        questions: Questions asked.
        answered: Of them, answered from the pages.
        not_found: Of them, answered "not found".
        helpful: Answers marked helpful (the last vote per answer counts).
        unhelpful_count: Answers marked unhelpful.
        first: Time of the first entry (UTC), or None for an empty log.
        last: Time of the last entry.
        topics: Sections that answered most questions (by the answer's first citation).
        terms: Most frequent topic words and word pairs in the questions.
        most_asked: Most asked questions (grouped by :func:`normalise_question`).
        content_gaps: Questions answered "not found", most asked first, with the closest sections.
        unhelpful: Answers marked unhelpful, with the sections they cited.
        per_day: Questions per UTC day: ``{"day", "answered", "not_found"}``.
    """

    questions: int = 0
    answered: int = 0
    not_found: int = 0
    helpful: int = 0
    unhelpful_count: int = 0
    first: str | None = None
    last: str | None = None
    topics: list[Topic] = field(default_factory=list)
    terms: list[tuple[str, int]] = field(default_factory=list)
    most_asked: list[Counted] = field(default_factory=list)
    content_gaps: list[Counted] = field(default_factory=list)
    unhelpful: list[Counted] = field(default_factory=list)
    per_day: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        data = asdict(self)
        data["terms"] = [{"term": t, "count": c} for t, c in self.terms]
        return data


def _section_name(section: dict[str, str]) -> str:
    return f"{section['page_name']} — {section['section_title']}"


def _counted(groups: dict[str, list[dict[str, Any]]], key: str, top: int) -> list[Counted]:
    ranked = sorted(groups.values(), key=lambda g: (-len(g), normalise_question(g[0]["question"])))
    out = []
    for group in ranked[:top]:
        sections = Counter(_section_name(s) for e in group for s in e[key][:1])
        out.append(Counted(group[0]["question"], len(group), [name for name, _ in sections.most_common(3)]))
    return out


def summarise(entries: Iterable[dict[str, Any]], top: int = 10) -> LogReport:
    """Summarise checked log entries (oldest first).

    Args:
        entries: From :func:`sitetune.serve.querylog.read_log`.
        top: Rows in each ranked list.
    """
    questions: dict[str, dict[str, Any]] = {}
    votes: dict[str, bool] = {}
    times: list[str] = []
    for entry in entries:
        times.append(entry["time"])
        if entry["type"] == "question":
            questions[entry["id"]] = entry
        else:
            votes[entry["id"]] = entry["helpful"]  # a changed vote: the last one counts
    report = LogReport(questions=len(questions), first=min(times, default=None), last=max(times, default=None))

    asked: dict[str, list[dict[str, Any]]] = defaultdict(list)
    gaps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    topics: dict[tuple[str, str], list[str]] = defaultdict(list)
    terms: Counter[str] = Counter()
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in questions.values():
        key = normalise_question(entry["question"])
        asked[key].append(entry)
        terms.update(set(question_terms(entry["question"])))
        days[entry["time"][:10]]["answered" if entry["answered"] else "not_found"] += 1
        if entry["answered"]:
            report.answered += 1
            if entry["cited"]:
                first = entry["cited"][0]
                topics[(first["page_name"], first["section_title"])].append(entry["question"])
        else:
            report.not_found += 1
            gaps[key].append(entry)

    ranked_topics = sorted(topics.items(), key=lambda item: (-len(item[1]), item[0]))
    report.topics = [
        Topic(page, section, len(qs), list(dict.fromkeys(qs))[:3]) for (page, section), qs in ranked_topics[:top]
    ]
    # A word pair is listed only when it was asked at least twice (once says nothing a single word doesn't).
    ranked_terms = sorted(terms.items(), key=lambda tc: (-tc[1], tc[0]))
    report.terms = [(t, c) for t, c in ranked_terms if c > 1 or " " not in t][:top]
    report.most_asked = _counted(asked, "cited", top)
    report.content_gaps = _counted(gaps, "top", top)

    bad: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for answer_id, helpful in votes.items():
        voted = questions.get(answer_id)
        if voted is None:
            continue  # feedback for an answer whose question was rotated out (or never logged)
        if helpful:
            report.helpful += 1
        else:
            report.unhelpful_count += 1
            bad[normalise_question(voted["question"])].append(voted)
    report.unhelpful = _counted(bad, "cited", top)
    report.per_day = [
        {"day": day, "answered": c["answered"], "not_found": c["not_found"]} for day, c in sorted(days.items())
    ]
    return report


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "n/a"


def to_text(report: LogReport, log_path: str) -> str:
    """The summary as Markdown (printed by ``sitetune report`` and written as report.md)."""
    lines = [
        f"# Query log report: {log_path}",
        "",
        f"{report.questions} questions from {report.first or '-'} to {report.last or '-'} (UTC): "
        f"{report.answered} answered, {report.not_found} not found ({_share(report.not_found, report.questions)}). "
        f"Feedback: {report.helpful} helpful, {report.unhelpful_count} unhelpful.",
    ]

    def section(title: str, rows: list[str], empty: str) -> None:
        lines.extend(["", f"## {title}", ""])
        lines.extend(rows or [empty])

    md = markdown_text  # everything from the log is escaped: it was typed by the public or crawled
    section(
        "Most asked topics (the section that answered)",
        [
            f"- {t.count} × {md(t.page_name)} — {md(t.section_title)} (e.g. \"{md(t.examples[0])}\")"
            for t in report.topics
        ],
        "No answered questions yet.",
    )
    section("Most frequent words in questions", [f"- {c} × {md(t)}" for t, c in report.terms], "No questions yet.")
    section(
        "Most asked questions",
        [f"- {c.count} × \"{md(c.question)}\"" for c in report.most_asked],
        "No questions yet.",
    )
    section(
        "Content gaps: questions answered \"not found\"",
        [
            f"- {c.count} × \"{md(c.question)}\"" + (f" (closest: {md(c.sections[0])})" if c.sections else "")
            for c in report.content_gaps
        ],
        "None: every question found an answer.",
    )
    section(
        "Answers marked unhelpful",
        [
            f"- {c.count} × \"{md(c.question)}\"" + (f" (cited: {md(c.sections[0])})" if c.sections else "")
            for c in report.unhelpful
        ],
        "None.",
    )
    return "\n".join(lines) + "\n"


def write_report(report: LogReport, log_path: str, out: Path) -> list[Path]:
    """Write ``report.md`` (the text summary), ``report.json`` and the plot ``report.png`` into ``out``.

    Returns:
        The three files, in that order.
    """
    import json

    out.mkdir(parents=True, exist_ok=True)
    text_file, json_file = out / "report.md", out / "report.json"
    atomic_write_text(text_file, to_text(report, log_path))
    atomic_write_text(json_file, json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    return [text_file, json_file, plot(report, out / "report.png")]


def plot(report: LogReport, out: Path) -> Path:
    """Draw questions per day, the top topics, the top content gaps and the feedback to ``out`` (PNG).

    Labels are drawn as plain text: matplotlib's mathtext is off (a question like "is $x^$ the fee" would
    otherwise be parsed as a formula, and fail). The file is written under a temporary name and renamed, so
    a failed or interrupted plot leaves the previous ``out`` as it was.
    """
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        return _plot(report, out)


def _plot(report: LogReport, out: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(14, 8.5), gridspec_kw={"width_ratios": [1, 1.4]})
    (days_ax, topics_ax), (votes_ax, gaps_ax) = axes
    labels = [d["day"] for d in report.per_day]
    answered = [d["answered"] for d in report.per_day]
    missing = [d["not_found"] for d in report.per_day]
    days_ax.bar(labels, answered, width=0.6, color="#2c5a9e", label="answered")
    days_ax.bar(labels, missing, width=0.6, bottom=answered, color="#d08c2a", label="not found")
    days_ax.set_title("Questions per day (UTC)")
    days_ax.legend(loc="lower left", bbox_to_anchor=(0, 1.06), ncol=2, frameon=False, fontsize=9)
    days_ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    days_ax.set_xlim(-0.8, max(len(labels), 2) - 0.2)
    if not report.questions:
        days_ax.text(0.5, 0.5, "no questions yet", ha="center", va="center", transform=days_ax.transAxes)

    _ranked_bars(
        topics_ax,
        [f"{t.section_title} ({t.page_name})" for t in report.topics],
        [t.count for t in report.topics],
        "#2c5a9e",
        "Most asked topics (the section that answered)",
    )
    _ranked_bars(
        gaps_ax,
        [c.question for c in report.content_gaps],
        [c.count for c in report.content_gaps],
        "#d08c2a",
        'Content gaps: questions answered "not found"',
    )
    votes_ax.bar(
        ["helpful", "unhelpful"], [report.helpful, report.unhelpful_count], width=0.5, color=["#3a8a4f", "#b3261e"]
    )
    votes_ax.set_title("Feedback on answers")
    for ax in (days_ax, votes_ax):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes.flat:
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(
        f"{report.questions} questions, {report.not_found} not found "
        f"({_share(report.not_found, report.questions)}), {report.unhelpful_count} "
        f"{'answer' if report.unhelpful_count == 1 else 'answers'} marked unhelpful",
        fontsize=13,
    )
    try:
        fig.tight_layout()
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return out


def _ranked_bars(ax: Any, names: list[str], counts: list[int], color: str, title: str, rows: int = 8) -> None:
    """Horizontal bars, largest on top."""
    from matplotlib.ticker import MaxNLocator

    names, counts = names[:rows][::-1], counts[:rows][::-1]
    ax.barh([_short(n) for n in names], counts, height=0.6, color=color)
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not names:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])


def _short(text: str, limit: int = 56) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
