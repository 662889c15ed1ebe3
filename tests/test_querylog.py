"""The query log (privacy, rotation, locking, strict reading) and ``sitetune report`` on logs it wrote."""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.errors import InputError
from sitetune.serve.logreport import markdown_text, normalise_question, question_terms, summarise
from sitetune.serve.querylog import (
    FEEDBACK_KEY_ENV,
    MAX_FEEDBACK_PER_ANSWER,
    MIN_MAX_BYTES,
    MalformedAnswerId,
    QueryLog,
    UnknownAnswerId,
    read_log,
    redact,
    rotated_path,
    section_entry,
)

DEADLINES = section_entry("a1b2c3d4e5f60718", "How to apply", "Deadlines")
FEES = section_entry("0f1e2d3c4b5a6978", "Fees", "Tuition fees")
OTHER = section_entry("1111222233334444", "Student life", "Clubs")
runner = CliRunner()


def _ask(log: QueryLog, question: str, answered: bool, cited: list[dict[str, str]] | None = None) -> str:
    return log.log_question(
        question,
        page=None,
        answered=answered,
        mode="extractive",
        score=0.7 if answered else 0.2,
        top=[DEADLINES, FEES, OTHER, OTHER],
        cited=cited if cited is not None else ([DEADLINES] if answered else []),
    )


def test_redaction_removes_contact_details_and_keeps_facts() -> None:
    question = (
        "I'm anna.k+apply@mail.example.com, phone +45 12 34 56 78, application no. 2025-0012345: is IELTS 6.5 "
        "enough for 2025, and is the fee 12,000 or 15.500 euros?"
    )
    cleaned = redact(question)
    assert "anna" not in cleaned and "mail.example" not in cleaned and "12 34 56" not in cleaned
    assert "0012345" not in cleaned and cleaned.count("[number]") == 2 and "[email]" in cleaned
    for fact in ("IELTS 6.5", "2025,", "12,000", "15.500"):
        assert fact in cleaned, fact


def test_entries_hold_only_what_is_documented(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.jsonl")
    answer_id = _ask(log, "When is the deadline? mail me at x@y.org", True)
    log.log_feedback(answer_id, helpful=False)
    lines = (tmp_path / "q.jsonl").read_text(encoding="utf-8").splitlines()
    question, feedback = (json.loads(line) for line in lines)
    assert set(question) == {"v", "type", "id", "time", "question", "page", "answered", "mode", "score", "top", "cited"}
    assert set(feedback) == {"v", "type", "id", "time", "helpful"}
    # The log keeps the random id; the answer id handed out is that id followed by its signature.
    assert question["id"] == feedback["id"] == answer_id[:16] and len(answer_id) == 32
    assert question["question"] == "When is the deadline? mail me at [email]"
    assert len(question["top"]) == 3 and question["cited"] == [DEADLINES]
    assert question["time"].endswith("Z") and feedback["helpful"] is False
    assert [e["type"] for e in read_log(tmp_path / "q.jsonl")] == ["question", "feedback"]
    with pytest.raises(ValueError, match="not an answer id"):
        log.log_feedback("../../etc", helpful=True)


def test_the_log_is_capped_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    log = QueryLog(path, max_bytes=MIN_MAX_BYTES, keep=2)
    ids = [_ask(log, f"question number {i} " + "padding " * 40, i % 2 == 0)[:16] for i in range(900)]
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert files == ["q.jsonl", "q.jsonl.1", "q.jsonl.2"]
    assert all(p.stat().st_size <= MIN_MAX_BYTES for p in (path, rotated_path(path, 1), rotated_path(path, 2)))
    kept = [e["id"] for e in read_log(path)]
    # The newest entries survive, oldest first, with nothing lost inside the kept window.
    assert kept == ids[-len(kept) :] and 100 < len(kept) < 900


def _write_many(path: str, worker: int) -> None:
    log = QueryLog(path, max_bytes=MIN_MAX_BYTES, keep=50)
    for i in range(250):
        log.log_question(
            f"worker {worker} question {i} " + "x" * 200, page=None, answered=True, mode="extractive", score=0.5,
            top=[], cited=[],
        )


def test_several_processes_share_one_log_without_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(str(path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    entries = list(read_log(path))  # every line of every rotated file parses
    assert len(entries) == 750
    for worker in range(3):
        mine = [e["question"].split()[3] for e in entries if e["question"].startswith(f"worker {worker} ")]
        assert mine == [str(i) for i in range(250)]  # each writer's lines stay in order across rotations


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"type": "question", "id": "0123456789abcdef", "time": "2025-01-31T12:00:00Z"}', "field 'question': missing"),
        ('{"type": "feedback", "id": "0123456789abcdef", "time": "2025-01-31T12:00:00Z", "helpful": "no"}',
         "field 'helpful': expected bool, got str"),
        ('{"type": "feedback", "id": "XYZ", "time": "2025-01-31T12:00:00Z", "helpful": true}', "field 'id'"),
        ('{"type": "feedback", "id": "0123456789abcdef", "time": "yesterday", "helpful": true}', "field 'time'"),
        ('{"type": "click", "id": "0123456789abcdef", "time": "2025-01-31T12:00:00Z"}', "unknown entry type 'click'"),
    ],
)
def test_a_malformed_line_is_named_by_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    _ask(QueryLog(path), "fine question", True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with pytest.raises(InputError, match=message) as info:
        list(read_log(path))
    assert str(path) in str(info.value)
    result = runner.invoke(app, ["report", "--query-log", str(path)])
    assert result.exit_code == 2 and "line 2" in result.output


def test_bad_log_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder does not exist"):
        QueryLog(tmp_path / "missing" / "q.jsonl")
    with pytest.raises(InputError, match="is a folder"):
        QueryLog(tmp_path)
    with pytest.raises(InputError, match="at least"):
        QueryLog(tmp_path / "q.jsonl", max_bytes=100)
    result = runner.invoke(app, ["report", "--query-log", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "no query log here" in result.output


def _sample_log(path: Path) -> dict[str, str]:
    log = QueryLog(path)
    ids = {
        "deadline": _ask(log, "When is the application deadline?", True),
        "deadline2": _ask(log, "when is the application deadline", True),
        "fee": _ask(log, "How much is the tuition fee?", True, cited=[FEES]),
        "housing": _ask(log, "Do you offer student housing?", False),
        "housing2": _ask(log, "do you offer student housing ?", False),
        "parking": _ask(log, "Where can I park my car?", False),
    }
    log.log_feedback(ids["deadline"], helpful=True)
    log.log_feedback(ids["fee"], helpful=True)
    log.log_feedback(ids["fee"], helpful=False)  # changed their mind: the last vote counts
    with open(path, "a", encoding="utf-8") as handle:  # feedback whose question was rotated away: ignored
        handle.write('{"v":1,"type":"feedback","id":"ffffffffffffffff","time":"2025-01-31T12:00:00Z","helpful":false}\n')
    return ids


def test_summary_counts_topics_gaps_and_unhelpful_answers(tmp_path: Path) -> None:
    _sample_log(tmp_path / "q.jsonl")
    report = summarise(read_log(tmp_path / "q.jsonl"))
    assert (report.questions, report.answered, report.not_found) == (6, 3, 3)
    assert (report.helpful, report.unhelpful_count) == (1, 1)
    assert [(t.section_title, t.count) for t in report.topics] == [("Deadlines", 2), ("Tuition fees", 1)]
    assert [(c.question, c.count) for c in report.content_gaps] == [
        ("Do you offer student housing?", 2),
        ("Where can I park my car?", 1),
    ]
    assert report.content_gaps[0].sections == ["How to apply — Deadlines"]  # the closest section
    assert [(c.question, c.sections) for c in report.unhelpful] == [
        ("How much is the tuition fee?", ["Fees — Tuition fees"])
    ]
    assert report.most_asked[0].count == 2 and report.terms[0][1] == 2
    assert sum(d["answered"] + d["not_found"] for d in report.per_day) == 6
    assert normalise_question("  When is the  Deadline?? ") == "when is the deadline"
    assert "tuition fee" in question_terms("How much is the tuition fee?") and "how" not in question_terms("how")


def test_report_command_prints_writes_json_markdown_and_a_plot(tmp_path: Path) -> None:
    _sample_log(tmp_path / "q.jsonl")
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--query-log", str(tmp_path / "q.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 questions" in result.output and "3 not found (50 %)" in result.output
    assert '2 × "Do you offer student housing?"' in result.output
    assert '1 × "How much is the tuition fee?" (cited: Fees — Tuition fees)' in result.output
    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert (out / "report.md").read_text(encoding="utf-8") in result.output

    as_json = runner.invoke(app, ["report", "--query-log", str(tmp_path / "q.jsonl"), "--json", "--top", "1"])
    data = json.loads(as_json.stdout)
    assert data["questions"] == 6 and len(data["content_gaps"]) == 1 and data["terms"][0]["count"] == 2
    assert json.loads((out / "report.json").read_text())["unhelpful_count"] == 1


def test_report_on_an_empty_log(tmp_path: Path) -> None:
    QueryLog(tmp_path / "q.jsonl")
    result = runner.invoke(app, ["report", "--query-log", str(tmp_path / "q.jsonl"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "0 questions" in result.output and (tmp_path / "report.png").stat().st_size > 5_000


# --- Issue 29: feedback only for issued ids, capped per answer; private files; more redaction; the report --------


@pytest.mark.parametrize(
    ("question", "gone", "kept"),
    [
        ("call me on (555) 123-4567 about fees", ["555", "123-4567"], ["call me on [number] about fees"]),
        ("or +1 (555) 123 4567 please", ["555"], ["or [number] please"]),
        ("my number is +45 12 34 56 78", ["12 34"], ["my number is [number]"]),
        ("london +44 (0)20 7946 0958", ["7946"], ["london [number]"]),
        ("student id AB12CD34 and S1234567", ["AB12CD34", "S1234567", "1234567"], ["student id [id] and [id]"]),
        ("application APP-2025-XK7 status", ["XK7", "APP-"], ["application [id] status"]),
        ("ref k3h9pq2z7 lost", ["k3h9pq2z7"], ["ref [id] lost"]),
        # Facts questions are about stay: scores, years, fees, credits, levels, names of things.
        ("IELTS 6.5 for 2025, 120ECTS, B2 level, COVID-19 rules, fee 12,000", [],
         ["IELTS 6.5", "2025,", "120ECTS", "B2", "COVID-19", "12,000"]),
    ],
)
def test_redaction_covers_phone_formats_and_id_like_tokens(question: str, gone: list[str], kept: list[str]) -> None:
    cleaned = redact(question)
    for text in gone:
        assert text not in cleaned, (text, cleaned)
    for text in kept:
        assert text in cleaned, (text, cleaned)


def test_feedback_is_refused_for_ids_the_log_never_issued(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    log = QueryLog(path, key=b"k" * 32)
    issued = _ask(log, "When is the deadline?", True)
    before = path.read_bytes()
    # Invented ids, shaped right (32 hex digits) or as the log stores them (16): none is written.
    for n in range(20):
        with pytest.raises(UnknownAnswerId, match="no answer was given"):
            log.log_feedback(f"{n:032x}", helpful=True)
    with pytest.raises(UnknownAnswerId):
        log.log_feedback(issued[:16] + "0" * 16, helpful=True)  # a real logged id with a forged signature
    for bad in (issued[:16], "not-hex", issued.upper(), issued + "0", ""):
        with pytest.raises(MalformedAnswerId, match="not an answer id"):
            log.log_feedback(bad, helpful=True)
    assert path.read_bytes() == before
    # Another log (another process) with another key does not accept it; one with the same key does.
    with pytest.raises(UnknownAnswerId):
        QueryLog(path, key=b"x" * 32).log_feedback(issued, helpful=True)
    assert QueryLog(path, key=b"k" * 32).log_feedback(issued, helpful=True) is True


def test_workers_share_the_feedback_key_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FEEDBACK_KEY_ENV, "s" * 40)
    first, second = QueryLog(tmp_path / "q.jsonl"), QueryLog(tmp_path / "q.jsonl")  # two workers
    assert second.log_feedback(_ask(first, "When is the deadline?", True), helpful=False) is True
    monkeypatch.setenv(FEEDBACK_KEY_ENV, "short")
    with pytest.raises(InputError, match=f"{FEEDBACK_KEY_ENV} must be at least 32 characters"):
        QueryLog(tmp_path / "q.jsonl")
    monkeypatch.delenv(FEEDBACK_KEY_ENV)
    with pytest.raises(UnknownAnswerId):  # without the variable every process has its own random key
        QueryLog(tmp_path / "q.jsonl").log_feedback(_ask(first, "again", True), helpful=True)


def test_feedback_cannot_flush_the_questions_out_of_the_log(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    log = QueryLog(path, max_bytes=MIN_MAX_BYTES, keep=0)  # no rotated file kept: a flood would erase it
    answer_id = _ask(log, "When is the deadline?", True)
    written = [log.log_feedback(answer_id, helpful=n % 2 == 0) for n in range(3000)]
    assert written == [True] * MAX_FEEDBACK_PER_ANSWER + [False] * (3000 - MAX_FEEDBACK_PER_ANSWER)
    entries = list(read_log(path))
    assert [e["type"] for e in entries] == ["question"] + ["feedback"] * MAX_FEEDBACK_PER_ANSWER
    assert entries[0]["question"] == "When is the deadline?"


def test_log_and_lock_files_are_private(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)  # the common default, under which the first file used to be created 0644
    try:
        path = tmp_path / "q.jsonl"
        log = QueryLog(path, max_bytes=MIN_MAX_BYTES, keep=1)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for i in range(400):
            _ask(log, f"question {i} " + "padding " * 40, True)
    finally:
        os.umask(old)
    for file in (path, rotated_path(path, 1), path.with_name("q.jsonl.lock")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


HOSTILE_QUESTION = "what is $x^$ fee | [click](https://evil.example) <img src=x> **now**\n# Heading"


def test_report_survives_dollar_signs_and_escapes_markdown(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    log = QueryLog(path)
    _ask(log, HOSTILE_QUESTION, False)
    _ask(log, "fees in $ or €: $5$ or $10", True, cited=[section_entry("c", "Fees $ | costs", "*Tuition* $x^$")])
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--query-log", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output  # mathtext would have raised ParseSyntaxException
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
    text = (out / "report.md").read_text(encoding="utf-8")
    unescaped = re.sub(r"\\.", "", text)  # what is left once every escaped character is dropped
    for raw in ("[click](", "<img", "**", "|"):
        assert raw not in unescaped, raw
    assert "\n# Heading" not in text and "\n\\# Heading" not in text  # the line break is gone too
    assert r"\[click\](https://evil.example) \<img src=x\> \*\*now\*\* \# Heading" in text
    assert r"what is $x^$ fee \| " in text and r"Fees $ \| costs — \*Tuition\* $x^$" in text
    assert markdown_text("a_b `c` ~d~ & !e") == r"a\_b \`c\` \~d\~ \& \!e"
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png"]


def test_a_failed_plot_leaves_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from sitetune.serve.logreport import plot

    out = tmp_path / "report.png"
    _sample_log(tmp_path / "q.jsonl")
    report = summarise(read_log(tmp_path / "q.jsonl"))
    plot(report, out)
    previous = out.read_bytes()

    def half_written(self: Figure, fname: object, **kwargs: object) -> None:
        Path(str(fname)).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        plot(report, out)
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("q.jsonl")) == ["report.png"]
