"""One site's configuration file (``site.toml``): what to crawl, which models, the LLM, how to serve.

``sitetune run --config FILE``, ``sitetune serve --config FILE`` and ``sitetune refresh --config FILE`` read
it with :func:`load_site_config`. Each table maps onto the configuration dataclasses the commands already
use, key for field (:mod:`sitetune.config`, :class:`sitetune.pipeline.MainJobConfig`,
:class:`sitetune.answer.llm.LLMConfig`), so a key means what the field's docstring says; a command's flags
then override what the file sets (docs/config.md). Every problem (a TOML syntax error, an unknown table or
key, a wrong type or value) is an :class:`InputError` naming the file, the line and the key, and an unknown
key is answered with the nearest known one.

Secrets never go in the file: the LLM's API key stays in the environment, and ``[llm] api_key_env`` names
the variable.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from sitetune.answer.llm import LLMConfig
from sitetune.config import (
    AnswerConfig,
    Backend,
    CrawlConfig,
    EncoderConfig,
    RerankTrainConfig,
    SearchConfig,
    ServeConfig,
    TrainConfig,
)
from sitetune.crawl import default_crawl_config
from sitetune.durations import parse_duration
from sitetune.errors import InputError
from sitetune.pipeline import MAIN_JOB_RECIPE, MainJobConfig

T = TypeVar("T")

#: Keys whose string values are paths: a relative one is read from the configuration file's folder.
_PATH_KEYS = {("site", "workdir"), ("site", "corpus"), ("serve", "store"), ("serve", "query_log")}
#: Keys whose value is a folder, or else a name ("base", "sample", a Hub id, a URL): a relative value is
#: read from the file's folder when that folder exists there.
_FOLDER_OR_NAME_KEYS = {("site", "start"), ("model", "base"), ("model", "reranker"), ("serve", "model")}
#: String fields that take one of a few values.
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("encoder", "backend"): tuple(b.value for b in Backend),
    ("serve", "log_format"): ("text", "json"),
    ("train", "budget_clock"): ("wall", "cpu"),
}
#: Numeric fields that may be negative (every other number must be 0 or more).
_SIGNED = {("answer", "min_score")}
#: Keys that must not be in the file, with what to write instead.
_FORBIDDEN = {
    ("llm", "api_key"): "an API key does not belong in a file: put it in an environment variable and name "
    "the variable with api_key_env (default OPENAI_API_KEY)",
}


@dataclass(frozen=True)
class SiteFields:
    """``[site]``: what the site is and where the main job writes.

    Attributes:
        start: What to crawl: an http(s) start URL, a site folder, or ``"sample"`` (the bundled sample site).
        prefix: Only URLs under this prefix are crawled (default: the start URL's folder; URLs only).
        public_base: Base URL the records carry instead of the crawled origin (a mirror of the real site).
        workdir: Folder for the corpus, model, store and reports.
        corpus: A corpus file to use instead of crawling (then ``start`` must not be given).
    """

    start: str = MainJobConfig.start
    prefix: str | None = None
    public_base: str | None = None
    workdir: Path = MainJobConfig.workdir
    corpus: Path | None = None


@dataclass(frozen=True)
class ScheduleFields:
    """The schedule keys of ``[crawl]`` (the rest of ``[crawl]`` is :class:`~sitetune.config.CrawlConfig`).

    Attributes:
        refresh_every: How often ``sitetune refresh`` re-crawls and re-indexes the site: a duration such as
            ``"24h"``, ``"7d"`` or ``"1h30m"``, or a number of seconds; unset: only when run by hand.
    """

    refresh_every: str | float | None = None


@dataclass(frozen=True)
class ModelFields:
    """``[model]``: which models.

    Attributes:
        base: The sentence-transformers model training starts from: ``"base"`` (the packaged
            all-MiniLM-L6-v2), a model folder, or a Hugging Face Hub id found in the Hugging Face cache.
        reranker: A cross-encoder (folder or cached Hub id) to rerank the top results with instead of the
            model folder's own; naming one sets ``[search] rerank_weight`` to 1 unless the file sets it.
    """

    base: str = "base"
    reranker: str | None = None


@dataclass(frozen=True)
class TrainJobFields:
    """The keys of ``[train]`` beside the training recipe's own (:class:`~sitetune.config.TrainConfig`).

    Attributes:
        retrain: Train even if the model was built from this exact corpus already.
        reranker: Also train the site's cross-encoder reranker into ``MODEL/reranker``.
        reranker_steps: Its optimizer steps.
    """

    retrain: bool = False
    reranker: bool = False
    reranker_steps: int = RerankTrainConfig.steps


@dataclass(frozen=True)
class ServeCommandFields:
    """The keys of ``[serve]`` beside :class:`~sitetune.config.ServeConfig`'s: what ``sitetune serve`` opens.

    Attributes:
        store: The store to serve (default: ``[site] workdir``'s ``store``).
        model: The query model (default: the one the store was built with).
        query_log: Append questions and feedback to this JSON-lines file.
        access_log: Log every request, with the client's address.
        warm_answers: Encode every answer sentence before serving.
    """

    store: str | None = None
    model: str | None = None
    query_log: Path | None = None
    access_log: bool = False
    warm_answers: bool = True


#: Each table and the dataclasses whose fields are its keys (a key belongs to the first that has it).
TABLES: dict[str, tuple[type, ...]] = {
    "site": (SiteFields,),
    "crawl": (ScheduleFields, CrawlConfig),
    "model": (ModelFields,),
    "train": (TrainJobFields, TrainConfig),
    "encoder": (EncoderConfig,),
    "search": (SearchConfig,),
    "answer": (AnswerConfig,),
    "llm": (LLMConfig,),
    "serve": (ServeCommandFields, ServeConfig),
}
#: Fields a file may not set: the recipe is the main job's (its pairs are built for it); the reranker model
#: is ``[model] reranker``.
_HIDDEN = {("train", "recipe"), ("search", "reranker_model")}


@dataclass(frozen=True)
class SiteConfig:
    """A site configuration file, read and checked: each command takes the parts it needs.

    Attributes:
        path: The file.
        job: The main job (``run``, ``refresh``): site, crawl, base model, training, encoder, search,
            answers, LLM and serve settings.
        serve_command: What ``sitetune serve`` opens and logs besides ``job.serve``.
        refresh_every_s: Seconds between scheduled refreshes; ``None``: no schedule.
        values: What the file sets, table -> key -> value (checked, converted to the field's type, relative
            paths read from the file's folder).
    """

    path: Path
    job: MainJobConfig = field(default_factory=MainJobConfig)
    serve_command: ServeCommandFields = field(default_factory=ServeCommandFields)
    refresh_every_s: float | None = None
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def store(self) -> str:
        """The store ``serve`` opens: ``[serve] store``, else the main job's (``WORKDIR/store``)."""
        if self.serve_command.store is not None:
            return str(self.serve_command.store)  # a path key: read as a Path
        return str(Path(self.job.workdir) / "store")

    def sets(self, table: str, key: str) -> bool:
        """Whether the file sets ``[table] key`` (``[search] rerank_weight`` too when it names a reranker)."""
        return key in self.values.get(table, {})

    def value(self, table: str, key: str) -> Any:
        """The value the file sets for ``[table] key`` (:meth:`sets` says whether it does)."""
        return self.values[table][key]


class ConfigFileError(InputError):
    """Problems in a configuration file, each given as ``FILE:LINE: [table] key: what is wrong``.

    Attributes:
        problems: One line per problem (the first also sets ``path``, ``line`` and ``field``).
    """

    def __init__(self, path: Path, problems: list[tuple[int | None, str | None, str]]) -> None:
        line, key, _message = problems[0]
        super().__init__(_message, path=str(path), line=line, field=key)
        self.problems = [_problem_line(path, *problem) for problem in problems]
        self.args = ("\n".join(self.problems),)

    def __str__(self) -> str:
        return "\n".join(self.problems)


def _problem_line(path: Path, line: int | None, key: str | None, message: str) -> str:
    where = f"{path}:{line}" if line is not None else str(path)
    return f"{where}: {key}: {message}" if key else f"{where}: {message}"


class _Lines:
    """Where each table and key is written in the file (tomllib parses without positions)."""

    _HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-]+)\s*=""")

    def __init__(self, text: str) -> None:
        self.tables: dict[str, int] = {}
        self.keys: dict[tuple[str, str], int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header is not None:
                table = self._name(header.group(1))
                self.tables.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key is None:
                continue
            dotted = [*([table] if table else []), *(self._name(p) for p in key.group(1).split("."))]
            if len(dotted) >= 2:  # [serve] port = ..., or serve.port = ... at the top
                self.keys.setdefault((dotted[0], dotted[1]), number)
                self.tables.setdefault(dotted[0], number)
            elif dotted:  # a key outside any table, or a whole table inline: serve = {port = 8080}
                self.keys.setdefault(("", dotted[0]), number)
                self.tables.setdefault(dotted[0], number)

    @staticmethod
    def _name(text: str) -> str:
        return text.strip().strip("\"'")

    def of(self, table: str, key: str | None = None) -> int | None:
        """The line of ``[table] key`` (of ``[table]`` when the key's own line is not found)."""
        if key is not None and (table, key) in self.keys:
            return self.keys[(table, key)]
        return self.tables.get(table)


def load_site_config(path: str | Path) -> SiteConfig:
    """Read and check a site configuration file.

    Args:
        path: The TOML file.

    Returns:
        The configuration, with every table applied over the defaults.

    Raises:
        InputError: The file cannot be read or is not TOML.
        ConfigFileError: Unknown tables or keys, values of the wrong type, or values out of range; every
            problem is listed with its line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such configuration file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the configuration file: {exc}", path=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", path=str(path)) from None
    return _Reader(path, text).read(data)


class _Reader:
    """Checks one parsed file against :data:`TABLES` and builds the :class:`SiteConfig`."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.folder = path.resolve().parent
        self.lines = _Lines(text)
        self.problems: list[tuple[int | None, str | None, str]] = []

    def problem(self, table: str, key: str | None, message: str) -> None:
        name = f"[{table}] {key}" if key is not None else f"[{table}]"
        self.problems.append((self.lines.of(table, key), name, message))

    def read(self, data: Mapping[str, Any]) -> SiteConfig:
        tables: dict[str, dict[str, Any]] = {}
        for name, value in data.items():
            if name not in TABLES:
                self._unknown_table(name, value)
            elif not isinstance(value, dict):
                self.problem(name, None, f"expected a table ([{name}]), got {_describe(value)}")
            else:
                tables[name] = self._table(name, value)
        if self.problems:
            raise ConfigFileError(self.path, self.problems)
        config = self._build(tables)
        if self.problems:
            raise ConfigFileError(self.path, self.problems)
        return config

    def _unknown_table(self, name: str, value: object) -> None:
        if not isinstance(value, dict):  # a key outside any table
            owners = [t for t, classes in TABLES.items() if any(name in _fields(c, t) for c in classes)]
            hint = f": put it under [{owners[0]}]" if owners else ""
            line = self.lines.of("", name)
            self.problems.append((line, name, f"unknown key outside any table{hint}"))
            return
        self.problems.append((self.lines.of(name), f"[{name}]", f"unknown table{_suggest(name, TABLES)}"))

    def _table(self, table: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The table's values, checked and converted to each field's type (bad ones are left out)."""
        known: dict[str, Any] = {}
        for classes in TABLES[table]:
            for name, kind in _fields(classes, table).items():
                known.setdefault(name, kind)
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if (table, key) in _FORBIDDEN:
                self.problem(table, key, _FORBIDDEN[(table, key)])
            elif key not in known:
                self.problem(table, key, f"unknown key{_suggest(key, known)}")
            else:
                converted = self._value(table, key, value, known[key])
                if converted is not _BAD:
                    checked[key] = converted
        return checked

    def _value(self, table: str, key: str, value: object, kind: Any) -> object:
        try:
            converted = _convert(value, kind)
        except _WrongType as exc:
            self.problem(table, key, f"expected {exc.expected}, got {_describe(value)}")
            return _BAD
        choices = _CHOICES.get((table, key))
        if choices is not None and converted not in choices:
            self.problem(table, key, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
            return _BAD
        number = isinstance(converted, int | float) and not isinstance(converted, bool)
        if number and (table, key) not in _SIGNED and converted < 0:  # type: ignore[operator]
            self.problem(table, key, f"must be 0 or more, got {value!r}")
            return _BAD
        if (table, key) == ("serve", "port") and isinstance(converted, int) and converted > 65535:
            self.problem(table, key, f"must be a TCP port (0-65535), got {value!r}")
            return _BAD
        if isinstance(converted, str | Path) and (table, key) in _PATH_KEYS:
            return self.folder / converted if not Path(converted).is_absolute() else Path(converted)
        if isinstance(converted, str) and (table, key) in _FOLDER_OR_NAME_KEYS:
            here = self.folder / converted
            return str(here) if not Path(converted).is_absolute() and here.is_dir() else converted
        return converted

    def _build(self, tables: dict[str, dict[str, Any]]) -> SiteConfig:
        site = _apply(SiteFields(), tables.get("site", {}))
        if "corpus" in tables.get("site", {}) and "start" in tables.get("site", {}):
            self.problem("site", "corpus", "give `corpus` or `start`, not both: a corpus file is never crawled")
        crawl = tables.get("crawl", {})
        schedule = _apply(ScheduleFields(), crawl)
        refresh_every_s = self._duration(schedule.refresh_every)
        model = _apply(ModelFields(), tables.get("model", {}))
        job_train = _apply(TrainJobFields(), tables.get("train", {}))
        search = _apply(SearchConfig(), tables.get("search", {}))
        if model.reranker is not None:
            search = replace(search, reranker_model=model.reranker)
            if "rerank_weight" not in tables.get("search", {}):
                search = replace(search, rerank_weight=1.0)
                tables.setdefault("search", {})["rerank_weight"] = 1.0
        job = MainJobConfig(
            workdir=site.workdir,
            corpus=site.corpus,
            start=site.start,
            prefix=site.prefix,
            public_base=site.public_base,
            crawl=_apply(default_crawl_config(site.start), crawl) if crawl.keys() - {"refresh_every"} else None,
            base_model=model.base,
            train=_apply(MAIN_JOB_RECIPE, tables.get("train", {})),
            encoder=_apply(EncoderConfig(), tables.get("encoder", {})),
            serve=_apply(ServeConfig(), tables.get("serve", {})),
            retrain=job_train.retrain,
            reranker=RerankTrainConfig(steps=job_train.reranker_steps) if job_train.reranker else None,
            search=search,
            answer=_apply(AnswerConfig(), tables.get("answer", {})),
            llm=self._llm(tables.get("llm")),
        )
        return SiteConfig(
            path=self.path,
            job=job,
            serve_command=_apply(ServeCommandFields(), tables.get("serve", {})),
            refresh_every_s=refresh_every_s,
            values=tables,
        )

    def _duration(self, value: str | float | None) -> float | None:
        if value is None or isinstance(value, int | float):
            if value is not None and value <= 0:
                self.problem("crawl", "refresh_every", f"must be more than 0 seconds, got {value!r}")
            return None if value is None else float(value)
        try:
            return parse_duration(value, name="refresh_every")
        except InputError as exc:
            self.problem("crawl", "refresh_every", str(exc).removeprefix("refresh_every: "))
            return None

    def _llm(self, values: dict[str, Any] | None) -> LLMConfig | None:
        if values is None:
            return None
        missing = [k for k in ("url", "model") if k not in values]
        if missing:
            self.problem("llm", None, f"needs {' and '.join(missing)} (or leave [llm] out for extractive answers)")
            return None
        config = LLMConfig(**values)
        try:
            _ = config.endpoint
        except Exception as exc:  # LLMError: a malformed URL, said in the file's terms
            self.problem("llm", "url", str(exc).replace("--llm-url", "url"))
        return config


class _WrongType(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


_BAD = object()


def _fields(cls: type, table: str) -> dict[str, Any]:
    """A dataclass's settable fields and their types (resolved annotations)."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if f.init and (table, f.name) not in _HIDDEN
    }


def _apply(base: T, values: Mapping[str, Any]) -> T:
    """``base`` with the values of its own fields replaced (other tables' keys ignored)."""
    own = {f.name for f in dataclasses.fields(base)}  # type: ignore[arg-type]
    return replace(base, **{k: v for k, v in values.items() if k in own})  # type: ignore[type-var]


def _convert(value: object, kind: Any) -> object:
    """``value`` as ``kind`` (the field's annotation), or :class:`_WrongType` naming what was expected."""
    union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
    options = typing.get_args(kind) if union else ()
    if options:
        wanted = [o for o in options if o is not type(None)]
        for option in wanted:
            try:
                return _convert(value, option)
            except _WrongType:
                continue
        raise _WrongType(" or ".join(_expected(o) for o in wanted))
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is Path:
        if isinstance(value, str) and value:
            return Path(value)
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            raise _WrongType(_expected(kind)) from None
    elif typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, list):
            return tuple(_convert(v, item) for v in value)
    raise _WrongType(_expected(kind))


def _expected(kind: Any) -> str:
    if kind is bool:
        return "true or false"
    if kind is int:
        return "an integer"
    if kind is float:
        return "a number"
    if kind is str:
        return "a string"
    if kind is Path:
        return "a path (a string)"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in kind)
    if typing.get_origin(kind) is tuple:
        return f"a list of {_expected(typing.get_args(kind)[0]).removeprefix('a ').removeprefix('an ')}s"
    return str(kind)


def _describe(value: object) -> str:
    """A TOML value in words: ``the string "80"``, ``the integer 3``, ``a table``."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
