"""The retrieval recipe's pairs: query-like anchors pointing at the section that answers them.

Per unique chunk (the corpus is deduplicated first, so boilerplate repeated on many pages is one row
family, not dozens of conflicting ones):

- ``title``: "<page>: <section heading>" for the pages the text appears on (up to ``title_anchors``);
- ``question``: templated student questions from the heading, the programme and the site's own name
  (:mod:`.questions`; the name and the programmes' degree prefixes come from :mod:`sitetune.sitevocab`);
- ``cloze``: inverse cloze, a sentence of the chunk as the query; with probability
  ``cloze_remove_prob`` the sentence is cut out of the positive so the model cannot just match words.

The positive is the chunk in :data:`DOCUMENT_TEMPLATE` (page and section title in front), the same form
the trained model's ``sitetune.json`` asks the index to use. Anchors are deduplicated. With
``holdout_pages`` > 0 a seeded fraction of pages is held out and no text that appears on a held-out page
is trained on (for honest evaluation); the shipped model trains on every page.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from sitetune.config import RETRIEVAL_PAIRS, PairsConfig, Recipe
from sitetune.corpus import Chunk, Corpus
from sitetune.errors import InputError
from sitetune.modelinfo import TITLED_TEMPLATE, document_text
from sitetune.pairs.questions import questions_for
from sitetune.pairs.storage import Pairs
from sitetune.records import SectionRecord, section_type_of
from sitetune.sitevocab import SiteVocabulary, degree_prefixes, entity_names, starts_with_degree

#: How the retrieval model wants documents written (recorded in its sitetune.json).
DOCUMENT_TEMPLATE = TITLED_TEMPLATE

# Scraped text often glues sentences together ("deadline.Fulfil"): a lower-case letter, a full stop and a
# capital also end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])|(?<=[a-z][.!?])(?=[A-Z])")
_MIN_WORDS, _MAX_WORDS = 5, 60
# A page with one of these headings describes a programme (its name may appear in questions); the words
# are the ones any university site uses.
_PROGRAMME_HEADINGS = re.compile(
    r"entry requirement|admission requirement|academic requirement|admission process"
    r"|about the (?:programme|program|course|degree)|(?:programme|program|course) (?:structure|content|overview)",
    re.I,
)


def programme_pages(records: Sequence[SectionRecord], prefixes: Sequence[str] | None = None) -> set[str]:
    """Pages that describe a programme.

    Their name starts with one of the site's degree prefixes ("MSc in ...", see
    :func:`sitetune.sitevocab.degree_prefixes`), or they have an entry-requirements, admission-process,
    about-the-programme or programme-structure section.

    Args:
        records: Every corpus row.
        prefixes: The site's degree prefixes; derived from the records' page names when ``None``.
    """
    pages = list(dict.fromkeys(r.page_name for r in records))
    if prefixes is None:
        prefixes = degree_prefixes(pages)
    by_heading = {r.page_name for r in records if _PROGRAMME_HEADINGS.search(r.section_title)}
    return by_heading | {p for p in pages if starts_with_degree(p, prefixes)}


def sentences_of(text: str) -> list[str]:
    """Split ``text`` into sentences at ., ! or ? followed by a capital or digit."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def split_pages(pages: Sequence[str], fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """A seeded page split: (train pages, held-out pages); ``fraction`` 0 holds out nothing."""
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"`holdout_pages` must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return set(pages), set()
    order = sorted(pages)
    random.Random(seed).shuffle(order)
    n_held = min(len(order) - 1, max(1, round(fraction * len(order))))
    return set(order[n_held:]), set(order[:n_held])


def _cloze_rows(chunk: Chunk, rng: random.Random, config: PairsConfig) -> list[tuple[str, str, str]]:
    sentences = sentences_of(chunk.text)
    candidates = [s for s in sentences if _MIN_WORDS <= len(s.split()) <= _MAX_WORDS]
    rng.shuffle(candidates)
    if not candidates:
        # No usable sentence (a list, a table, one long run-on): its opening words still make a query, and
        # every chunk then has at least one anchor.
        candidates = [" ".join(chunk.text.split()[:_MAX_WORDS // 2])]
        sentences = candidates
    rows = []
    for sentence in candidates[: config.cloze_anchors]:
        text = chunk.text
        # Cutting the sentence out teaches context, not word overlap; keeping it sometimes keeps exact
        # phrase lookups working. A one-sentence chunk keeps it (the positive would be empty).
        if len(sentences) > 1 and rng.random() < config.cloze_remove_prob:
            text = " ".join(s for s in sentences if s != sentence)
        home = chunk.home
        positive = DOCUMENT_TEMPLATE.format(
            page_name=home.page_name, section_title=home.section_title, text=text
        )
        rows.append((sentence, positive, "cloze"))
    return rows


def build_retrieval_pairs(records: Sequence[SectionRecord], config: PairsConfig = RETRIEVAL_PAIRS) -> Pairs:
    """Build (anchor, positive) pairs for contrastive training.

    Args:
        records: Every corpus row.
        config: Anchor counts, cloze settings, page hold-out and hard-negative mining.

    Returns:
        Pairs whose dataset has columns anchor, positive[, negative], page, chunk_id, kind. ``page`` and
        ``chunk_id`` feed the page-aware sampler and are dropped before training.

    Raises:
        InputError: Fewer than two pages, or a hold-out that leaves nothing to train on.
    """
    from datasets import Dataset

    corpus = Corpus.from_records(records)
    if not corpus.records:
        raise InputError("the corpus has no records")
    if len(corpus.pages) < 2:
        raise InputError(
            f"the retrieval recipe needs at least two pages (in-batch negatives), "
            f"the corpus has {len(corpus.pages)}"
        )
    train_pages, held_pages = split_pages(corpus.pages, config.holdout_pages, config.split_seed)
    train_chunks = [c for c in corpus.chunks if not set(c.pages) & held_pages]
    if len(train_chunks) < 2:
        raise InputError("after holding pages out fewer than two chunks are left to train on")

    rng = random.Random(config.seed)
    vocabulary = SiteVocabulary.of(corpus.records)
    programmes = programme_pages(corpus.records, vocabulary.degree_prefixes)
    seen: set[str] = set()
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "page": [], "chunk_id": [], "kind": []}

    def add(anchor: str, positive: str, chunk: Chunk, kind: str) -> None:
        anchor = " ".join(anchor.split())
        if not anchor or anchor in seen:
            return
        seen.add(anchor)
        for key, value in (
            ("anchor", anchor),
            ("positive", positive),
            ("page", chunk.page_name),
            ("chunk_id", chunk.chunk_id),
            ("kind", kind),
        ):
            rows[key].append(value)

    for chunk in train_chunks:
        document = document_text(chunk, DOCUMENT_TEMPLATE)
        places = list(dict.fromkeys((o.page_name, o.section_title) for o in chunk.occurrences))
        for page, title in places[: config.title_anchors]:
            # The full title, part suffix included: it tells the parts of a long section apart.
            topic = title.strip() or section_type_of(chunk.section_title).strip()
            add(f"{page}: {topic}" if topic else page, document, chunk, "title")
        home = chunk.home
        names = entity_names(home.page_name, vocabulary.degree_prefixes)
        for question in questions_for(home.page_name, home.section_type, rng, config.question_anchors,
                                      programme=home.page_name in programmes, site=vocabulary.name, names=names):
            add(question, document, chunk, "question")
        for anchor, positive, kind in _cloze_rows(chunk, rng, config):
            add(anchor, positive, chunk, kind)

    dataset = Dataset.from_dict(rows)
    if config.hard_negatives:
        from sitetune.pairs.negatives import add_hard_negatives

        corpus_docs = [document_text(c, DOCUMENT_TEMPLATE) for c in train_chunks]
        dataset = add_hard_negatives(dataset, corpus_docs, relative_margin=config.relative_margin)
    heldout = [r for r in corpus.records if r.page_name in held_pages]
    kinds = {k: rows["kind"].count(k) for k in ("title", "question", "cloze")}
    info = {
        "recipe": Recipe.RETRIEVAL.value,
        "split": "pages",
        "pairs": len(dataset),
        "anchors": kinds,
        "train_chunks": len(train_chunks),
        "train_pages": len(train_pages),
        "heldout_pages": sorted(held_pages),
        "heldout_rows": len(heldout),
        "holdout_pages": config.holdout_pages,
        "document_template": DOCUMENT_TEMPLATE,
        "site_name": vocabulary.name,
        "degree_prefixes": list(vocabulary.degree_prefixes),
        "hard_negatives": config.hard_negatives,
        "relative_margin": config.relative_margin if config.hard_negatives else None,
        "split_seed": config.split_seed,
        "seed": config.seed,
    }
    return Pairs(recipe=Recipe.RETRIEVAL, dataset=dataset, heldout=heldout, info=info)
