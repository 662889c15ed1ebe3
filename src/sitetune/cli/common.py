"""Shared CLI plumbing: options several commands spell the same way, errors to exit codes, printing JSON."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from sitetune.config import AnswerConfig, Backend, EncoderConfig, Precision
from sitetune.errors import InputError, SitetuneError

if TYPE_CHECKING:
    from sitetune.answer import LLMConfig
    from sitetune.siteconfig import SiteConfig

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
#: The crawl's network limits (crawl, refresh); defaults are ``CrawlConfig``'s.
CrawlTimeoutOption = Annotated[float, typer.Option(min=0.1, help="Seconds without data before a request fails")]
CrawlRetriesOption = Annotated[int, typer.Option(min=0, max=10, help="Retries on 429, 5xx and connection errors")]
CrawlMaxBytesOption = Annotated[
    int, typer.Option(min=1024, help="Largest page or sitemap in bytes (after decompression)")
]
CrawlMaxTimeOption = Annotated[float, typer.Option(min=1.0, help="Wall-clock budget of the crawl in seconds")]
CrawlDeadLinkTtlOption = Annotated[
    float,
    typer.Option(
        "--dead-link-ttl",
        min=0.0,
        help="Seconds a link that answered 404/410 is not requested again by a crawl with the same page cache "
        "(the start URL and sitemap URLs always are); 0: re-check every time",
    ),
]
#: ``--precision`` of the encoder that embeds sections (index, refresh).
PrecisionOption = Annotated[Precision, typer.Option("--precision", help="auto: bf16 where the CPU has it")]
#: ``--batch-size`` of the encoder that embeds sections (index, refresh).
EncodeBatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass")]



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


#: ``--config``: a site configuration file; the flags given on the command line override what it sets.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Site configuration file (site.toml; see docs/config.md). Flags given here override it.",
        dir_okay=False,
    ),
]

T = TypeVar("T")


def given_flags(ctx: typer.Context) -> set[str]:
    """The parameters of the command that the user set (on the command line or through the environment).

    A config file fills in the others: their values here are only the defaults.
    """
    chosen = {"COMMANDLINE", "ENVIRONMENT"}  # by name: typer's vendored click has its own enum class
    return {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", None) in chosen}


#: A flag parameter's place in a config file: (table, key), or (table, key, conversion to the flag's type).
FileKey = tuple[str, str] | tuple[str, str, Callable[[Any], object]]


def config_file_flags(
    keys: dict[str, FileKey], *, exclusive: tuple[tuple[str, str], ...] = ()
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Let a command's ``--config FILE`` (parameter ``config_file``) fill in the flags the user did not give.

    The command takes a ``ctx: typer.Context`` parameter, which tells which flags were given.

    Precedence: a flag given on the command line (or through its environment variable) > the file > the
    flag's default. The command body then builds its settings from its parameters as without a file, over
    the file's dataclasses for fields that have no flag (:func:`site_config`).

    Args:
        keys: Flag parameter -> where the file keeps it.
        exclusive: Pairs of parameters that exclude each other (``corpus``, ``site``): one given on the
            command line drops the other's value from the file.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            path, ctx = kwargs.get("config_file"), kwargs.get("ctx")
            if path is not None:
                if not hasattr(ctx, "get_parameter_source"):  # typer passes its click context, a base class
                    raise TypeError(f"{func.__name__} needs a `ctx: typer.Context` parameter for --config")
                site = site_config(Path(str(path)))
                assert site is not None
                given = given_flags(typing.cast(typer.Context, ctx))
                dropped = {b for a, b in exclusive if a in given} | {a for a, b in exclusive if b in given}
                for param, (table, key, *convert) in keys.items():
                    if param in given or param in dropped or not site.sets(table, key):
                        continue
                    value = site.value(table, key)
                    kwargs[param] = convert[0](value) if convert else value
            return func(*args, **kwargs)

        return wrapper

    return decorate


def site_config(path: Path | None) -> SiteConfig | None:
    """The checked site configuration file at ``path`` (``None``: no file)."""
    if path is None:
        return None
    from sitetune.siteconfig import load_site_config

    return load_site_config(path)


def llm_config(
    url: str | None, model: str | None, key_env: str, timeout: float, base: LLMConfig | None = None
) -> LLMConfig | None:
    """The LLM settings the ``--llm-*`` flags give, or ``None`` for extractive answers.

    ``base`` (a config file's ``[llm]``) supplies the settings that have no flag.
    """
    from sitetune.answer import LLMConfig

    if url is None and model is None:
        return None
    if url is None or model is None:
        raise InputError("generative mode needs both --llm-url and --llm-model")
    config = dataclasses.replace(
        base or LLMConfig(url=url, model=model), url=url, model=model, api_key_env=key_env, timeout_s=timeout
    )
    _ = config.endpoint  # a malformed URL fails now, before the model loads
    return config


def answer_config(min_score: float | None, base: AnswerConfig | None = None) -> AnswerConfig:
    """The answer settings (``base``, else the defaults), with ``--min-score`` applied when given."""
    config = base or AnswerConfig()
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
