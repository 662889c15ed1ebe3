"""The ``evaluate`` verb: index the corpus with every model and score what search serves on every query set.

For each model an embedded store is built in ``<out>/stores/<label>`` (re-runs re-embed only what
changed) and opened with a :class:`~sitetune.search.Searcher`, the object ``sitetune search`` and the
HTTP API use. Rows of the result, all ranked through that searcher (:mod:`.served`):

- ``<model>``: its dense ranking alone;
- ``bm25``: the store's BM25 ranking alone (the fields search indexes);
- ``<model>+search``: the served pipeline (fusion, programme boost, and whatever else search does), with
  the settings printed in the report.

Columns: the metrics of :mod:`sitetune.evaluation.metrics` (ranx's definitions); query files with answer
strings or unanswerable questions also get answer-level metrics from the served answerer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sitetune.config import AnswerConfig, EncoderConfig, SearchConfig
from sitetune.corpus import Corpus
from sitetune.errors import InputError, SitetuneError
from sitetune.evaluation.metrics import METRICS, score_rankings
from sitetune.evaluation.querysets import QuerySet, load_query_file, same_page_queries, title_queries
from sitetune.evaluation.result import EvaluationResult

BM25_LABEL = "bm25"
BASE_LABEL = "base"
#: Suffix of the served pipeline's row: ``base+search``.
SERVED_SUFFIX = "+search"


def model_label(model: str | Path, taken: set[str]) -> str:
    """``base`` for the packaged model, else the folder's name; repeated names get ``-2``, ``-3``."""
    label = BASE_LABEL if str(model) == BASE_LABEL else (Path(model).resolve().name or str(model))
    unique, n = label, 2
    while unique in taken or unique == BM25_LABEL or unique.endswith(SERVED_SUFFIX):
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
        raise SitetuneError(f"{pairs_dir} has no heldout.jsonl: `split_from` needs the pairs folder "
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
    corpus: Corpus | str | Path,
    models: Sequence[str | Path] = (BASE_LABEL,),
    queries: Sequence[str | Path] = (),
    split_from: str | Path | None = None,
    out: str | Path = "evaluation",
    hybrid: bool = True,
    *,
    encoder_config: EncoderConfig | None = None,
    search_config: SearchConfig | None = None,
    answer_config: AnswerConfig | None = None,
    answers: bool = True,
    same_page_n: int = 300,
    seed: int = 13,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate models, BM25 and the served pipeline on every query set and write the report.

    Args:
        corpus: A :class:`~sitetune.corpus.Corpus` or a section-record file (CSV, JSONL, Parquet).
        models: ``"base"`` and/or model folders; ``base`` is added first when missing so every tuned
            model has its baseline beside it.
        queries: External query files, or names of packaged sets (``PACKAGED_QUERY_FILES``).
        split_from: A pairs folder; its ``heldout.jsonl`` gives the title queries.
        out: Report folder (created; files in it are replaced; stores go to ``out/stores``).
        hybrid: Also score ``<model>+search``, the served pipeline.
        encoder_config: Backend and precision for every model (search's default when ``None``).
        search_config: The served pipeline's settings (search's default when ``None``).
        answer_config: The answerer's settings for the answer metrics (the service's default when ``None``).
        answers: Compute answer-level metrics for the external query sets (needs ``hybrid``).
        same_page_n: Chunks sampled for the same-page set.
        seed: Seed for the page split and samples.
        progress: Show encoding progress bars (stderr).
        log: Where to send progress lines (e.g. ``typer.echo`` to stderr).

    Returns:
        The :class:`EvaluationResult`; ``out`` holds report.md, metrics.json and PNG plots.

    Raises:
        SitetuneError: Unreadable corpus, model folder, query file or pairs folder.
    """
    from sitetune.answer import Answerer
    from sitetune.evaluation.report import write_report
    from sitetune.evaluation.served import answer_metrics, query_vectors, system_rankings
    from sitetune.evaluation.sts import load_pairs, sts_spearman
    from sitetune.index import build_index
    from sitetune.models import resolve_model_path
    from sitetune.search import Searcher

    say = log or (lambda _msg: None)
    if isinstance(corpus, Corpus):
        corp = corpus
    else:
        if not Path(corpus).is_file():
            raise SitetuneError(f"corpus file {corpus} not found")
        corp = Corpus.load(corpus)
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
    external = {qs.name for qs in sets[2:]}  # titles and same_page come first

    search_cfg = search_config or SearchConfig()
    answer_cfg = answer_config or AnswerConfig()
    say(f"corpus: {len(corp.chunks)} unique chunks; query sets: "
        + ", ".join(f"{qs.name} ({len(qs.queries)})" for qs in sets))
    rankings: dict[str, dict[str, dict[str, list[str]]]] = {BM25_LABEL: {}}
    text_forms: dict[str, str] = {}
    answer_results: dict[str, dict[str, dict[str, float]]] = {}
    sts: dict[str, float] = {}
    similarity: dict[str, dict[str, float]] = {}
    pair_cosines: dict[str, tuple[list[float], list[float]]] = {}
    pairs = load_pairs()
    taken: set[str] = set()
    model_labels: list[str] = []
    served_labels: list[str] = []
    for spec in specs:
        label = model_label(spec, taken)
        model_labels.append(label)
        store = Path(out) / "stores" / label
        say(f"indexing with {label} ({spec}) into {store}")
        build_index(corp, spec, store, encoder_config, progress)
        with Searcher.open(store, encoder_config, model=spec, config=search_cfg) as searcher:
            info = searcher.encoder.info
            text_forms[label] = (f"dense only; documents {info.document_template!r}, "
                                 f"queries {info.query_template!r}")
            served = f"{label}{SERVED_SUFFIX}"
            rankings[label], rankings[served] = {}, {}
            for qs in sets:
                say(f"ranking {qs.name} with {label}")
                ranked = system_rankings(searcher, qs.queries, vectors=query_vectors(searcher, qs.queries))
                rankings[label][qs.name] = ranked.dense
                rankings[served][qs.name] = ranked.served
                rankings[BM25_LABEL].setdefault(qs.name, ranked.bm25)  # the same for every store
            text_forms.setdefault(BM25_LABEL, f"BM25 over the store's fields ({searcher.reader.manifest.bm25_fields}),"
                                              " as search ranks it")
            if hybrid:
                served_labels.append(served)
                text_forms[served] = f"the served search pipeline of {label}: {searcher.describe()}"
                if answers:
                    answerer = Answerer(searcher, answer_cfg)
                    for qs in sets:
                        if qs.name in external:
                            say(f"answering {qs.name} with {served}")
                            answer_results.setdefault(served, {})[qs.name] = answer_metrics(answerer, qs).as_dict()
            sts[label] = sts_spearman(searcher.encoder, pairs)
            vectors = searcher.reader.generation.vectors
            assert vectors is not None  # an embedded store always holds its vectors
            same, other = page_pair_similarities(corp, vectors, seed=seed)
            pair_cosines[label] = (same, other)
            similarity[label] = {"same_page_mean": float(np.mean(same)) if same else float("nan"),
                                 "other_page_mean": float(np.mean(other)) if other else float("nan")}
    labels = [*model_labels, BM25_LABEL, *served_labels]

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for label in labels:
        metrics[label], per_query[label] = {}, {}
        for qs in sets:
            means, per = score_rankings(qs.judgments(), rankings[label][qs.name], tuple(METRICS))
            metrics[label][qs.name] = means
            per_query[label][qs.name] = per["ndcg@10"]
    settings: dict[str, Any] = {"search": asdict(search_cfg), "answer": asdict(answer_cfg)}
    result = EvaluationResult(
        corpus=str(Path(corp.source)) if corp.source else "", chunks=len(corp.chunks), labels=labels,
        text_forms=text_forms,
        query_sets={qs.name: {"description": qs.description, "queries": len(qs.queries),
                              "unanswerable": len(qs.unanswerable),
                              "unknown_ids": qs.unknown_ids, "unjudgeable": qs.unjudgeable} for qs in sets},
        metrics=metrics, per_query=per_query, answers=answer_results, settings=settings, sts=sts,
        similarity=similarity, problems=problems, out=Path(out))
    write_report(result, pair_cosines)
    return result
