"""One page, from a file or a URL, to section records (what ``sitetune sectionize`` shows).

Reading bytes and fetching are the crawl stage's; :func:`sitetune.sectionize.sectionize_html` only ever
sees decoded markup.
"""

from __future__ import annotations

from pathlib import Path

from sitetune.config import ChunkingConfig, CrawlConfig
from sitetune.crawl.encoding import decode_body
from sitetune.crawl.fetch import fetch_one
from sitetune.errors import InputError
from sitetune.records import SectionRecord
from sitetune.sectionize import sectionize_html

_DEFAULT_CHUNKING = ChunkingConfig()
_HTML_MARKERS = ("<html", "<!doctype html", "<body", "<p", "<h1", "<h2", "<div", "<title", "<head", "<main",
                 "<article", "<section")


def sectionize_source(source: str | Path, config: ChunkingConfig = _DEFAULT_CHUNKING, *,
                      allow_private_addresses: bool = False) -> list[SectionRecord]:
    """Sectionize an HTML file or an http(s) URL.

    Args:
        source: A path to an ``.html`` file, or an ``http://``/``https://`` URL (fetched once, with
            the crawler's limits, robots.txt not consulted since a person asked for this one page).
            Redirects are followed on the URL's own host and port only (see docs/security.md).
        config: Chunk limit and heading tags.
        allow_private_addresses: Also fetch a host name that resolves to a loopback, private or other
            non-public address (a URL that names such an address itself is fetched either way).

    Returns:
        The page's records; a file's records carry its ``file://`` URL.

    Raises:
        InputError: The file is missing, a directory, not HTML or undecodable; the URL is malformed,
            unreachable, not HTML, or redirects or resolves somewhere refused; or the page has no text.
    """
    text = str(source)
    if text.startswith(("http://", "https://")):
        page = fetch_one(text, CrawlConfig(delay_s=0.0, allow_private_addresses=allow_private_addresses))
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
    html = decode_body(body)
    if not _looks_like_html(html):
        raise InputError("not an HTML file (no HTML markup found)", path=text)
    return sectionize_html(html, path.resolve().as_uri(), config)


def _looks_like_html(html: str) -> bool:
    head = html[:4096].lower()
    return any(marker in head for marker in _HTML_MARKERS)
