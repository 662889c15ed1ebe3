"""Query sets, query-file validation, and ``sitetune evaluate`` end to end on a slice of the CBS corpus."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sitetune.corpus import Corpus
from sitetune.errors import InputError, SitetuneError
from sitetune.evaluation.querysets import (
    load_query_file,
    packaged_query_file,
    same_page_queries,
    title_queries,
)
from sitetune.evaluation.sts import load_pairs, spearman
from sitetune.recordio import write_records
from sitetune.records import section_type_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def slice_corpus(cbs_corpus: Corpus) -> Corpus:
    """The first ten pages of the CBS corpus: enough structure, fast to encode."""
    pages = set(cbs_corpus.pages[:10])
    return Corpus.from_records(r for r in cbs_corpus.records if r.page_name in pages)


@pytest.fixture(scope="module")
def slice_csv(slice_corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "slice.csv"
    write_records(slice_corpus.records, path)
    return path


def _write_queries(path: Path, queries: object) -> Path:
    path.write_text(json.dumps({"queries": queries}), encoding="utf-8")
    return path


# ---------------------------------------------------------------- query sets


def test_title_queries_from_heldout_group_parts_of_a_section(slice_corpus: Corpus) -> None:
    held = [r for r in slice_corpus.records if r.page_name == "Entry requirements"]
    qs = title_queries(slice_corpus, held)
    texts = {q.text: q for q in qs.queries}
    # "Admission process - general principles" is split into parts: one query, every part relevant.
    section = "Admission process - general principles"
    parts = {r.chunk_id for r in held if section_type_of(r.section_title) == section}
    assert len(parts) > 1
    assert texts[f"Entry requirements: {section}"].relevant == dict.fromkeys(parts, 1)
    assert all(q.text.startswith("Entry requirements: ") for q in qs.queries)


def test_title_queries_seeded_page_split_is_reproducible(slice_corpus: Corpus) -> None:
    a = title_queries(slice_corpus, seed=1, fraction=0.3)
    b = title_queries(slice_corpus, seed=1, fraction=0.3)
    assert [q.text for q in a.queries] == [q.text for q in b.queries]
    pages = {q.text.split(": ")[0] for q in a.queries}
    assert 1 <= len(pages) <= 3


def test_same_page_queries_exclude_the_query_chunk(slice_corpus: Corpus) -> None:
    qs = same_page_queries(slice_corpus, n=15, seed=3)
    assert len(qs.queries) == 15
    by_id = slice_corpus.by_id()
    for q in qs.queries:
        (own,) = q.exclude
        assert own not in q.relevant and q.relevant
        page = by_id[own].page_name
        assert all(page in by_id[c].pages for c in q.relevant)


# ---------------------------------------------------------------- external files


def test_unknown_ids_are_listed_and_all_absent_query_is_reported(
    slice_corpus: Corpus, tmp_path: Path
) -> None:
    known = slice_corpus.chunks[0].chunk_id
    path = _write_queries(tmp_path / "mine.json", [
        {"id": "ok", "text": "entry requirements", "relevant": {known: 2, "0000000000000000": 1}},
        {"id": "gone", "text": "deadline", "relevant": {"ffffffffffffffff": 1}},
    ])
    qs = load_query_file(path, slice_corpus)
    assert qs.name == "mine"
    assert [q.id for q in qs.queries] == ["ok"]
    assert qs.queries[0].relevant == {known: 2}
    assert qs.unknown_ids == {"ok": ["0000000000000000"], "gone": ["ffffffffffffffff"]}
    assert qs.unjudgeable == ["gone"]
    assert any("'gone'" in line and "not scored" in line for line in qs.problems())


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ([{"id": "q1", "text": "", "relevant": {"a": 1}}], "field 'text'.*query 'q1'"),
        ([{"id": "q2", "text": "x", "relevant": {"a": 3}}], "q2.*grade"),
        ([{"id": "q3", "text": "x", "relevant": {}}], "field 'relevant'"),
        ([{"text": "x", "relevant": {"a": 1}}], "field 'id'"),
        ([{"id": "d", "text": "x", "relevant": {"a": 1}}, {"id": "d", "text": "y", "relevant": {"a": 1}}],
         "appears twice"),
    ],
)
def test_malformed_query_files_name_query_and_field(
    slice_corpus: Corpus, tmp_path: Path, queries: object, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        load_query_file(_write_queries(tmp_path / "bad.json", queries), slice_corpus)


def test_invalid_json_and_wrong_corpus_are_errors(slice_corpus: Corpus, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"queries": [\n  {"id": }\n]}', encoding="utf-8")
    with pytest.raises(InputError, match="line 2"):
        load_query_file(broken, slice_corpus)
    foreign = _write_queries(tmp_path / "foreign.json", [{"id": "a", "text": "x", "relevant": {"1234": 1}}])
    with pytest.raises(SitetuneError, match="right corpus"):
        load_query_file(foreign, slice_corpus)


def test_packaged_question_set_is_judged_against_the_cbs_corpus(cbs_corpus: Corpus) -> None:
    data = json.loads(packaged_query_file("cbs").read_text(encoding="utf-8"))
    qs = load_query_file("cbs", cbs_corpus)
    assert len(qs.queries) == len(data["queries"]) >= 40
    assert not qs.unknown_ids and not qs.unjudgeable
    assert len({q.id for q in qs.queries}) == len(qs.queries)
    assert all(2 in q.relevant.values() for q in qs.queries), "every question has a chunk that answers it"


def test_general_english_pairs_and_spearman() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 50
    scores = [p.score for p in pairs]
    assert min(scores) <= 0.5 and max(scores) >= 4.5
    assert spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert spearman([3.0, 2.0, 1.0], [10.0, 20.0, 30.0]) == pytest.approx(-1.0)


# ---------------------------------------------------------------- the command


def _run(*args: str):  # type: ignore[no-untyped-def]
    from sitetune.cli.main import app

    return CliRunner().invoke(app, ["evaluate", *args])


@dataclass
class CliReport:
    """One ``sitetune evaluate --json`` run on the slice and what it was given."""

    result: Any  # click's Result: exit code, stdout, stderr
    student: Path  # a query file with an unknown chunk id
    served: Path  # a query file with answer strings and an unanswerable question
    held: list[Any]  # the held-out page's records (--split-from)
    out: Path  # the report folder


@pytest.fixture(scope="module")
def cli_report(slice_corpus: Corpus, slice_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> CliReport:
    """The command once on the slice (encoding it and building its store cost most of this file's time)."""
    d = tmp_path_factory.mktemp("evaluate-cli")
    chunks = slice_corpus.chunks
    student = _write_queries(d / "student.json", [
        {"id": "s1", "text": chunks[3].section_title, "relevant": {chunks[3].chunk_id: 2}},
        {"id": "s2", "text": "application deadline",
         "relevant": {chunks[5].chunk_id: 1, "abcdefabcdefabcd": 1}},
    ])
    answerable = [
        {"id": f"q{i}", "text": text, "answers": [" ".join(chunks[n].text.split()[:6])]}
        for i, (text, n) in enumerate([("When is the application deadline?", 5),
                                       ("what are the english requirements", 9),
                                       ("career opportunities", 14),
                                       ("tuition fee", 20)])
    ]
    served = _write_queries(d / "served.json", [
        *answerable, {"id": "off", "text": "what is the recipe for a sourdough loaf", "answerable": False}])
    pairs_dir = d / "pairs"
    pairs_dir.mkdir()
    held = [r for r in slice_corpus.records if r.page_name == slice_corpus.pages[1]]
    write_records(held, pairs_dir / "heldout.jsonl")
    (pairs_dir / "pairs_info.json").write_text('{"recipe": "card", "split": "pages"}', encoding="utf-8")
    out = d / "report"
    result = _run("--corpus", str(slice_csv), "--model", "base", "--queries", str(student), "--queries", str(served),
                  "--split-from", str(pairs_dir), "--same-page", "20", "--out", str(out), "--json")
    return CliReport(result, student, served, held, out)


def test_evaluate_cli_on_a_slice(slice_corpus: Corpus, cli_report: CliReport) -> None:
    result, held, out = cli_report.result, cli_report.held, cli_report.out
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["base", "bm25", "base+search"]
    answer_keys = {"answered_correctly", "wrongly_not_found", "unanswerable_not_found", "answerable",
                   "unanswerable"}
    for label, sets in summary.items():
        assert set(sets) == {"titles", "same_page", "student", "served"}
        for name, values in sets.items():
            # The served row of an external file also carries the answer metrics.
            extra = answer_keys if label == "base+search" and name in ("student", "served") else set()
            assert set(values) == {"ndcg@10", "answers@1", "mrr@10", "recall@10"} | extra
            ranking = {k: v for k, v in values.items() if k not in answer_keys}
            assert all(0.0 <= v <= 1.0 for v in ranking.values())
    assert summary["base+search"]["student"]["answerable"] == 2
    assert summary["base+search"]["student"]["unanswerable_not_found"] is None  # no unanswerable question: null
    assert "abcdefabcdefabcd" in result.stderr and "s2" in result.stderr

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["chunks"] == len(slice_corpus.chunks)
    sections = {section_type_of(r.section_title) for r in held if r.section_title.strip()}
    assert metrics["query_sets"]["titles"]["queries"] == len(sections)
    assert metrics["query_sets"]["student"]["unknown_ids"] == {"s2": ["abcdefabcdefabcd"]}
    assert -1.0 <= metrics["sts_spearman"]["base"] <= 1.0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "documents '{text}'" in report and "abcdefabcdefabcd" in report and "## student" in report
    assert "rrf_k=" in report and "min_score=" in report  # the served settings are printed
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {"metrics_titles.png", "metrics_same_page.png", "metrics_student.png",
                                      "similarity_base.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC


def test_evaluate_without_hybrid_and_with_a_copy_of_base_as_tuned(
    cbs_corpus: Corpus, tmp_path: Path, base_encoder: Any
) -> None:
    import shutil

    from sitetune.encode.export import export_dir
    from sitetune.evaluation import evaluate
    from sitetune.models import base_model_path

    small = tmp_path / "small.csv"  # four pages: this test encodes the corpus twice
    pages = set(cbs_corpus.pages[3:7])
    write_records([r for r in cbs_corpus.records if r.page_name in pages], small)
    tuned = tmp_path / "my-tuned"
    shutil.copytree(base_model_path(), tuned)
    # The same weights, so base's OpenVINO export (made when the session's base encoder loaded) is valid
    # for the copy too (an export is checked against the weights' hash): the copy is not exported again.
    shutil.copytree(export_dir(base_encoder.model_path, "openvino"), export_dir(tuned, "openvino"))
    result = evaluate(small, ["base", str(tuned)], [], None, tmp_path / "out", hybrid=False,
                      same_page_n=10, progress=False)
    assert result.labels == ["base", "my-tuned", "bm25"]
    # The same weights rank identically: a tuned row equal to base is what the wiring must show.
    for name, values in result.metrics["base"].items():
        assert result.metrics["my-tuned"][name] == pytest.approx(values)
    assert (tmp_path / "out" / "per_query_titles_my-tuned.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corpus", "/nonexistent/corpus.csv"], "corpus file"),
        (["--model", "/nonexistent/model"], "/nonexistent/model"),
        (["--split-from", "."], "heldout.jsonl"),
        (["--queries", "/nonexistent/q.json"], "query file not found"),
    ],
)
def test_bad_input_is_a_clear_error(slice_csv: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["--corpus", str(slice_csv), "--out", str(tmp_path / "o"), *extra]
    result = _run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- answer strings and the served path


def test_answer_strings_judge_every_chunk_that_contains_them(slice_corpus: Corpus, tmp_path: Path) -> None:
    chunk = slice_corpus.chunks[4]
    words = chunk.text.split()
    answer = "  ".join(words[2:8]).upper()  # spacing and case do not matter
    needle = " ".join(words[2:8]).lower()
    holders = {c.chunk_id for c in slice_corpus.chunks if needle in " ".join(c.text.split()).lower()}
    path = _write_queries(tmp_path / "answers.json", [
        {"id": "a1", "text": "a question", "answers": [answer, "a string that is nowhere in the corpus"],
         "kind": "paraphrase"},
        {"id": "u1", "text": "something the site does not say", "answerable": False, "kind": "unanswerable"},
    ])
    qs = load_query_file(path, slice_corpus)
    assert [q.id for q in qs.queries] == ["a1"]
    assert qs.queries[0].relevant == dict.fromkeys(holders, 2) and chunk.chunk_id in holders
    assert qs.queries[0].kind == "paraphrase" and qs.queries[0].answers[0] == answer
    assert [q.id for q in qs.unanswerable] == ["u1"] and not qs.unanswerable[0].answerable
    assert qs.unmatched_answers == {"a1": ["a string that is nowhere in the corpus"]}
    assert any("a1" in line and "nowhere" in line for line in qs.problems())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"id": "x", "text": "t", "answerable": False, "answers": ["y"]}, "x.*answerable: false"),
        ({"id": "x", "text": "t", "answerable": "no"}, "field 'answerable'"),
        ({"id": "x", "text": "t", "answers": "one string"}, "field 'answers'"),
        ({"id": "x", "text": "t", "answers": [""]}, "field 'answers'"),
        ({"id": "x", "text": "t"}, "field 'relevant'"),
    ],
)
def test_malformed_answer_fields_name_the_query_and_field(
    slice_corpus: Corpus, tmp_path: Path, query: object, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        load_query_file(_write_queries(tmp_path / "bad.json", [query]), slice_corpus)


def test_evaluate_served_row_is_what_sitetune_search_returns(cli_report: CliReport) -> None:
    from sitetune.cli.main import app
    from sitetune.config import SearchConfig
    from sitetune.evaluation.querysets import load_query_file
    from sitetune.evaluation.served import DEPTH
    from sitetune.search import Searcher

    assert cli_report.result.exit_code == 0, cli_report.result.output
    store = cli_report.out / "stores" / "base"
    metrics = json.loads((cli_report.out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["settings"]["search"]["rrf_k"] == SearchConfig().rrf_k  # the served defaults are recorded

    with Searcher.open(store) as searcher:
        qs = load_query_file(cli_report.served, Corpus.from_records(c.record() for c in searcher.reader.chunks))
        from sitetune.evaluation.served import system_rankings

        ranked = system_rankings(searcher, qs.queries)
    for q in qs.queries:
        cli = CliRunner().invoke(app, ["search", q.text, "--store", str(store), "-k", "10", "--json"])
        assert cli.exit_code == 0, cli.output
        ids = [hit["chunk_id"] for hit in json.loads(cli.stdout)["results"]]
        assert ids == ranked.served[q.id][:10], q.text
        assert len(ranked.served[q.id]) <= DEPTH
    # The served and dense rows differ somewhere: the served row is not the dense ranking relabelled.
    assert any(ranked.served[q.id][:10] != ranked.dense[q.id][:10] for q in qs.queries)


def test_answer_metrics_count_unanswerable_and_not_found(cli_report: CliReport) -> None:
    assert cli_report.result.exit_code == 0, cli_report.result.output
    m = json.loads(cli_report.result.stdout)["base+search"]["served"]
    assert m["answerable"] == 4 and m["unanswerable"] == 1
    assert m["unanswerable_not_found"] in (0.0, 1.0)  # one unanswerable question: all or nothing
    for key in ("answered_correctly", "wrongly_not_found"):
        assert m[key] in (0.0, 0.25, 0.5, 0.75, 1.0)
