"""Query sets: queries with graded relevant chunk_ids, built from the corpus or read from a file.

Three kinds:

- **titles**: for held-out pages or rows, the query "<page_name>: <section_title>" with that section's
  chunk(s) relevant (grade 1).
- **same_page**: a chunk's text as the query, the other chunks of its page relevant (grade 1); the query
  chunk itself is excluded from the ranking. This is the property the card recipe's loss optimises.
- **external**: a JSON file ``{"queries": [{"id", "text", "relevant": {chunk_id: 1|2}, "answers": [...],
  "answerable": true|false, "kind": "..."}]}``. ``answers`` are verbatim strings, or places in a chunk's
  text (``{"chunk": chunk_id, "at": offset, "chars": length}``, :class:`AnswerSpan`) for a set shipped
  without the site's words: a chunk containing one is relevant with grade 2, so a file of strings stays
  valid when chunking changes; ``answerable: false`` marks a question the site does not answer (scored only
  by the answer metrics: it should get "not found").
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sitetune.corpus import Corpus
from sitetune.errors import InputError, SitetuneError
from sitetune.records import SectionRecord, section_type_of


def _packaged_sets() -> dict[str, str]:
    from importlib.resources import files

    index = files("sitetune.data") / "questions" / "sets.json"
    data: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))
    return data


#: Question sets shipped with sitetune, by the name ``--queries`` accepts (data/questions/sets.json lists
#: them; docs/question-sets.md describes them).
PACKAGED_QUERY_FILES: dict[str, str] = _packaged_sets()
VALID_GRADES = (1, 2)
#: Grade of a chunk that contains one of a query's answer strings ("answers it").
ANSWER_GRADE = 2


def normalise(text: str) -> str:
    """Whitespace collapsed and lower-cased: how answer strings are matched against texts."""
    return " ".join(text.split()).lower()


@dataclass(frozen=True)
class AnswerSpan:
    """An answer given by its place in a chunk's text rather than by its words.

    A question set shipped without the site's text names its answers this way; the words are read from the
    corpus when the set is loaded (:func:`answer_words`), then matched like an answer string.

    Attributes:
        chunk: The chunk_id holding the answer.
        at: Offset of the answer in the chunk's normalised text (:func:`normalise`).
        chars: Length of the answer in that text.
    """

    chunk: str
    at: int
    chars: int

    def label(self) -> str:
        """How reports name it: ``chunk_id[start:end]``."""
        return f"{self.chunk}[{self.at}:{self.at + self.chars}]"


def parse_answer(value: object) -> str | AnswerSpan | None:
    """An answer of a query file: a non-empty string or a span object; ``None`` when it is neither."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, dict) and set(value) == {"chunk", "at", "chars"}:
        chunk, at, chars = value["chunk"], value["at"], value["chars"]
        if (isinstance(chunk, str) and chunk and isinstance(at, int) and isinstance(chars, int)
                and not isinstance(at, bool) and not isinstance(chars, bool) and at >= 0 and chars > 0):
            return AnswerSpan(chunk, at, chars)
    return None


def answer_words(answer: str | AnswerSpan, texts: Mapping[str, str]) -> str | None:
    """The normalised words of an answer: a string's own, a span's read from ``texts``.

    Args:
        answer: An answer string or span.
        texts: ``{chunk_id: normalised text}`` of the corpus.

    Returns:
        The words; ``None`` when the span's chunk is not in the corpus or the span runs past its end.
    """
    if isinstance(answer, str):
        return normalise(answer)
    text = texts.get(answer.chunk)
    if text is None or answer.at + answer.chars > len(text):
        return None
    return text[answer.at : answer.at + answer.chars]


@dataclass(frozen=True)
class Query:
    """One query with its judgments.

    Attributes:
        id: Unique within its set.
        text: What the user types.
        relevant: ``{chunk_id: grade}``, only chunk_ids present in the corpus.
        exclude: chunk_ids removed from the ranking before scoring (the query's own chunk).
        answers: Verbatim answer strings (normalised with :func:`normalise`); empty when judged by id only.
        answerable: False for a question the site does not answer.
        kind: The file's free-form tag ("natural", "keyword", ...); empty when not given.
    """

    id: str
    text: str
    relevant: dict[str, int]
    exclude: frozenset[str] = frozenset()
    answers: tuple[str, ...] = ()
    answerable: bool = True
    kind: str = ""


@dataclass
class QuerySet:
    """A named list of queries and what was wrong with its input.

    Attributes:
        name: ``titles``, ``same_page`` or an external file's stem.
        description: One line for the report.
        queries: Queries with at least one relevant chunk in the corpus (the scored ones).
        unknown_ids: ``{query_id: [chunk_id, ...]}`` judged ids not in the corpus.
        unjudgeable: Query ids whose relevant chunks are all absent from the corpus (not scored).
        unanswerable: Queries marked ``answerable: false`` (only the answer metrics use them).
        unmatched_answers: ``{query_id: [answer, ...]}`` answer strings no chunk contains (a span by its
            :meth:`AnswerSpan.label`).
    """

    name: str
    description: str
    queries: list[Query]
    unknown_ids: dict[str, list[str]] = field(default_factory=dict)
    unjudgeable: list[str] = field(default_factory=list)
    unanswerable: list[Query] = field(default_factory=list)
    unmatched_answers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def has_answer_judgments(self) -> bool:
        """Whether the answer metrics apply: some query has answer strings or is marked unanswerable."""
        return bool(self.unanswerable) or any(q.answers for q in self.queries)

    def judgments(self) -> dict[str, dict[str, int]]:
        """``{query_id: {chunk_id: grade}}`` for the scored queries."""
        return {q.id: q.relevant for q in self.queries}

    def problems(self) -> list[str]:
        """Human-readable lines about unknown ids and unjudgeable queries."""
        lines = [f"{self.name}: query '{q}' judges unknown chunk_ids {ids}"
                 for q, ids in self.unknown_ids.items()]
        lines += [f"{self.name}: query '{q}' answer string {a!r} is in no chunk of the corpus"
                  for q, answers in self.unmatched_answers.items() for a in answers]
        lines += [f"{self.name}: query '{q}' has no relevant chunk in the corpus; not scored"
                  for q in self.unjudgeable]
        return lines


def split_queries(queries: Sequence[Query], *, dev_share: float = 0.5,
                  salt: str = "sitetune-dev") -> tuple[list[Query], list[Query]]:
    """A stable (development, test) split of ``queries`` by a hash of each id.

    Settings are chosen on the development half and reported on the test half, so nothing is tuned on
    the set it is judged on. The hash keeps a query on its side when others are added or removed.
    """
    import hashlib

    dev: list[Query] = []
    test: list[Query] = []
    for q in queries:
        bucket = int(hashlib.sha1(f"{salt}:{q.id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (dev if bucket < dev_share else test).append(q)
    return dev, test


def _title_queries_from(records: Sequence[SectionRecord], corpus_ids: set[str]) -> list[Query]:
    """One query per (page, section type): split parts "(Part N)" of a section are one section."""
    sections: dict[tuple[str, str], dict[str, int]] = {}
    for r in records:
        title = section_type_of(r.section_title).strip()
        if not title or r.chunk_id not in corpus_ids:
            continue
        sections.setdefault((r.page_name, title), {})[r.chunk_id] = 1
    return [
        Query(id=f"title-{i:04d}", text=f"{page}: {title}", relevant=rel)
        for i, ((page, title), rel) in enumerate(sections.items())
    ]


def title_queries(
    corpus: Corpus, heldout: Sequence[SectionRecord] | None = None, *, fraction: float = 0.2, seed: int = 13
) -> QuerySet:
    """Title queries for held-out records, or for a seeded sample of pages when none are given.

    Args:
        corpus: The corpus being ranked.
        heldout: Held-out section records (from a pairs folder's ``heldout.jsonl``).
        fraction: Share of pages to hold out when ``heldout`` is ``None``.
        seed: Seed of the page sample.
    """
    ids = {c.chunk_id for c in corpus.chunks}
    if heldout is None:
        pages = list(corpus.pages)
        rng = random.Random(seed)
        chosen = set(rng.sample(pages, max(1, round(len(pages) * fraction))))
        heldout = [r for r in corpus.records if r.page_name in chosen]
        how = f"seeded page split: {len(chosen)} of {len(pages)} pages (seed {seed})"
    else:
        how = f"held-out records of the training split ({len(heldout)} records)"
    return QuerySet("titles", f'"<page_name>: <section_title>" → that section\'s chunks; {how}',
                    _title_queries_from(heldout, ids))


def same_page_queries(corpus: Corpus, *, n: int = 300, seed: int = 13) -> QuerySet:
    """A seeded sample of chunks as queries, the other chunks of their page relevant.

    Only chunks that appear on exactly one page are sampled, so "its page" is well defined; the query's
    own chunk is excluded from its ranking.
    """
    by_page: dict[str, list[str]] = {}
    for c in corpus.chunks:
        for p in c.pages:
            by_page.setdefault(p, []).append(c.chunk_id)
    candidates = [c for c in corpus.chunks if len(c.pages) == 1 and len(by_page[c.page_name]) > 1]
    rng = random.Random(seed)
    sample = rng.sample(candidates, min(n, len(candidates)))
    queries = [
        Query(id=f"page-{c.chunk_id}", text=c.text,
              relevant={o: 1 for o in by_page[c.page_name] if o != c.chunk_id},
              exclude=frozenset({c.chunk_id}))
        for c in sample
    ]
    return QuerySet("same_page", f"chunk text → other chunks of its page; {len(queries)} sampled chunks "
                    f"(seed {seed}), the query chunk excluded", queries)


def packaged_query_file(name: str) -> Path:
    """The path of a query file shipped with sitetune (a key of :data:`PACKAGED_QUERY_FILES`)."""
    from importlib.resources import files

    return Path(str(files("sitetune.data") / "questions" / PACKAGED_QUERY_FILES[name]))


def resolve_query_file(spec: str | Path) -> Path:
    """A name of :data:`PACKAGED_QUERY_FILES` means that packaged set; anything else is a path."""
    if str(spec) in PACKAGED_QUERY_FILES:
        return packaged_query_file(str(spec))
    return Path(spec)


@dataclass(frozen=True)
class _ParsedQuery:
    id: str
    text: str
    grades: dict[str, int]
    answers: tuple[str | AnswerSpan, ...]
    answerable: bool
    kind: str


def _parse_query(item: object, index: int, path: str) -> _ParsedQuery:
    if not isinstance(item, dict):
        raise InputError(f"queries[{index}] is not an object", path=path)
    qid = item.get("id")
    if not isinstance(qid, str) or not qid.strip():
        raise InputError(f"queries[{index}] needs a non-empty string id", path=path, field="id")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"query '{qid}' needs a non-empty string text", path=path, field="text")
    answerable = item.get("answerable", True)
    if not isinstance(answerable, bool):
        raise InputError(f"query '{qid}': answerable must be true or false", path=path, field="answerable")
    kind = item.get("kind", "")
    if not isinstance(kind, str):
        raise InputError(f"query '{qid}': kind must be a string", path=path, field="kind")
    raw_answers = item.get("answers", [])
    answers = [parse_answer(a) for a in raw_answers] if isinstance(raw_answers, list) else [None]
    if any(a is None for a in answers):
        raise InputError(f"query '{qid}': answers must be a list of non-empty strings or "
                         '{"chunk": chunk_id, "at": offset, "chars": length} places', path=path, field="answers")
    relevant = item.get("relevant", {})
    if not isinstance(relevant, dict):
        raise InputError(f"query '{qid}': relevant must be an object of chunk_id: grade", path=path,
                         field="relevant")
    if not answerable and (answers or relevant):
        raise InputError(f"query '{qid}' is marked answerable: false but has answers or relevant chunks",
                         path=path, field="answerable")
    if answerable and not answers and not relevant:
        raise InputError(f"query '{qid}' needs a non-empty object of chunk_id: grade, answer strings, or "
                         '"answerable": false', path=path, field="relevant")
    grades: dict[str, int] = {}
    for cid, grade in relevant.items():
        if isinstance(grade, bool) or not isinstance(grade, int) or grade not in VALID_GRADES:
            raise InputError(f"query '{qid}': chunk '{cid}' has grade {grade!r}; grades are 1 or 2",
                             path=path, field="relevant")
        grades[str(cid)] = grade
    return _ParsedQuery(qid, text, grades, tuple(a for a in answers if a is not None), answerable, kind)


def chunks_containing(texts: dict[str, str], answer: str) -> list[str]:
    """The chunk_ids whose normalised text (``{chunk_id: normalise(text)}``) contains ``answer``."""
    needle = normalise(answer)
    return [cid for cid, text in texts.items() if needle in text]


def load_query_file(path: str | Path, corpus: Corpus) -> QuerySet:
    """Read an external query file and check it against ``corpus``.

    Malformed input (not JSON, missing fields, bad grades, repeated ids) is an error naming the query
    id and field. Unknown chunk_ids are kept aside per query and reported; a query left with no
    relevant chunk is listed as unjudgeable, not silently dropped.

    Raises:
        InputError: The file cannot be read or does not follow the format.
    """
    name = str(path) if str(path) in PACKAGED_QUERY_FILES else Path(path).stem
    path = resolve_query_file(path)
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("query file not found", path=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read query file: {exc}", path=where) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", path=where, line=exc.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
        raise InputError('expected an object {"queries": [...]}', path=where, field="queries")
    ids = {c.chunk_id for c in corpus.chunks}
    qs = QuerySet(name, f"external query file {path.name}", [])
    texts = {c.chunk_id: normalise(c.text) for c in corpus.chunks}
    seen: set[str] = set()
    for i, item in enumerate(data["queries"]):
        parsed = _parse_query(item, i, where)
        qid = parsed.id
        if qid in seen:
            raise InputError(f"query id '{qid}' appears twice", path=where, field="id")
        seen.add(qid)
        if not parsed.answerable:
            qs.unanswerable.append(Query(qid, parsed.text, {}, answerable=False, kind=parsed.kind))
            continue
        unknown = [cid for cid in parsed.grades if cid not in ids]
        if unknown:
            qs.unknown_ids[qid] = unknown
        known = {cid: g for cid, g in parsed.grades.items() if cid in ids}
        unmatched, words = [], []
        for answer in parsed.answers:
            needle = answer_words(answer, texts)
            if isinstance(answer, str):
                words.append(answer)
            elif needle is not None:
                words.append(needle)
            matched = chunks_containing(texts, needle) if needle else []
            if not matched:
                unmatched.append(answer if isinstance(answer, str) else answer.label())
            for cid in matched:
                known[cid] = max(known.get(cid, 0), ANSWER_GRADE)
        if unmatched:
            qs.unmatched_answers[qid] = unmatched
        if known:
            qs.queries.append(Query(qid, parsed.text, known, answers=tuple(words), kind=parsed.kind))
        else:
            qs.unjudgeable.append(qid)
    if not qs.queries:
        raise SitetuneError(f"{where}: none of its {len(seen)} queries judges a chunk of this corpus "
                            "(is it the right corpus?)")
    return qs
