"""The ``evaluate`` verb: rank the deduplicated corpus for every query set with every model and score it.

Rows of the result: each model alone (``base``, tuned folders), ``bm25`` (bm25s, the lexical baseline)
and, with ``hybrid``, ``<model>+bm25`` fused by reciprocal rank fusion the way the search service
fuses them. Columns: the metrics of :mod:`sitetune.evaluation.metrics`, computed by ranx.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sitetune.config import EncoderConfig
from sitetune.corpus import Corpus
from sitetune.errors import InputError, SitetuneError
from sitetune.evaluation.metrics import HEADLINE_METRICS, METRICS, score_rankings
from sitetune.evaluation.querysets import QuerySet, load_query_file, same_page_queries, title_queries

if TYPE_CHECKING:
    from sitetune.encode import Encoder

#: How deep every system ranks (the deepest metric is @100).
DEPTH = 100
BM25_LABEL = "bm25"
BASE_LABEL = "base"
BM25_TEXT_FORM = "plain chunk text (bm25s, English stopwords, Snowball stemmer)"


@dataclass
class EvaluationResult:
    """Everything the report shows.

    Attributes:
        corpus: The corpus file.
        chunks: Unique chunks ranked.
        labels: Row labels in report order (models, ``bm25``, hybrids).
        text_forms: ``{label: how documents and queries were written for it}``.
        query_sets: ``{name: {"description", "queries", "unknown_ids", "unjudgeable"}}``.
        metrics: ``{label: {query_set: {metric: mean}}}``.
        per_query: ``{label: {query_set: {query_id: nDCG@10}}}``.
        sts: ``{model label: Spearman on the general-English pairs}``.
        similarity: ``{model label: {"same_page_mean", "other_page_mean"}}`` of chunk-pair cosines.
        problems: Unknown ids and unjudgeable queries, one line each.
        out: The report folder.
        plots: PNG files written, relative to ``out``.
    """

    corpus: str
    chunks: int
    labels: list[str]
    text_forms: dict[str, str]
    query_sets: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, dict[str, float]]]
    per_query: dict[str, dict[str, dict[str, float]]]
    sts: dict[str, float]
    similarity: dict[str, dict[str, float]]
    problems: list[str]
    out: Path
    plots: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """What ``--json`` prints: ``{label: {query_set: {ndcg@10, mrr@10, recall@10}}}``."""
        return {label: {qs: {m: vals[m] for m in HEADLINE_METRICS} for qs, vals in sets.items()}
                for label, sets in self.metrics.items()}


def model_label(model: str | Path, taken: set[str]) -> str:
    """``base`` for the packaged model, else the folder's name; repeated names get ``-2``, ``-3``."""
    label = BASE_LABEL if str(model) == BASE_LABEL else (Path(model).resolve().name or str(model))
    unique, n = label, 2
    while unique in taken or unique == BM25_LABEL:
        unique, n = f"{label}-{n}", n + 1
    taken.add(unique)
    return unique


def load_heldout(pairs_dir: str | Path) -> tuple[list[Any], dict[str, Any]]:
    """The held-out records and ``pairs_info.json`` of a pairs folder.

    Raises:
        SitetuneError: No such folder, or it has no ``heldout.jsonl``.
    """
    from sitetune.recordio import read_records

    pairs_dir = Path(pairs_dir)
    heldout = pairs_dir / "heldout.jsonl"
    if not heldout.is_file():
        raise SitetuneError(f"{pairs_dir} has no heldout.jsonl: --split-from needs the pairs folder "
                            "written by 'sitetune train' (heldout.jsonl + pairs_info.json)")
    info: dict[str, Any] = {}
    info_path = pairs_dir / "pairs_info.json"
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg}", path=str(info_path), line=exc.lineno) from None
    return list(read_records(heldout)), info


def build_query_sets(corpus: Corpus, queries: Sequence[str | Path], split_from: str | Path | None,
                     *, same_page_n: int = 300, seed: int = 13) -> list[QuerySet]:
    """The built-in sets (titles, same_page) followed by each external file's set."""
    if split_from is not None:
        heldout, info = load_heldout(split_from)
        titles = title_queries(corpus, heldout)
        recipe, split = info.get("recipe", "?"), info.get("split", "?")
        titles.description += f" (from {split_from}: recipe {recipe}, split {split})"
    else:
        titles = title_queries(corpus, seed=seed)
    sets = [titles, same_page_queries(corpus, n=same_page_n, seed=seed)]
    for spec in queries:
        qs = load_query_file(spec, corpus)
        if any(s.name == qs.name for s in sets):
            raise SitetuneError(f"two query sets are named '{qs.name}': rename one of the files")
        sets.append(qs)
    return sets


def top_k(scores: np.ndarray, ids: Sequence[str], exclude: frozenset[str], k: int = DEPTH) -> list[str]:
    """The ``k`` best ids by score (descending, stable on ties), ``exclude`` left out."""
    order = np.argsort(-scores, kind="stable")
    out: list[str] = []
    for i in order:
        if ids[i] not in exclude:
            out.append(ids[i])
            if len(out) == k:
                break
    return out


def _dense_rankings(encoder: Encoder, doc_vectors: np.ndarray, ids: Sequence[str], qs: QuerySet,
                    progress: bool) -> dict[str, list[str]]:
    qv = encoder.encode([encoder.info.query(q.text) for q in qs.queries], show_progress=progress)
    scores = qv @ doc_vectors.T
    return {q.id: top_k(scores[i], ids, q.exclude) for i, q in enumerate(qs.queries)}


def _bm25_rankings(bm25: Any, qs: QuerySet) -> dict[str, list[str]]:
    out = {}
    for q in qs.queries:
        hits = bm25.search(q.text, k=DEPTH + len(q.exclude))
        out[q.id] = [d for d, _ in hits if d not in q.exclude][:DEPTH]
    return out


def _fuse(a: dict[str, list[str]], b: dict[str, list[str]]) -> dict[str, list[str]]:
    from sitetune.search.fusion import reciprocal_rank_fusion

    return {q: [d for d, _ in reciprocal_rank_fusion([a[q], b[q]])][:DEPTH] for q in a}


def page_pair_similarities(corpus: Corpus, vectors: np.ndarray, *, n: int = 2000,
                           seed: int = 13) -> tuple[list[float], list[float]]:
    """Cosines of ``n`` random same-page and ``n`` random other-page chunk pairs (pages by home page)."""
    rng = random.Random(seed)
    pages = [c.page_name for c in corpus.chunks]
    page_sets = [set(c.pages) for c in corpus.chunks]
    by_page: dict[str, list[int]] = {}
    for i, p in enumerate(pages):
        by_page.setdefault(p, []).append(i)
    multi = [members for members in by_page.values() if len(members) > 1]
    same: list[float] = []
    other: list[float] = []
    if multi:
        for _ in range(n):
            i, j = rng.sample(rng.choice(multi), 2)
            same.append(float(vectors[i] @ vectors[j]))
    for _ in range(n * 5):
        if len(other) >= n or len(pages) < 2:
            break
        i, j = rng.sample(range(len(pages)), 2)
        if not page_sets[i] & page_sets[j]:
            other.append(float(vectors[i] @ vectors[j]))
    return same, other


def evaluate(
    corpus: str | Path,
    models: Sequence[str | Path] = (BASE_LABEL,),
    queries: Sequence[str | Path] = (),
    split_from: str | Path | None = None,
    out: str | Path = "evaluation",
    hybrid: bool = True,
    *,
    encoder_config: EncoderConfig | None = None,
    same_page_n: int = 300,
    seed: int = 13,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate models, BM25 and their hybrids on every query set and write the report.

    Args:
        corpus: Section-record file (CSV, JSONL, Parquet).
        models: ``"base"`` and/or model folders; ``base`` is added first when missing so every tuned
            model has its baseline beside it.
        queries: External query files (``"cbs"`` = the packaged CBS question set).
        split_from: A pairs folder; its ``heldout.jsonl`` gives the title queries.
        out: Report folder (created; files in it are replaced).
        hybrid: Also score ``<model>+bm25`` fused with reciprocal rank fusion.
        encoder_config: Backend and precision for every model.
        same_page_n: Chunks sampled for the same-page set.
        seed: Seed for the page split and samples.
        progress: Show encoding progress bars (stderr).
        log: Where to send progress lines (e.g. ``typer.echo`` to stderr).

    Returns:
        The :class:`EvaluationResult`; ``out`` holds report.md, metrics.json and PNG plots.

    Raises:
        SitetuneError: Unreadable corpus, model folder, query file or pairs folder.
    """
    from sitetune.encode import load_encoder
    from sitetune.evaluation.report import write_report
    from sitetune.evaluation.sts import load_pairs, sts_spearman
    from sitetune.lexical import BM25Index
    from sitetune.models import resolve_model_path

    say = log or (lambda _msg: None)
    corpus_path = Path(corpus)
    if not corpus_path.is_file():
        raise SitetuneError(f"corpus file {corpus_path} not found")
    corp = Corpus.load(corpus_path)
    specs = list(dict.fromkeys(str(m) for m in models)) or [BASE_LABEL]
    if BASE_LABEL not in specs:
        specs.insert(0, BASE_LABEL)
    for spec in specs:  # fail on a bad folder before any slow work
        resolve_model_path(spec)
    sets = build_query_sets(corp, queries, split_from, same_page_n=same_page_n, seed=seed)
    problems = [line for qs in sets for line in qs.problems()]
    problems += [f"{qs.name}: no query could be built; set left out" for qs in sets if not qs.queries]
    sets = [qs for qs in sets if qs.queries]
    for line in problems:
        say(f"warning: {line}")

    ids = [c.chunk_id for c in corp.chunks]
    say(f"corpus: {len(ids)} unique chunks; query sets: "
        + ", ".join(f"{qs.name} ({len(qs.queries)})" for qs in sets))
    bm25 = BM25Index(ids, [c.text for c in corp.chunks])
    rankings: dict[str, dict[str, dict[str, list[str]]]] = {
        BM25_LABEL: {qs.name: _bm25_rankings(bm25, qs) for qs in sets}}
    text_forms = {BM25_LABEL: BM25_TEXT_FORM}
    sts: dict[str, float] = {}
    similarity: dict[str, dict[str, float]] = {}
    pair_cosines: dict[str, tuple[list[float], list[float]]] = {}
    pairs = load_pairs()
    taken: set[str] = set()
    model_labels: list[str] = []
    for spec in specs:
        label = model_label(spec, taken)
        model_labels.append(label)
        say(f"encoding with {label} ({spec})")
        encoder = load_encoder(spec, encoder_config)
        info = encoder.info
        text_forms[label] = f"documents {info.document_template!r}, queries {info.query_template!r}"
        doc_vectors = encoder.encode([info.document(c) for c in corp.chunks], show_progress=progress)
        rankings[label] = {qs.name: _dense_rankings(encoder, doc_vectors, ids, qs, progress) for qs in sets}
        sts[label] = sts_spearman(encoder, pairs)
        same, other = page_pair_similarities(corp, doc_vectors, seed=seed)
        pair_cosines[label] = (same, other)
        similarity[label] = {"same_page_mean": float(np.mean(same)) if same else float("nan"),
                             "other_page_mean": float(np.mean(other)) if other else float("nan")}
    labels = [*model_labels, BM25_LABEL]
    if hybrid:
        for label in model_labels:
            fused = f"{label}+{BM25_LABEL}"
            rankings[fused] = {qs.name: _fuse(rankings[label][qs.name], rankings[BM25_LABEL][qs.name])
                               for qs in sets}
            text_forms[fused] = f"reciprocal rank fusion (k=60) of {label} and {BM25_LABEL}, top {DEPTH} each"
            labels.append(fused)

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for label in labels:
        metrics[label], per_query[label] = {}, {}
        for qs in sets:
            means, per = score_rankings(qs.judgments(), rankings[label][qs.name], tuple(METRICS))
            metrics[label][qs.name] = means
            per_query[label][qs.name] = per["ndcg@10"]
    result = EvaluationResult(
        corpus=str(corpus_path), chunks=len(ids), labels=labels, text_forms=text_forms,
        query_sets={qs.name: {"description": qs.description, "queries": len(qs.queries),
                              "unknown_ids": qs.unknown_ids, "unjudgeable": qs.unjudgeable} for qs in sets},
        metrics=metrics, per_query=per_query, sts=sts, similarity=similarity, problems=problems,
        out=Path(out))
    write_report(result, pair_cosines)
    return result
