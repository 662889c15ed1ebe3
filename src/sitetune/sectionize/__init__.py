"""One HTML page to section records: name from h1/<title>, sections at h2-h4, chunks within the model limit.

Use :func:`sectionize_html` for markup in hand (the crawler does). Reading a file or fetching a URL first
is the crawl stage's work: :func:`sitetune.crawl.sectionize_source` (the ``sitetune sectionize`` command).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sitetune.config import ChunkingConfig
from sitetune.errors import InputError
from sitetune.records import SectionRecord, section_type_of
from sitetune.sectionize.chunking import split_sentences, split_to_fit
from sitetune.sectionize.html import Block, ParsedPage, extract_links, parse_page

__all__ = [
    "Block",
    "ParsedPage",
    "extract_links",
    "parse_page",
    "sectionize_html",
    "split_sentences",
    "split_to_fit",
]

_DEFAULT_CHUNKING = ChunkingConfig()


def _name_from_url(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0] if path else ""
    return stem.replace("-", " ").replace("_", " ").strip() or urlsplit(url).netloc or url


def sectionize_html(html: str, url: str, config: ChunkingConfig = _DEFAULT_CHUNKING) -> list[SectionRecord]:
    """Turn one page's markup into section records.

    Args:
        html: The page's HTML.
        url: Where the page lives (after redirects); stored on every record.
        config: Chunk limit and heading tags.

    Returns:
        Records in page order. Text before the first heading is a section titled after the page; a
        section over ``config.max_tokens`` becomes "<title> (Part 1)", "<title> (Part 2)", ...
        A heading with no text under it yields no record.

    Raises:
        InputError: The page has no text outside navigation and other page chrome.
    """
    page = parse_page(html, heading_tags=config.heading_tags, fallback_name=_name_from_url(url))
    sections: list[tuple[str, list[str]]] = [(page.page_name, [])]
    for block in page.blocks:
        if block.heading_level:
            sections.append((block.text, []))
        else:
            sections[-1][1].append(block.text)
    records: list[SectionRecord] = []
    for title, texts in sections:
        chunks = split_to_fit("\n".join(texts), config.max_tokens)
        for i, chunk in enumerate(chunks, start=1):
            chunk_title = f"{title} (Part {i})" if len(chunks) > 1 else title
            records.append(SectionRecord(page_name=page.page_name, section_title=chunk_title,
                                         section_type=section_type_of(chunk_title), text=chunk, url=url))
    if not records:
        raise InputError("the page has no text outside navigation, header, footer and forms", path=url)
    return records
