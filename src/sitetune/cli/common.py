"""Shared CLI plumbing: options several commands spell the same way, errors to exit codes, printing JSON."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from sitetune.config import AnswerConfig, Backend, EncoderConfig
from sitetune.errors import InputError, SitetuneError

if TYPE_CHECKING:
    from sitetune.answer import LLMConfig

P = ParamSpec("P")
R = TypeVar("R")


#: ``--store``: where an index lives.
StoreOption = Annotated[
    str,
    typer.Option(
        "--store", help="Store: a directory (embedded, default), milvus://PATH.db (Milvus Lite) or http://HOST:19530"
    ),
]
#: ``--model`` for querying: the store's own model unless given.
QueryModelOption = Annotated[
    str | None, typer.Option("--model", help="Query model; default the one the store was built with.")
]
#: ``--backend``: which encoder backend to embed with (see docs/encode.md).
BackendOption = Annotated[
    Backend,
    typer.Option("--backend", help="Encoder backend (auto: the fastest available whose quality holds)"),
]
#: ``--backend``'s default: the encoder config's.
DEFAULT_BACKEND = Backend(EncoderConfig().backend)
#: ``--fallback-to-torch``: use torch when the backend's export is missing or broken, instead of failing.
FallbackOption = Annotated[
    bool,
    typer.Option("--fallback-to-torch", help="Encode with torch if the backend's export is missing or broken"),
]



LlmUrlOption = Annotated[
    str | None,
    typer.Option(
        "--llm-url", help="OpenAI-compatible API base (e.g. http://localhost:8080/v1) for generative answers."
    ),
]
LlmModelOption = Annotated[str | None, typer.Option("--llm-model", help="Model name sent to --llm-url.")]
LlmKeyEnvOption = Annotated[
    str, typer.Option("--llm-key-env", help="Environment variable holding the LLM API key.")
]
LlmTimeoutOption = Annotated[
    float, typer.Option("--llm-timeout", min=0.1, help="Seconds to wait for the LLM.")
]
MinScoreOption = Annotated[
    float | None,
    typer.Option(
        "--min-score", help="Best-sentence score below which the answer is 'not found' (default from config)."
    ),
]
RerankOption = Annotated[
    bool,
    typer.Option("--rerank/--no-rerank", help="Rerank the top candidates with the model folder's reranker."),
]
#: ``--rerank-depth``: fused candidates the reranker reads.
RerankDepthOption = Annotated[
    int, typer.Option("--rerank-depth", min=1, help="Fused candidates the reranker reads.")
]
#: ``--rerank-weight``: the reranker's weight in the fusion (0, the default, leaves the fused order).
RerankWeightOption = Annotated[
    float,
    typer.Option(
        "--rerank-weight",
        min=0.0,
        help="Weight of the reranker's order in the fusion; 0 leaves the fused order (see docs/rerank.md).",
    ),
]

#: ``--sentence-weight``: the second stage's weight in the fusion (each candidate read by its best sentence).
SentenceWeightOption = Annotated[
    float,
    typer.Option(
        "--sentence-weight",
        min=0.0,
        help="Weight of the top candidates ranked by their best sentence; 0 leaves the fused order. The "
        "default is chosen for tuned models: serve a base-model store with 0 (see docs/search.md).",
    ),
]


def llm_config(url: str | None, model: str | None, key_env: str, timeout: float) -> LLMConfig | None:
    """The LLM settings the ``--llm-*`` flags give, or ``None`` for extractive answers."""
    from sitetune.answer import LLMConfig

    if url is None and model is None:
        return None
    if url is None or model is None:
        raise InputError("generative mode needs both --llm-url and --llm-model")
    config = LLMConfig(url=url, model=model, api_key_env=key_env, timeout_s=timeout)
    _ = config.endpoint  # a malformed URL fails now, before the model loads
    return config


def answer_config(min_score: float | None) -> AnswerConfig:
    """The answer settings, with ``--min-score`` applied when given."""
    config = AnswerConfig()
    return config if min_score is None else dataclasses.replace(config, min_score=min_score)

def _default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (dataclasses, paths and arrays converted)."""
    sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False, indent=2) + "\n")


#: Library errors name parameters in code style (`overwrite=True`, `model`); the CLI says the flag instead.
PARAMETER_FLAGS = {
    "corpus": "--corpus",
    "fallback": "--fallback-to-torch",
    "holdout_pages": "--holdout-pages",
    "model": "--model",
    "overwrite": "--overwrite",
    "prefix": "--prefix",
    "recipe": "--recipe",
    "resume": "--resume",
    "split_from": "--split-from",
    "start": "--site",
}
_PARAMETER = re.compile(r"`(\w+)(?:=([^`\s]*))?`")


def as_flags(message: str) -> str:
    """``message`` with each parameter it names in backticks written as the command-line flag.

    For example "pass `overwrite=True`" becomes "pass --overwrite" and "`model=runs/m`" becomes
    "--model runs/m"; a name without a flag stays as it is.
    """

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in PARAMETER_FLAGS:
            return match.group(0)
        option = PARAMETER_FLAGS[name]
        return option if value in (None, "", "True") else f"{option} {value}"

    return _PARAMETER.sub(flag, message)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn sitetune's and the OS's errors into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SitetuneError as exc:
            raise fail(as_flags(str(exc))) from None
        except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise fail(as_flags(str(exc))) from None
        except OSError as exc:
            raise fail(f"I/O error: {exc}") from None

    return wrapper
