"""``sitetune answer`` (a cited answer from the pages) and ``sitetune serve`` (the HTTP API and web page)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sitetune.cli.common import handle_errors, print_json
from sitetune.errors import InputError

if TYPE_CHECKING:
    from sitetune.answer import Answer, LLMConfig

MAX_QUESTION_CHARS = 1000

StoreOpt = Annotated[
    str, typer.Option("--store", help="Index store (directory, milvus://PATH.db or http://HOST:PORT).")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Query model; default the one the store was built with.")
]
LlmUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-url", help="OpenAI-compatible API base (e.g. http://localhost:8080/v1) for generative answers."
    ),
]
LlmModelOpt = Annotated[str | None, typer.Option("--llm-model", help="Model name sent to --llm-url.")]
LlmKeyEnvOpt = Annotated[
    str, typer.Option("--llm-key-env", help="Environment variable holding the LLM API key.")
]
LlmTimeoutOpt = Annotated[float, typer.Option("--llm-timeout", min=0.1, help="Seconds to wait for the LLM.")]
MinScoreOpt = Annotated[
    float | None,
    typer.Option(
        "--min-score", help="Best-sentence score below which the answer is 'not found' (default from config)."
    ),
]

RerankOpt = Annotated[
    bool,
    typer.Option("--rerank/--no-rerank", help="Rerank the top candidates with the model folder's reranker."),
]


def _llm_config(url: str | None, model: str | None, key_env: str, timeout: float) -> LLMConfig | None:
    from sitetune.answer import LLMConfig

    if url is None and model is None:
        return None
    if url is None or model is None:
        raise InputError("generative mode needs both --llm-url and --llm-model")
    config = LLMConfig(url=url, model=model, api_key_env=key_env, timeout_s=timeout)
    _ = config.endpoint  # a malformed URL fails now, before the model loads
    return config


def _answer_config(min_score: float | None) -> Any:
    from sitetune.config import AnswerConfig

    config = AnswerConfig()
    return config if min_score is None else dataclasses.replace(config, min_score=min_score)


def _print_answer(result: Answer) -> None:
    typer.echo(result.text)
    if result.found:
        typer.echo("\nSources:")
        for c in result.citations:
            typer.echo(f"  [{c.n}] {c.page_name} — {c.section_title}\n      {c.url}")
    elif result.hits:
        typer.echo("\nClosest sections:")
        for h in result.hits:
            typer.echo(f"  - {h.page_name} — {h.section_title}\n      {h.url}")
    if result.warning:
        typer.echo(f"\nwarning: {result.warning}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``answer`` and ``serve`` to ``app``."""

    @app.command("answer")
    @handle_errors
    def answer(
        question: Annotated[str, typer.Argument(help="The question, in quotes.")],
        store: StoreOpt,
        k: Annotated[int, typer.Option("--k", min=1, max=50, help="Sections listed with the answer.")] = 5,
        page: Annotated[str | None, typer.Option("--page", help="Only sections of this page.")] = None,
        model: ModelOpt = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
        llm_url: LlmUrlOpt = None,
        llm_model: LlmModelOpt = None,
        llm_key_env: LlmKeyEnvOpt = "SITETUNE_LLM_API_KEY",
        llm_timeout: LlmTimeoutOpt = 30.0,
        min_score: MinScoreOpt = None,
        rerank: RerankOpt = True,
    ) -> None:
        """Answer QUESTION from the indexed pages, each sentence cited [n]; says so when the pages don't."""
        from sitetune.answer import Answerer
        from sitetune.config import EncoderConfig, SearchConfig
        from sitetune.search import Searcher

        if not question.strip():
            raise InputError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InputError(f"the question is {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
        llm = _llm_config(llm_url, llm_model, llm_key_env, llm_timeout)
        with Searcher.open(store, EncoderConfig(), model, SearchConfig(rerank=rerank)) as searcher:
            result = Answerer(searcher, _answer_config(min_score), llm).answer(question, k=k, page=page)
        if json_out:
            print_json({"question": question, **dataclasses.asdict(result)})
        else:
            _print_answer(result)

    @app.command("serve")
    @handle_errors
    def serve(
        store: StoreOpt,
        host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
        model: ModelOpt = None,
        llm_url: LlmUrlOpt = None,
        llm_model: LlmModelOpt = None,
        llm_key_env: LlmKeyEnvOpt = "SITETUNE_LLM_API_KEY",
        llm_timeout: LlmTimeoutOpt = 30.0,
        min_score: MinScoreOpt = None,
        cors_origin: Annotated[
            list[str] | None,
            typer.Option("--cors-origin", help="Allow this origin cross-origin (repeatable)."),
        ] = None,
        max_body_bytes: Annotated[
            int, typer.Option("--max-body-bytes", min=1, help="Largest request body.")
        ] = 16_384,
        threads: Annotated[
            int, typer.Option("--threads", min=0, help="Torch threads (0: torch's default).")
        ] = 0,
        max_in_flight: Annotated[
            int, typer.Option("--max-in-flight", min=1, help="Requests admitted at once; more get 503.")
        ] = 32,
        backend: Annotated[
            str,
            typer.Option("--backend", help="Query encoder backend: auto, torch, openvino, ... (docs/encode.md)."),
        ] = "auto",
        access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
        warm: Annotated[
            bool, typer.Option("--warm/--no-warm", help="Encode all answer sentences before serving.")
        ] = True,
        query_log: Annotated[
            str | None,
            typer.Option(
                "--query-log",
                help="Append questions and thumbs up/down to this JSON-lines file (off by default; "
                "no IP addresses or cookies; 10 MiB files, 5 kept). `sitetune report` summarises it.",
            ),
        ] = None,
        rerank: RerankOpt = True,
    ) -> None:
        """Serve the search API and the web page for STORE (Ctrl-C stops)."""
        from sitetune.config import EncoderConfig, SearchConfig, ServeConfig
        from sitetune.serve import run_server

        config = ServeConfig(
            host=host,
            port=port,
            max_body_bytes=max_body_bytes,
            cors_origins=tuple(cors_origin or ()),
            max_in_flight=max_in_flight,
        )
        run_server(
            store,
            config,
            encoder=EncoderConfig(backend=backend, threads=threads),
            model=model,
            answer_config=_answer_config(min_score),
            llm=_llm_config(llm_url, llm_model, llm_key_env, llm_timeout),
            warm_answers=warm,
            access_log=access_log,
            query_log=query_log,
            log=typer.echo,
            search_config=SearchConfig(rerank=rerank),
        )
