"""Check a question file's answer strings against a corpus: which chunks each one matches, and what is wrong.

A chunk matches an answer string when its text contains the string, both whitespace-collapsed and
lower-cased (the rule the evaluation loader uses to grade a chunk 2, "answers it"). An answer given as a
place in a chunk's text (``{"chunk", "at", "chars"}``, how the shipped sets keep answers without the site's
words) is read from the corpus first, then matched the same way. The file fails when
an answer string matches no chunk, matches more than ``--max-matches`` unique chunks (too generic to
say which chunk answers), when a question marked unanswerable has answers, when an answerable one has
neither answers nor judged chunks, when a judged chunk_id is not in the corpus, or when ids repeat.

Usage:
    python benchmarks/check_questions.py src/sitetune/data/questions/stirling_questions.json \
        --corpus runs/sites/stirling.jsonl [--json]

Exit codes: 0 the file is sound; 1 it has problems (listed); 2 the file or corpus cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sitetune.corpus import Corpus
from sitetune.errors import SitetuneError
from sitetune.evaluation.querysets import AnswerSpan, answer_words, normalise, parse_answer

#: An answer string matching more unique chunks than this is too generic to tell which chunk answers.
MAX_MATCHES = 8


@dataclass
class AnswerMatch:
    """One answer string and the chunks whose text contains it."""

    answer: str
    chunks: list[dict[str, str]]  # chunk_id, page, section


@dataclass
class QueryCheck:
    """One query as checked."""

    id: str
    text: str
    kind: str
    answerable: bool
    answers: list[AnswerMatch] = field(default_factory=list)


@dataclass
class CheckResult:
    """What :func:`check_questions` found.

    Attributes:
        queries: Every query in file order, with the chunks each answer string matches.
        problems: One line per problem, each naming the query id; empty when the file is sound.
        kinds: Queries per kind ("(none)" for a query without one).
    """

    queries: list[QueryCheck]
    problems: list[str]
    kinds: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems


class QueryFileError(ValueError):
    """The query file cannot be read or is not ``{"queries": [...]}`` of objects."""


def _read_queries(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QueryFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise QueryFileError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
        raise QueryFileError(f'{path}: expected an object {{"queries": [...]}}')
    problems = []
    items = []
    for index, item in enumerate(data["queries"]):
        if not isinstance(item, dict):
            problems.append(f"queries[{index}]: not an object")
            continue
        items.append(item)
    return items, problems


def check_questions(path: Path, corpus: Corpus, *, max_matches: int = MAX_MATCHES) -> CheckResult:
    """Match every answer string of the query file ``path`` against ``corpus`` and list the problems.

    Args:
        path: A query file in the external format (``{"queries": [{"id", "text", "kind", "answers",
            "answerable", "relevant"}]}``).
        corpus: The corpus the answers must be found in.
        max_matches: Most unique chunks one answer string may match.

    Returns:
        The per-query matches, the problems (each naming its query id) and the per-kind counts.

    Raises:
        QueryFileError: The file cannot be read, is not JSON, or has no ``queries`` list.
    """
    items, problems = _read_queries(Path(path))
    texts = {c.chunk_id: normalise(c.text) for c in corpus.chunks}
    by_id = corpus.by_id()
    checks: list[QueryCheck] = []
    seen: Counter[str] = Counter()
    for index, item in enumerate(items):
        qid = item.get("id")
        if not isinstance(qid, str) or not qid.strip():
            problems.append(f"queries[{index}]: needs a non-empty string id")
            continue
        seen[qid] += 1
        if seen[qid] == 2:
            problems.append(f"{qid}: id appears more than once")
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{qid}: needs a non-empty string text")
            text = ""
        kind = item.get("kind", "")
        answerable = item.get("answerable", True)
        answers = item.get("answers", [])
        relevant = item.get("relevant", {})
        if not isinstance(kind, str):
            problems.append(f"{qid}: kind must be a string")
            kind = ""
        if not isinstance(answerable, bool):
            problems.append(f"{qid}: answerable must be true or false")
            answerable = True
        parsed = [parse_answer(a) for a in answers] if isinstance(answers, list) else [None]
        if any(a is None for a in parsed):
            problems.append(f"{qid}: answers must be a list of non-empty strings or chunk places")
            parsed = []
        answers = [a for a in parsed if a is not None]
        if not isinstance(relevant, dict):
            problems.append(f"{qid}: relevant must be an object of chunk_id: grade")
            relevant = {}
        if kind == "unanswerable" and answerable:
            problems.append(f"{qid}: kind 'unanswerable' needs \"answerable\": false")
        if not answerable and (answers or relevant):
            problems.append(f"{qid}: marked unanswerable but has answers or relevant chunks")
        if answerable and not answers and not relevant:
            problems.append(f"{qid}: answerable but has neither answers nor relevant chunks")
        unknown = sorted(str(cid) for cid in relevant if cid not in by_id)
        if unknown:
            problems.append(f"{qid}: relevant chunk_ids not in the corpus: {unknown}")
        check = QueryCheck(qid, text, kind, answerable)
        for answer in answers:
            needle = answer_words(answer, texts)
            shown = answer.label() if isinstance(answer, AnswerSpan) else answer
            matched = [cid for cid, chunk_text in texts.items() if needle and needle in chunk_text]
            check.answers.append(AnswerMatch(shown, [
                {"chunk_id": cid, "page": by_id[cid].page_name, "section": by_id[cid].section_title}
                for cid in matched]))
            if not matched:
                problems.append(f"{qid}: answer string {shown!r} matches no chunk")
            elif len(matched) > max_matches:
                problems.append(f"{qid}: answer string {shown!r} matches {len(matched)} chunks "
                                f"(more than {max_matches}: too generic)")
        checks.append(check)
    kinds = Counter(c.kind or "(none)" for c in checks)
    return CheckResult(checks, problems, dict(sorted(kinds.items())))


def _print_report(result: CheckResult) -> None:
    for q in result.queries:
        status = "" if q.answerable else "  (unanswerable)"
        print(f"{q.id} [{q.kind or '-'}] {q.text}{status}")
        for match in q.answers:
            print(f"    {match.answer!r}: {len(match.chunks)} chunk(s)")
            for chunk in match.chunks:
                print(f"        {chunk['chunk_id']}  {chunk['page']} | {chunk['section']}")
    print()
    answerable = Counter(q.kind or "(none)" for q in result.queries if q.answerable)
    print("kind            queries  answerable")
    for kind, count in result.kinds.items():
        print(f"{kind:<15} {count:>7}  {answerable.get(kind, 0):>10}")
    print(f"{'total':<15} {len(result.queries):>7}  {sum(answerable.values()):>10}")
    if result.problems:
        print(f"\n{len(result.problems)} problem(s):")
        for line in result.problems:
            print(f"  {line}")
    else:
        print("\nno problems")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query_file", type=Path, metavar="QUERY_FILE")
    parser.add_argument("--corpus", required=True, type=Path, help="Corpus file (.csv, .jsonl or .parquet)")
    parser.add_argument("--max-matches", type=int, default=MAX_MATCHES,
                        help=f"Most unique chunks one answer string may match (default {MAX_MATCHES})")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON")
    args = parser.parse_args(argv)
    try:
        corpus = Corpus.load(args.corpus)
        result = check_questions(args.query_file, corpus, max_matches=args.max_matches)
    except (QueryFileError, SitetuneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": result.ok, "problems": result.problems, "kinds": result.kinds,
                          "queries": [asdict(q) for q in result.queries]}, indent=1, ensure_ascii=False))
    else:
        _print_report(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
