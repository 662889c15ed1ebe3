"""One HTML page to section records: name from h1/<title>, sections at h2-h4, chunks within the model limit.

Use :func:`sectionize_html` for markup in hand (the crawler does) and :func:`sectionize_source` for a
file path or an http(s) URL (the ``sitetune sectionize`` command does).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from sitetune.config import ChunkingConfig
from sitetune.errors import InputError
from sitetune.records import SectionRecord, section_type_of
from sitetune.sectionize.chunking import split_sentences, split_to_fit
from sitetune.sectionize.html import Block, ParsedPage, extract_links, parse_page

__all__ = [
    "Block",
    "ParsedPage",
    "decode_html",
    "extract_links",
    "parse_page",
    "sectionize_html",
    "sectionize_source",
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


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode an HTML body: a BOM wins, then the header charset, then ``<meta charset>``, then UTF-8/cp1252.

    A declared single-byte charset loses to UTF-8 when the bytes are valid UTF-8 with non-ASCII
    characters (servers often mislabel UTF-8 as ISO-8859-1); undecodable bytes become U+FFFD.
    """
    from sitetune.sectionize.encoding import decode_body

    return decode_body(body, content_type)


def sectionize_source(source: str | Path, config: ChunkingConfig = _DEFAULT_CHUNKING) -> list[SectionRecord]:
    """Sectionize an HTML file or an http(s) URL.

    Args:
        source: A path to an ``.html`` file, or an ``http://``/``https://`` URL (fetched once, with
            the crawler's limits, robots.txt not consulted since a person asked for this one page).
        config: Chunk limit and heading tags.

    Returns:
        The page's records; a file's records carry its ``file://`` URL.

    Raises:
        InputError: The file is missing, a directory, not HTML or undecodable; the URL is malformed,
            unreachable or not HTML; or the page has no text.
    """
    text = str(source)
    if text.startswith(("http://", "https://")):
        from sitetune.crawl.fetch import fetch_one

        page = fetch_one(text)
        return sectionize_html(page.html, page.final_url, config)
    if "://" in text:
        raise InputError("not a file path or an http(s) URL", path=text)
    path = Path(source)
    if not path.exists():
        raise InputError("no such file", path=text)
    if not path.is_file():
        raise InputError("not a file (is it a directory?)", path=text)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=text) from exc
    utf16 = body.startswith((b"\xff\xfe", b"\xfe\xff"))
    if body[:4].lower() == b"%pdf" or (b"\x00" in body[:4096] and not utf16):
        raise InputError("not an HTML file (binary content)", path=text)
    html = decode_html(body)
    if not _looks_like_html(html):
        raise InputError("not an HTML file (no HTML markup found)", path=text)
    return sectionize_html(html, path.resolve().as_uri(), config)


_HTML_MARKERS = ("<html", "<!doctype html", "<body", "<p", "<h1", "<h2", "<div", "<title", "<head", "<main",
                 "<article", "<section")


def _looks_like_html(html: str) -> bool:
    head = html[:4096].lower()
    return any(marker in head for marker in _HTML_MARKERS)
