"""All configuration in one place: frozen dataclasses, string enums, and presets named for their purpose.

Each stage takes its config object; the CLI builds one from flags (``dataclasses.replace`` on a preset).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: The base model's limit, special tokens included; the sectionizer never emits a longer chunk.
MAX_MODEL_TOKENS = 512
#: The longest question search and answer accept, on the command line and over HTTP (characters).
MAX_QUESTION_CHARS = 1000
#: The most sections one search or answer returns.
MAX_RESULTS = 50
#: The most skipped URLs a crawl report lists. A site with millions of URLs (calendars, faceted search)
#: would otherwise give a report of gigabytes; the counts per reason stay exact past it.
MAX_SKIPPED_LISTED = 1_000


class Precision(StrEnum):
    """Numeric precision for encoding and training on the CPU."""

    AUTO = "auto"  # bf16 where the CPU has AMX or avx512_bf16, fp32 elsewhere
    BF16 = "bf16"
    FP32 = "fp32"


class Backend(StrEnum):
    """Encoder backends (see :mod:`sitetune.encode` and docs/encode.md)."""

    AUTO = "auto"  # openvino-int8 if exported, else openvino (auto-exported), else torch
    TORCH = "torch"
    OPENVINO = "openvino"
    OPENVINO_INT8 = "openvino-int8"
    STATIC = "static"
    SENTENCE_TRANSFORMERS = "sentence-transformers"


class ExportBackend(StrEnum):
    """The backends ``sitetune export`` writes files for."""

    OPENVINO = "openvino"
    OPENVINO_INT8 = "openvino-int8"
    STATIC = "static"


class Bm25Fields(StrEnum):
    """What BM25 matches for a section: its page name, its title and its text, or less."""

    PAGE_TITLE_TEXT = "page+title+text"
    TITLE_TEXT = "title+text"
    TEXT = "text"


#: What the BM25 index matches by default: page name, section title and text. Names and titles carry the
#: words questions use ("Deadlines", "Supply Chain Management"): BM25 alone scores nDCG@10 0.478 on the
#: reference questions with them, 0.447 with the title only, 0.416 with the text only.
DEFAULT_BM25_FIELDS = Bm25Fields.PAGE_TITLE_TEXT.value


class Recipe(StrEnum):
    """Training recipes."""

    CARD = "card"  # the published model's recipe, reproduced exactly
    RETRIEVAL = "retrieval"  # the default: contrastive training on query-like anchors


class RerankerKind(StrEnum):
    """Second-stage rerankers (:mod:`sitetune.rerank`)."""

    CROSS_ENCODER = "cross-encoder"  # a cross-encoder trained on the site, saved in MODEL/reranker
    LATE_INTERACTION = "late-interaction"  # token-level max-sim with the bi-encoder's own token vectors


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
        allow_private_addresses: Also fetch hosts whose names resolve to loopback, private, link-local
            or other non-public addresses (an intranet site). Off by default: a page or a redirect must
            not make the crawler read this machine's or its network's services. A start URL whose host is
            such an address itself (``http://127.0.0.1:8000/``) is fetched either way. See
            docs/security.md.
        max_skipped_listed: Most skipped URLs the crawl report lists (``skipped``); past it the report keeps
            exact counts per reason (``skip_reasons``, ``skipped_total``) and says the list is truncated.
        sitemaps: Also queue the URLs the site's sitemaps list (robots.txt ``Sitemap:`` lines, else
            ``/sitemap.xml``; sitemap indexes followed), and take a cached page without any request when its
            ``<lastmod>`` is older than the cached copy (:mod:`sitetune.crawl.sitemap`). ``sitetune
            refresh`` turns it on.
        dead_link_ttl_s: Seconds a link that answered 404 or 410 stays dead in the page cache: a later crawl
            with the same cache does not request it again until then (it is reported as the same
            ``http-404``/``http-410`` skip, and counted in ``dead_not_rechecked``). The start URL and the
            URLs the site's sitemaps list are always requested. 0: every dead link is requested every time.
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
    allow_private_addresses: bool = False
    max_skipped_listed: int = MAX_SKIPPED_LISTED
    sitemaps: bool = False
    dead_link_ttl_s: float = 7 * 86_400.0


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
        backend: Encoder backend name (see :mod:`sitetune.encode`): auto, torch, openvino, openvino-int8,
            static, sentence-transformers.
        precision: Numeric precision on the CPU.
        batch_size: Texts per forward pass (batches are sorted by length).
        threads: Compute threads (torch and OpenVINO); 0 means one per physical core.
        fallback: Where the backend's export is missing or broken (or its package is not installed),
            encode with torch instead of failing. Off by default: a silent fallback changes speed.
    """

    backend: str = Backend.AUTO.value
    precision: Precision = Precision.AUTO
    batch_size: int = 32
    threads: int = 0
    fallback: bool = False


@dataclass(frozen=True)
class SearchConfig:
    """How hybrid retrieval fuses dense and BM25 rankings.

    Attributes:
        k: Results returned.
        rrf_k: The reciprocal-rank-fusion constant (60 in Cormack et al. 2009; 5 tuned here).
        dense_weight: Weight of the dense ranking in the fusion.
        bm25_weight: Weight of the BM25 ranking in the fusion.
        candidates: Depth of each ranking fed to the fusion.
        program_boost: Extra fused score for sections of a programme the query names (a rank-1 dense
            vote is ``dense_weight / (rrf_k + 1)``).
        sentence_weight: Weight of the second stage's ranking (the top ``sentence_depth`` candidates by
            their best sentence, :mod:`sitetune.search.sentence_stage`) in the fusion; 0 turns it off.
        sentence_depth: First-stage candidates the second stage reads.
        rerank: Rerank the top ``rerank_depth`` fused candidates with the model folder's reranker when it
            has one (``sitetune search --no-rerank`` turns it off).
        rerank_depth: Fused candidates the reranker reads.
        rerank_weight: Weight of the reranker's order of those candidates as another voter in the fusion;
            0 leaves the fused order as it is (benchmarks/rerank.py measures the choice).
        correct_spelling: Map the question's unknown words to the site's words before ranking
            ("requirments" → "requirements"; :mod:`sitetune.search.spelling`).
        abbreviations: Let the abbreviations the site uses for its pages ("SCM", "IBP") name them for the
            programme boost (:func:`sitetune.search.programs.abbreviations`).
        intent_weight: When the query names a page built on the site's section template (a programme
            page, :func:`sitetune.sitevocab.template_pages`), the weight of two more voters: that page's
            sections ranked, dense and BM25, by the query without the words naming it ("what bachelor do
            I need for"), times ``dense_weight`` and ``bm25_weight``. 0 turns it off.
        signpost_penalty: Taken from a section's fused score times its signpost probability (an
            introduction or teaser that names the topic without the fact, :mod:`sitetune.sectionkind`), so
            the section it points to ranks above it. 0 turns it off.
        scope_penalty: Taken from the fused score of a section found only on one programme's page (a page
            built on the site's section template) when the question names no programme, so the page that
            answers for every programme comes first. 0 turns it off.
        testimonial_penalty: Taken from the fused score of a section that tells someone's own story (a
            student's quote, :func:`sitetune.sectionkind.first_person_share`), so a section that answers for
            everyone ranks above a story on the same topic. 0 turns it off.
        reranker_model: A cross-encoder folder (or a Hub id in the Hugging Face cache) to rerank with instead
            of the model folder's own (``MODEL/reranker``); ``None`` uses the model folder's, if any.
    """

    k: int = 5
    # A small RRF constant lets rank 1 count far more than rank 10, and BM25 a little below dense
    # (benchmarks/fusion.py measures the choice on the development half of each site's questions).
    rrf_k: int = 5
    dense_weight: float = 1.0
    bm25_weight: float = 0.75
    candidates: int = 100
    program_boost: float = 0.05
    # Sentence max-sim on the top 5, chosen on the development half of both sites' questions with the
    # default tuned models (benchmarks/rerank.py; docs/rerank.md, "What was measured").
    sentence_weight: float = 0.5
    sentence_depth: int = 5
    rerank: bool = True
    rerank_depth: int = 10
    rerank_weight: float = 0.0
    correct_spelling: bool = True
    abbreviations: bool = True
    # Chosen on the development half of both sites' questions (benchmarks/fusion.py --intent-weights).
    intent_weight: float = 0.5
    # Chosen on the development half of both sites' questions (benchmarks/section_signals.py).
    signpost_penalty: float = 0.05
    scope_penalty: float = 0.06
    testimonial_penalty: float = 0.1
    reranker_model: str | None = None


@dataclass(frozen=True)
class AnswerConfig:
    """How answers are built.

    Attributes:
        sections: Top sections the answer draws sentences from.
        max_sentences: Most pieces quoted (sentences, list items, rows: :mod:`sitetune.answer.passages`).
        min_score: Below this best sentence score the answer is "not found in the pages": chosen on the
            development half of two real sites' questions with tuned models, reported on the other half
            (benchmarks/answer_threshold.py; docs/serve.md).
        lexical_weight: Weight of the question-word overlap added to a sentence's cosine.
        margin: Pieces of the best piece's section scoring more than this below the best one are left out.
        second_margin: Another section is quoted only for a piece scoring within this of the best one (and
            saying something not already quoted).
        top_hit_bonus: Added to the pieces of search's first section when choosing what to quote (not to
            the score compared with ``min_score``). margin, second_margin, top_hit_bonus and max_sentences
            were chosen on the development half of two real sites' questions (benchmarks/answers.py).
    """

    sections: int = 5
    max_sentences: int = 6
    min_score: float = 0.39
    lexical_weight: float = 0.1
    margin: float = 0.25
    second_margin: float = 0.15
    top_hit_bonus: float = 0.25


@dataclass(frozen=True)
class ServeConfig:
    """How ``sitetune serve`` listens and what it accepts.

    Attributes:
        host: Interface to bind (loopback by default: expose it through a reverse proxy).
        port: TCP port.
        max_body_bytes: Largest request body, counted as it streams in (chunked uploads too); larger is 413.
        max_in_flight: Searches and answers admitted at once (running or queued for the model); more get
            an immediate 503 with Retry-After instead of queueing until clients time out.
        cors_origins: Origins allowed cross-origin access; empty means no CORS headers at all.
        workers: Server processes sharing the listening socket, each with its own encoder (an embedded
            store's vectors are memory-mapped, so they are in memory once); ``max_in_flight`` is per worker.
        pin_workers: With several workers and at least as many CPUs, give each worker its own share of the
            CPUs (measured: two unpinned workers on 2 cores served fewer requests than one pinned worker).
        keep_alive_s: Seconds an idle keep-alive connection is kept open after a response (uvicorn's
            ``timeout_keep_alive``).
        header_timeout_s: Seconds a connection has, from opening or from its last response, to send a whole
            request (headers and body); a client that is slower (an idle socket, headers sent a byte at a
            time) is disconnected. uvicorn has no such timeout of its own
            (:class:`sitetune.serve.connections.GuardedH11Protocol` adds it).
        max_connections: Open connections and running requests per process (uvicorn's
            ``limit_concurrency``); past it new requests get uvicorn's plain 503.
        backlog: Connections the kernel queues before the server accepts them; ``None``: uvicorn's 2048
            for one process, ``max(64, max_in_flight * workers)`` for several workers.
        docs: Serve Swagger UI at ``/docs`` and ReDoc at ``/redoc`` (they load scripts from a CDN);
            ``/openapi.json`` is served either way.
        allowed_hosts: Host header values accepted (Starlette's ``TrustedHostMiddleware``; ``*.example.org``
            patterns, ``*`` for any); others get 400. Empty: :func:`sitetune.serve.run_server` allows the
            bound host, ``localhost``, ``127.0.0.1`` and ``[::1]`` (:func:`default_allowed_hosts`), and
            :func:`sitetune.serve.create_app` alone checks nothing.
        feedback_per_minute: ``POST /feedback`` requests one client address may send per minute (a token
            bucket per address, refilled at this rate); more get 429.
        feedback_burst: Feedback requests a client may send at once before the per-minute rate applies.
        rate_limit: ``GET /search`` and ``POST /answer`` requests one client may send per second (a token
            bucket per client, :mod:`sitetune.serve.ratelimit`); more get an immediate 429 with Retry-After,
            before any parsing or model work. ``0``: no limit. Per process (``--workers N``: N times it).
        rate_burst: Such requests a client may send back to back before ``rate_limit`` applies.
        max_llm_calls: In LLM mode, answers waiting on the endpoint at once (per worker); another gets an
            immediate 503 with Retry-After. They wait outside the model lock and do not count against
            ``max_in_flight``.
        max_query_chars: Longest ``q`` of ``/search`` and ``question`` of ``/answer`` accepted (characters);
            longer is 422 naming the field and the limit. The cost of encoding and ranking grows with the
            query, and model work is serialised, so this bounds how long one request holds everyone else
            up. At most :data:`MAX_QUESTION_CHARS` (the library's limit).
        max_query_words: Most whitespace-separated words in such a query; more is 422 likewise.
        metrics: Serve Prometheus metrics at ``GET /metrics`` (:mod:`sitetune.serve.metrics`).
        log_format: ``"text"`` (Python's and uvicorn's default lines) or ``"json"`` (one JSON object a line,
            with a line per request; :mod:`sitetune.serve.logformat`).
        reload_poll_s: Seconds between looks at the store's ``CURRENT`` pointer; a new generation is loaded
            beside the served one and swapped in (:mod:`sitetune.serve.reload`). ``0``: only on SIGHUP or
            ``POST /admin/reload``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 16_384
    max_in_flight: int = 32
    cors_origins: tuple[str, ...] = ()
    workers: int = 1
    pin_workers: bool = True
    keep_alive_s: int = 5
    header_timeout_s: float = 10.0
    max_connections: int = 500
    backlog: int | None = None
    docs: bool = False
    allowed_hosts: tuple[str, ...] = ()
    feedback_per_minute: int = 30
    feedback_burst: int = 10
    # Far above what a person at the page sends (one request a question), so only scripts meet it.
    rate_limit: float = 20.0
    rate_burst: int = 100
    max_llm_calls: int = 4
    # Real questions are far shorter: the longest of the packaged question sets is 84 characters, 15 words.
    max_query_chars: int = 300
    max_query_words: int = 60
    metrics: bool = True
    log_format: str = "text"
    reload_poll_s: float = 2.0


#: Host names a server bound to a wildcard address (``0.0.0.0``, ``::``) or to loopback always accepts.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def default_allowed_hosts(host: str) -> tuple[str, ...]:
    """The Host header values a server bound to ``host`` accepts when no ``allowed_hosts`` are given.

    The bound address itself (an IPv6 address in brackets, as it appears in a Host header) and the loopback
    names; for a wildcard address (``0.0.0.0``, ``::``, empty) the loopback names only, since the names
    clients use for such a server cannot be known here (name them with ``--allowed-host``).
    """
    wildcard = host in ("", "0.0.0.0", "::")
    bound = () if wildcard else (f"[{host}]" if ":" in host else host.lower(),)
    return tuple(dict.fromkeys((*bound, *LOOPBACK_HOSTS)))


@dataclass(frozen=True)
class PairsConfig:
    """How a corpus becomes training pairs.

    Attributes:
        recipe: Which recipe's pairs to build.
        test_size: Card recipe: fraction of rows held out (scikit-learn ``train_test_split``).
        split_seed: Seed of the row split (card) or the page split (retrieval).
        negatives_per_page: Card recipe: random cross-page pairs per page, at most the page's row count.
        seed: Seed of every other random choice (negatives, cloze sentences).
        holdout_pages: Retrieval recipe: fraction of pages held out for evaluation (0 trains on every page).
        title_anchors: Retrieval recipe: "<page>: <section>" anchors per chunk, one per page it appears on.
        question_anchors: Retrieval recipe: templated questions per chunk (from its section type and page).
        cloze_anchors: Retrieval recipe: inverse-cloze sentences per chunk.
        cloze_remove_prob: Chance that a cloze sentence is cut out of its positive (else left in).
        hard_negatives: Retrieval recipe: mine one hard negative per pair with the base model.
        relative_margin: Hard negatives score at most ``(1 - margin)`` times the positive's score.
    """

    recipe: Recipe = Recipe.RETRIEVAL
    test_size: float = 0.2
    split_seed: int = 42
    negatives_per_page: int = 3
    seed: int = 42
    holdout_pages: float = 0.0
    title_anchors: int = 2
    question_anchors: int = 2
    cloze_anchors: int = 2
    cloze_remove_prob: float = 0.5
    hard_negatives: bool = False
    relative_margin: float = 0.05


@dataclass(frozen=True)
class TrainConfig:
    """How a model is fine-tuned (one preset per recipe; the CLI ``replace``s fields from flags).

    Attributes:
        recipe: The recipe this config belongs to.
        loss: ``cosine_mse`` (CosineSimilarityLoss), ``sorted_cosine_mse`` (the same loss embedded in
            length-sorted mini-batches), ``sorted_mnrl`` (MNRL embedded in length-sorted
            mini-batches, see :mod:`sitetune.train.losses`), ``mnrl`` or ``cached_mnrl``.
        batch_size: Examples per optimizer step (per process).
        mini_batch_size: Sorted and cached MNRL: rows per forward pass (padding and memory, not maths).
        epochs: Passes over the pairs (``max_steps`` wins when set).
        step_cap: Most steps the epochs may plan (``None``: no cap), so a large site trains for bounded
            time; the run's length is a function of the pairs and this config only
            (:func:`sitetune.train.steps.plan_steps`).
        learning_rate: Peak learning rate.
        warmup_ratio: Fraction of steps spent warming the learning rate up linearly.
        weight_decay: AdamW weight decay.
        scheduler: A transformers scheduler name (``linear``, ``constant_with_warmup``...).
        seed: Seed of the trainer (weights init of new heads, dropout, data order).
        max_seq_length: Token limit of the model while training (and saved with it).
        max_steps: Stop after this many optimizer steps (``None``: run the epochs, up to ``step_cap``).
        max_minutes: Optional cap: stop after this much training time even before the planned step (the
            linear schedule is rescaled to end there); a run it cuts short is reported as such. Off in
            both presets: a time budget makes the model depend on how busy the machine is.
        precision: bf16 autocast or fp32.
        checkpoint_every: Save a resumable checkpoint every this many steps.
        logging_steps: Loss logged (and put in the model card) every this many steps: the mean over the
            window, as the transformers trainer logs it.
        logging_at_least: A short run logs at least this many times (the cadence shrinks to fit); ``None``
            keeps ``logging_steps`` exactly, the published card's cadence.
        logging_first_step: Also log step 1 (the card recipe does not: its table starts at step 500).
        page_cap: Retrieval sampler: rows of one page allowed in a batch.
        scale: MNRL similarity scale (inverse temperature).
        budget_clock: What ``max_minutes`` counts: ``wall`` time, or ``cpu`` time divided by the torch
            threads (the same compute as wall time on idle cores; fair when other jobs share the CPU).
        save_max_seq_length: Token limit saved with the model for inference (``None``: the training one).
        threads: Torch compute threads while training; 0 keeps torch's default (one per logical CPU). On a
            machine shared with other jobs, fewer threads than CPUs avoids the stalls of threads waiting for
            a descheduled partner (measured here: 30–100 s/step with two threads under load, 5 s/step with
            one); on idle cores more threads are faster.
    """

    recipe: Recipe
    loss: str
    batch_size: int
    epochs: float
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    scheduler: str
    seed: int = 42
    max_seq_length: int = MAX_MODEL_TOKENS
    max_steps: int | None = None
    step_cap: int | None = None
    max_minutes: float | None = None
    precision: Precision = Precision.AUTO
    checkpoint_every: int = 500
    logging_steps: int = 500
    logging_at_least: int | None = 4
    logging_first_step: bool = True
    mini_batch_size: int = 32
    page_cap: int = 1
    scale: float = 20.0
    budget_clock: str = "wall"
    save_max_seq_length: int | None = None
    threads: int = 0


class RerankInit(StrEnum):
    """Where the trained cross-encoder's encoder weights start."""

    BASE = "base"  # the packaged all-MiniLM-L6-v2
    BI_ENCODER = "bi-encoder"  # the tuned bi-encoder just trained (it already knows the site's words)


@dataclass(frozen=True)
class RerankTrainConfig:
    """How ``sitetune train --reranker`` trains the cross-encoder (:mod:`sitetune.rerank.train`).

    Attributes:
        steps: Optimizer steps.
        batch_size: Anchors per step; each is scored against its positive and ``negatives`` hard negatives.
        in_page_negatives: Hard negatives from the positive's own page (the tuned bi-encoder's nearest
            sections of that page): "the right section of the right page".
        cross_page_negatives: Hard negatives from other pages (the bi-encoder's nearest elsewhere, below
            ``(1 - relative_margin)`` times the positive's score, which drops most unlabelled answers).
        in_batch_negatives: Other anchors' positives added as negatives (listwise softmax over them all).
        learning_rate: Peak learning rate (linear decay after ``warmup_ratio`` of the steps).
        warmup_ratio: Fraction of steps warming the learning rate up.
        max_length: Token limit of question + section.
        init: Starting weights of the encoder (the scoring head is new either way).
        relative_margin: See ``cross_page_negatives``.
        seed: Seed of the anchor sample, the head's initialisation and the data order.
        mini_batch_size: Question/section pairs per forward pass (the loss is the same, its gradients are
            cached: sentence-transformers' ``CachedMultipleNegativesRankingLoss``); a step reads
            ``batch_size`` x (1 + negatives) pairs, which in one pass of 256 tokens peaked at 9 GB (16: 3.7 GB,
            1.5x the time; benchmarks/rerank_memory.py). ``None`` reads them in one pass.
    """

    steps: int = 40
    batch_size: int = 16
    in_page_negatives: int = 2
    cross_page_negatives: int = 1
    in_batch_negatives: int = 1
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    max_length: int = 256
    init: RerankInit = RerankInit.BASE
    relative_margin: float = 0.05
    seed: int = 42
    mini_batch_size: int | None = 16


#: The published model's recipe, reproduced exactly (CosineSimilarityLoss, batch 16, 5 epochs, lr 5e-5).
CARD_RECIPE = TrainConfig(
    recipe=Recipe.CARD,
    loss="sorted_cosine_mse",  # CosineSimilarityLoss in length-sorted mini-batches: same maths, half the padding
    mini_batch_size=8,
    batch_size=16,
    epochs=5,
    learning_rate=5e-5,
    warmup_ratio=0.0,
    weight_decay=0.0,
    scheduler="linear",
    max_seq_length=512,
    logging_at_least=None,  # every 500 steps exactly, from step 500: the published training log's rows
    logging_first_step=False,
)

#: The default: in-batch-negatives contrastive training on query-like anchors, sized for minutes on a CPU.
#: Its length is planned from the pairs, never from the clock: 2 epochs, at most 80 steps (the cap is what a site
#: the size of the reference corpus gets; the sample site trains 2 epochs). Measured on the reference corpus, 2
#: lightly loaded cores: 80 steps at 6.4 s/step, 8.7 minutes for the whole command; a machine loaded by other
#: jobs costs 2-4x that (docs/train.md, benchmarks/results/train_step_trainer.md).
RETRIEVAL_RECIPE = TrainConfig(
    recipe=Recipe.RETRIEVAL,
    loss="sorted_mnrl",  # MNRL embedded in length-sorted mini-batches: same maths, less padding, one forward
    batch_size=64,
    epochs=2,
    step_cap=80,
    learning_rate=5e-5,
    warmup_ratio=0.1,
    weight_decay=0.01,
    scheduler="linear",
    max_seq_length=256,
    save_max_seq_length=256,
    checkpoint_every=20,
    logging_steps=5,
    mini_batch_size=16,
    page_cap=1,
)

CARD_PAIRS = PairsConfig(recipe=Recipe.CARD)
RETRIEVAL_PAIRS = PairsConfig(recipe=Recipe.RETRIEVAL)
