"""The corpus: section records deduplicated by text, every occurrence kept.

The reference corpus has 1,643 rows but 961 unique texts: boilerplate sections repeat across programme pages.
A :class:`Corpus` holds one :class:`Chunk` per unique text, with every (page, title, url) it appears
under, so results, batches and metrics count a text once and can still say "appears on 47 pages".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sitetune.errors import InputError
from sitetune.records import SectionRecord


@dataclass(frozen=True, slots=True)
class Occurrence:
    """Where a chunk's text appears: one page section."""

    page_name: str
    section_title: str
    section_type: str
    url: str


@dataclass(frozen=True)
class Chunk:
    """One unique chunk text with all of its occurrences; the first occurrence is its home.

    Attributes:
        chunk_id: See :func:`sitetune.records.chunk_id_of`.
        text: The text (as first seen).
        occurrences: Every page section the text appears in, in corpus order, without repeats.
    """

    chunk_id: str
    text: str
    occurrences: tuple[Occurrence, ...]

    @property
    def home(self) -> Occurrence:
        """The first place the text appears."""
        return self.occurrences[0]

    @property
    def page_name(self) -> str:
        """The page of the home occurrence."""
        return self.home.page_name

    @property
    def section_title(self) -> str:
        """The section title of the home occurrence."""
        return self.home.section_title

    @property
    def url(self) -> str:
        """The URL of the home occurrence."""
        return self.home.url

    @property
    def pages(self) -> tuple[str, ...]:
        """Distinct page names the text appears on, in order."""
        return tuple(dict.fromkeys(o.page_name for o in self.occurrences))

    def record(self) -> SectionRecord:
        """The chunk as a record at its home occurrence."""
        h = self.home
        return SectionRecord(h.page_name, h.section_title, h.section_type, self.text, h.url)


@dataclass(frozen=True)
class Corpus:
    """Section records and their deduplicated chunks.

    Build one with :meth:`from_records` or :meth:`load`; write one with :meth:`save`.

    Attributes:
        records: Every record, in corpus order.
        chunks: One chunk per unique text, in order of first appearance.
        source: The file the corpus was read from or last saved to (``None``: only in memory).
    """

    records: tuple[SectionRecord, ...]
    chunks: tuple[Chunk, ...] = field(repr=False)
    source: str | None = field(default=None, compare=False)

    @classmethod
    def from_records(cls, records: Iterable[SectionRecord], *, source: str | None = None) -> Corpus:
        """Deduplicate ``records`` by text into a corpus (``source``: the file they came from, if any)."""
        records = tuple(records)
        texts: dict[str, str] = {}
        places: dict[str, dict[Occurrence, None]] = {}
        for r in records:
            texts.setdefault(r.chunk_id, r.text)
            places.setdefault(r.chunk_id, {})[Occurrence(r.page_name, r.section_title, r.section_type, r.url)] = None
        chunks = tuple(Chunk(cid, texts[cid], tuple(places[cid])) for cid in texts)
        return cls(records=records, chunks=chunks, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        """Read a corpus file (CSV, JSONL or Parquet); an empty one is an error."""
        from sitetune.recordio import read_records

        records = read_records(path)
        if not records:
            raise InputError("the corpus has no records", path=str(path))
        return cls.from_records(records, source=str(path))

    def save(self, path: str | Path) -> Corpus:
        """Write the records atomically as CSV, JSONL or Parquet (by extension).

        Returns:
            The same corpus with ``source`` set to ``path``.
        """
        from sitetune.recordio import write_records

        write_records(self.records, path)
        return replace(self, source=str(path))

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def pages(self) -> tuple[str, ...]:
        """Distinct page names in corpus order."""
        return tuple(dict.fromkeys(r.page_name for r in self.records))

    @property
    def urls(self) -> tuple[str, ...]:
        """Distinct URLs in corpus order."""
        return tuple(dict.fromkeys(r.url for r in self.records))

    def by_id(self) -> dict[str, Chunk]:
        """Chunks keyed by chunk_id."""
        return {c.chunk_id: c for c in self.chunks}

    def chunks_of_page(self, page_name: str) -> list[Chunk]:
        """Unique chunks that appear on ``page_name``."""
        return [c for c in self.chunks if page_name in c.pages]

    def duplicate_groups(self) -> list[Chunk]:
        """Chunks that appear more than once, most occurrences first."""
        return sorted((c for c in self.chunks if len(c.occurrences) > 1), key=lambda c: -len(c.occurrences))


@dataclass(frozen=True)
class CorpusStats:
    """What ``sitetune corpus stats`` reports."""

    rows: int
    pages: int
    urls: int
    unique_texts: int
    duplicate_rows: int
    largest_duplicate_groups: list[dict[str, object]]
    token_length: dict[str, float]
    over_256_tokens: int
    over_512_tokens: int


def _percentile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def corpus_stats(corpus: Corpus, *, top_duplicates: int = 5) -> CorpusStats:
    """Counts, duplicate groups and the token-length distribution of the unique chunks.

    Token lengths are counted with the base model's tokenizer, special tokens included.
    """
    from sitetune.models import count_tokens

    lengths = sorted(count_tokens([c.text for c in corpus.chunks]))
    groups = [
        {"chunk_id": c.chunk_id, "occurrences": len(c.occurrences), "pages": len(c.pages),
         "section_title": c.section_title, "text": c.text[:80]}
        for c in corpus.duplicate_groups()[:top_duplicates]
    ]
    n = len(lengths)
    return CorpusStats(
        rows=len(corpus.records),
        pages=len(corpus.pages),
        urls=len(corpus.urls),
        unique_texts=len(corpus.chunks),
        duplicate_rows=len(corpus.records) - len(corpus.chunks),
        largest_duplicate_groups=groups,
        token_length={
            "min": float(lengths[0]) if n else 0.0,
            "p50": _percentile(lengths, 0.5),
            "p90": _percentile(lengths, 0.9),
            "p99": _percentile(lengths, 0.99),
            "max": float(lengths[-1]) if n else 0.0,
            "mean": sum(lengths) / n if n else 0.0,
        },
        over_256_tokens=sum(1 for x in lengths if x > 256),
        over_512_tokens=sum(1 for x in lengths if x > 512),
    )

