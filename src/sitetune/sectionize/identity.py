"""What the sectionizer's output depends on, as one string: equal strings, equal records for equal pages.

A page's records depend on its markup, its URL, the chunking settings, this package's code (and the
record type's), the tokenizer that counts chunk lengths (the packaged base model's files) and the versions
of the HTML parser and tokenizer libraries. :func:`sectionizer_fingerprint` hashes all of those but the page
itself, so a memo of earlier records (:mod:`sitetune.crawl.sectionmemo`) is used only where sectionizing
again would give the same records: editing the sectionizer, upgrading a library or changing a setting
invalidates it by itself.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
from collections.abc import Iterable
from pathlib import Path

from sitetune.config import ChunkingConfig

#: Libraries whose behaviour shapes the records: the HTML parser and the tokenizer.
_LIBRARIES = ("selectolax", "tokenizers", "transformers")
#: Files of the base model folder the tokenizer is built from.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def sectionizer_fingerprint(config: ChunkingConfig, extra_sources: Iterable[Path] = ()) -> str | None:
    """A hash of everything but the page that :func:`sitetune.sectionize.sectionize_html`'s output depends on.

    Args:
        config: The chunking settings.
        extra_sources: More source files whose code shapes the records (a caller's decoding step).

    Returns:
        The hex digest, or ``None`` when a part cannot be read (a source file or the base model missing):
        then nothing may be reused.
    """
    code = _code_digest(tuple(sorted(str(p) for p in extra_sources)))
    if code is None:
        return None
    settings = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return hashlib.sha256(f"{code}\n{settings}".encode()).hexdigest()


@functools.cache
def _code_digest(extra_sources: tuple[str, ...]) -> str | None:
    """The digest of the code, libraries and tokenizer files (once per process: none of them change in one)."""
    from sitetune import records
    from sitetune.errors import SitetuneError
    from sitetune.models import base_model_path

    package = Path(__file__).parent
    sources = [*sorted(package.glob("*.py")), Path(records.__file__), *map(Path, extra_sources)]
    digest = hashlib.sha256()
    try:
        model = base_model_path()
        for path in [*sources, *(model / name for name in _TOKENIZER_FILES if (model / name).is_file())]:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except (OSError, SitetuneError):
        return None
    for library in _LIBRARIES:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{library}={version}\0".encode())
    return digest.hexdigest()
