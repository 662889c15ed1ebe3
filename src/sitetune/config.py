"""All configuration in one place: frozen dataclasses, string enums, and presets named for their purpose.

Each stage takes its config object; the CLI builds one from flags (``dataclasses.replace`` on a preset).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: The base model's limit, special tokens included; the sectionizer never emits a longer chunk.
MAX_MODEL_TOKENS = 512


class Precision(StrEnum):
    """Numeric precision for encoding and training on the CPU."""

    AUTO = "auto"  # bf16 where the CPU has AMX or avx512_bf16, fp32 elsewhere
    BF16 = "bf16"
    FP32 = "fp32"


class Recipe(StrEnum):
    """Training recipes."""

    CARD = "card"  # the published model's recipe, reproduced exactly
    RETRIEVAL = "retrieval"  # the default: contrastive training on query-like anchors


@dataclass(frozen=True)
class CrawlConfig:
    """How the crawler fetches a site.

    Attributes:
        max_pages: Stop after this many HTML pages.
        delay_s: Minimum seconds between two requests to the host (robots.txt crawl-delay wins if larger).
        concurrency: Requests in flight at once.
        timeout_s: Per-request time limit (connect + read).
        retries: Attempts after the first for 429 and 5xx answers, with exponential back-off.
        max_bytes: Largest body read; a larger page is skipped.
        max_redirects: Longest redirect chain followed (a chain that revisits a URL stops at once).
        max_depth: Links followed from the start page before a URL counts as a trap.
        total_time_s: Wall-clock budget of the whole crawl; what is left is skipped as "crawl-deadline".
        user_agent: Sent with every request and matched against robots.txt.
        page_deadline_s: Whole-response time limit per request, so a server that drips bytes cannot
            hold a worker for longer (``timeout_s`` alone only bounds the gap between bytes).
        max_total_bytes: Byte budget of the whole crawl (bytes on the wire).
        max_per_pattern: Pages per URL pattern (path with digit runs folded, plus query keys): stops
            calendars and ``?page=N`` chains that never end.
        max_query_params: URLs with more query parameters than this are skipped as traps.
        max_url_length: Longer URLs are skipped as traps.
        backoff_s: First retry wait; doubles per attempt unless Retry-After says otherwise.
        max_backoff_s: Longest wait before one retry (a larger Retry-After is capped to this).
    """

    max_pages: int = 500
    delay_s: float = 0.5
    concurrency: int = 4
    timeout_s: float = 20.0
    retries: int = 3
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    max_depth: int = 20
    total_time_s: float = 3600.0
    user_agent: str = "sitetune/0.1 (+https://github.com/sitetune/sitetune)"
    page_deadline_s: float = 60.0
    max_total_bytes: int = 500_000_000
    max_per_pattern: int = 100
    max_query_params: int = 4
    max_url_length: int = 500
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0


@dataclass(frozen=True)
class ChunkingConfig:
    """How the sectionizer splits sections into chunks.

    Attributes:
        max_tokens: Longest chunk, counted with the base model's tokenizer, special tokens included.
        heading_tags: Tags that start a new section.
    """

    max_tokens: int = MAX_MODEL_TOKENS
    heading_tags: tuple[str, ...] = ("h2", "h3", "h4")


@dataclass(frozen=True)
class EncoderConfig:
    """How texts become vectors.

    Attributes:
        backend: Encoder backend name (see :mod:`sitetune.encode`).
        precision: Numeric precision on the CPU.
        batch_size: Texts per forward pass (batches are sorted by length).
        threads: Torch intra-op threads; 0 keeps torch's default.
    """

    backend: str = "torch"
    precision: Precision = Precision.AUTO
    batch_size: int = 32
    threads: int = 0


@dataclass(frozen=True)
class SearchConfig:
    """How hybrid retrieval fuses dense and BM25 rankings.

    Attributes:
        k: Results returned.
        rrf_k: The reciprocal-rank-fusion constant (60 in Cormack et al. 2009).
        dense_weight: Weight of the dense ranking in the fusion.
        bm25_weight: Weight of the BM25 ranking in the fusion.
        candidates: Depth of each ranking fed to the fusion.
        program_boost: Extra fused score for sections of a programme the query names.
    """

    k: int = 5
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 100
    program_boost: float = 0.02


@dataclass(frozen=True)
class AnswerConfig:
    """How extractive answers are built.

    Attributes:
        sections: Top sections the answer draws sentences from.
        max_sentences: Sentences in the answer.
        min_score: Below this best sentence-question cosine the answer is "not found in the pages".
    """

    sections: int = 5
    max_sentences: int = 4
    min_score: float = 0.35
