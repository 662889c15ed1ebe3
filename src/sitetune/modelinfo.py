"""What a model folder says about itself: how it wants documents and queries written.

A model trained by sitetune carries ``sitetune.json`` beside its weights; the packaged base model and
foreign folders get the defaults below. Every stage that embeds text (index, evaluation, search) formats
documents through :func:`document_text` so a model sees documents the way it was trained to.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from sitetune.atomic import atomic_write_text
from sitetune.errors import SitetuneError
from sitetune.records import CARD_TEXT_TEMPLATE

MODEL_INFO_FILE = "sitetune.json"

#: Plain chunk text: what a general-purpose model such as the base one expects.
PLAIN_TEMPLATE = "{text}"
#: Title-prefixed text: the page and section name in front of the chunk.
TITLED_TEMPLATE = "{page_name} | {section_title}\n{text}"


class Section(Protocol):
    """Anything with the fields a document template may use (records, chunks)."""

    @property
    def page_name(self) -> str:
        """The page's name."""
        ...

    @property
    def section_title(self) -> str:
        """The section's title."""
        ...

    @property
    def text(self) -> str:
        """The section's text."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """How a model wants its inputs.

    Attributes:
        document_template: ``str.format`` template over page_name, section_title and text.
        query_template: Template over ``query``.
        recipe: The recipe that trained it (``None`` for a model sitetune did not train).
        base_model: What it was fine-tuned from.
    """

    document_template: str = PLAIN_TEMPLATE
    query_template: str = "{query}"
    recipe: str | None = None
    base_model: str | None = None

    def document(self, section: Section) -> str:
        """The document text the model embeds for ``section``."""
        return document_text(section, self.document_template)

    def query(self, text: str) -> str:
        """The text the model embeds for the question ``text``."""
        return self.query_template.format(query=text)

    def save(self, model_dir: str | Path) -> None:
        """Write ``sitetune.json`` into ``model_dir``."""
        atomic_write_text(Path(model_dir) / MODEL_INFO_FILE, json.dumps(asdict(self), indent=2) + "\n")


CARD_MODEL_INFO = ModelInfo(document_template=CARD_TEXT_TEMPLATE, recipe="card")


def document_text(section: Section, template: str) -> str:
    """Format one section with a document template."""
    return template.format(page_name=section.page_name, section_title=section.section_title, text=section.text)


def load_model_info(model_dir: str | Path) -> ModelInfo:
    """Read ``sitetune.json`` from a model folder; a folder without one gets the plain defaults."""
    path = Path(model_dir) / MODEL_INFO_FILE
    if not path.is_file():
        return ModelInfo()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelInfo(**{k: v for k, v in data.items() if k in ModelInfo.__dataclass_fields__})
    except (json.JSONDecodeError, TypeError) as exc:
        raise SitetuneError(f"{path}: not a valid model info file: {exc}") from exc
