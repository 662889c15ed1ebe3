"""``sitetune answer``: a cited answer from the pages."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer

from sitetune.answer.llm import LLMConfig
from sitetune.cli import common
from sitetune.config import MAX_RESULTS, AnswerConfig, EncoderConfig, SearchConfig

if TYPE_CHECKING:
    from sitetune.answer import Answer

_ENCODER = EncoderConfig()  # flag defaults come from the configs
_SEARCH = SearchConfig()


@common.handle_errors
def answer(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    store: common.StoreOption,
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_RESULTS, help="Sections listed with the answer.")] = (
        AnswerConfig().sections
    ),
    page: Annotated[str | None, typer.Option("--page", help="Only sections of this page.")] = None,
    model: common.QueryModelOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    llm_url: common.LlmUrlOption = None,
    llm_model: common.LlmModelOption = None,
    llm_key_env: common.LlmKeyEnvOption = LLMConfig.api_key_env,
    llm_timeout: common.LlmTimeoutOption = LLMConfig.timeout_s,
    min_score: common.MinScoreOption = None,
    sentence_weight: common.SentenceWeightOption = _SEARCH.sentence_weight,
    rerank: common.RerankOption = _SEARCH.rerank,
    backend: common.BackendOption = common.DEFAULT_BACKEND,
    fallback: common.FallbackOption = _ENCODER.fallback,
) -> None:
    """Answer QUESTION from the indexed pages, each sentence cited [n]; says so when the pages don't."""
    from sitetune.api import answer_question, check_question

    check_question(question)  # before the model loads
    result = answer_question(
        store,
        question,
        k=k,
        page=page,
        model=model,
        encoder_config=dataclasses.replace(_ENCODER, backend=backend, fallback=fallback),
        search_config=dataclasses.replace(_SEARCH, sentence_weight=sentence_weight, rerank=rerank),
        answer_config=common.answer_config(min_score),
        llm=common.llm_config(llm_url, llm_model, llm_key_env, llm_timeout),
    )
    if json_out:
        common.print_json({"question": question, **dataclasses.asdict(result)})
    else:
        _print_answer(result)


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
    """Add ``answer`` to ``app``."""
    app.command("answer")(answer)
