"""HTML to headed text blocks: strip page chrome, flatten lists and tables, keep document order.

The parser is selectolax's Lexbor engine (a real HTML5 parser, tolerant of any markup). The walk is
iterative rather than recursive so that pathologically deep markup cannot exhaust Python's stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

# Subtrees that never hold page content.
DROP_TAGS = frozenset({
    "script", "style", "noscript", "template", "nav", "header", "footer", "form", "iframe", "svg", "canvas",
    "button", "select", "textarea", "input", "object", "embed", "head", "dialog", "menu", "math", "video",
    "audio", "map",
})
# Words in a class, id or aria-label that mark chrome a plain tag check misses.
NOISE_WORDS = ("cookie", "consent", "breadcrumb", "gdpr", "skip-link", "skiplink", "share-bar", "sharebar")
NOISE_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "dialog", "alertdialog", "menu"})
# Tags whose start and end break a line of text.
BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "main", "aside", "blockquote", "pre", "address", "figure", "figcaption",
    "dl", "dt", "dd", "ul", "ol", "li", "br", "hr", "h1", "h5", "h6", "details", "summary", "fieldset",
    "table", "tr", "td", "th", "caption", "center", "body", "html",
})


@dataclass(frozen=True)
class Block:
    """One unit of page text in document order.

    Attributes:
        text: Whitespace-normalised text (may hold newlines between flattened list or table lines).
        heading_level: 2-6 when the block is a section heading, else 0.
    """

    text: str
    heading_level: int = 0


@dataclass
class ParsedPage:
    """A page reduced to its name and its content blocks."""

    page_name: str
    blocks: list[Block] = field(default_factory=list)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _is_noise(node: LexborNode) -> bool:
    attrs = node.attributes
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true":
        return True
    if (attrs.get("role") or "").lower() in NOISE_ROLES:
        return True
    marker = " ".join(attrs.get(name) or "" for name in ("class", "id", "aria-label")).lower()
    if not any(word in marker for word in NOISE_WORDS):
        return False
    # A page wrapper tagged e.g. "has-cookie-banner" holds the content itself: never drop one of those.
    return node.css_first("main, article, h1, [role=main]") is None


def _skipped(node: LexborNode) -> bool:
    return node.tag in DROP_TAGS or _is_noise(node)


def _text_of(node: LexborNode) -> str:
    """Visible text of a subtree, ignoring dropped or noise descendants."""
    parts: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        ctag = current.tag or ""
        if ctag == "-text":
            parts.append(current.text(deep=False) or "")
            continue
        if ctag.startswith("-") or (current is not node and _skipped(current)):
            continue
        if ctag in BLOCK_TAGS:
            parts.append(" ")
        stack.extend(reversed(list(current.iter(include_text=True))))
    return _clean("".join(parts))


def _table_lines(table: LexborNode) -> list[str]:
    """Each row as "first cell: other cells" (so a degree table reads "University: Degree")."""
    lines = []
    for row in table.css("tr"):
        cells = [_text_of(cell) for cell in row.iter() if cell.tag in ("td", "th")]
        cells = [c for c in cells if c]
        if not cells:
            continue
        lines.append(cells[0] if len(cells) == 1 else f"{cells[0]}: {', '.join(cells[1:])}")
    caption = table.css_first("caption")
    if caption is not None and _text_of(caption):
        lines.insert(0, _text_of(caption))
    return lines


class _Walker:
    """Turns a content subtree into blocks, flushing a line at every block-level boundary."""

    def __init__(self, heading_tags: tuple[str, ...], page_h1: LexborNode | None) -> None:
        self.heading_tags = heading_tags
        self.page_h1 = page_h1
        self.blocks: list[Block] = []
        self.lines: list[str] = []
        self.buffer: list[str] = []
        self.prefix = ""

    def _is_page_h1(self, node: LexborNode) -> bool:
        return self.page_h1 is not None and node.mem_id == self.page_h1.mem_id

    def flush_line(self) -> None:
        text = _clean("".join(self.buffer))
        if text:
            self.lines.append(self.prefix + text)
            self.prefix = self.prefix.replace("- ", "  ") if self.prefix else ""
        self.buffer = []

    def flush_block(self) -> None:
        self.flush_line()
        if self.lines:
            self.blocks.append(Block("\n".join(self.lines)))
        self.lines = []

    def walk(self, root: LexborNode) -> list[Block]:
        # Stack entries: (node, entering); leaving an element may need a line break or list-prefix reset.
        stack: list[tuple[LexborNode, bool, int]] = [(root, True, 0)]
        while stack:
            node, entering, list_depth = stack.pop()
            tag = node.tag or ""
            if not entering:
                if tag in BLOCK_TAGS:
                    self.flush_line()
                if tag in ("li", "ul", "ol"):
                    self.prefix = ""
                if tag in ("p", "table", "ul", "ol", "dl", "blockquote", "pre") and list_depth == 0:
                    self.flush_block()
                continue
            if tag == "-text":
                self.buffer.append(node.text(deep=False) or "")
                continue
            if tag.startswith("-") or (node is not root and _skipped(node)):
                continue
            if tag in self.heading_tags or (tag == "h1" and not self._is_page_h1(node)):
                self.flush_block()
                text = _text_of(node)
                if text:
                    level = int(tag[1]) if tag[1:].isdigit() else 2
                    self.blocks.append(Block(text, heading_level=max(level, 2)))
                continue
            if tag == "h1":
                continue
            if tag == "table":
                self.flush_line()
                self.lines.extend(_table_lines(node))
                if list_depth == 0:
                    self.flush_block()
                continue
            if tag in BLOCK_TAGS:
                self.flush_line()
            if tag == "li":
                self.prefix = "  " * max(list_depth - 1, 0) + "- "
            child_depth = list_depth + 1 if tag in ("ul", "ol") else list_depth
            stack.append((node, False, list_depth))
            children = list(node.iter(include_text=True))
            stack.extend((child, True, child_depth) for child in reversed(children))
        self.flush_block()
        return self.blocks


def parse_page(html: str, *, heading_tags: tuple[str, ...] = ("h2", "h3", "h4"),
               fallback_name: str = "") -> ParsedPage:
    """Parse one HTML page into its name and ordered content blocks.

    Args:
        html: The page's markup (any quality; the parser repairs it).
        heading_tags: Tags that open a new section.
        fallback_name: The name used when the page has neither an h1 nor a <title>.

    Returns:
        The page name (the main content's h1, else any h1, else <title>, else ``fallback_name``) and
        the blocks: headings (``heading_level`` > 0) and text between them, chrome removed.
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    root = tree.css_first("main") or tree.css_first("[role=main]") or tree.body or tree.root
    page_h1 = None
    name = ""
    if root is not None:
        for h1 in root.css("h1"):
            if not any(_skipped(a) for a in _ancestors(h1, root)) and _text_of(h1):
                page_h1, name = h1, _text_of(h1)
                break
    if not name:
        for h1 in tree.css("h1"):
            if _text_of(h1):
                name = _text_of(h1)
                break
    if not name:
        title = tree.css_first("title")
        name = _clean(title.text(deep=True)) if title is not None else ""
    page = ParsedPage(page_name=name or fallback_name)
    if root is not None:
        page.blocks = _Walker(heading_tags, page_h1).walk(root)
    return page


def _ancestors(node: LexborNode, stop: LexborNode) -> list[LexborNode]:
    found = []
    current: LexborNode | None = node
    while current is not None and current.mem_id != stop.mem_id:
        found.append(current)
        current = current.parent
    return found


def extract_links(html: str) -> list[str]:
    """Every ``<a href>`` value in document order, as written (resolve them against the page URL).

    A page whose robots meta tag says ``nofollow`` yields no links.
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    for meta in tree.css("meta[name]"):
        if (meta.attributes.get("name") or "").lower() == "robots" and \
                "nofollow" in (meta.attributes.get("content") or "").lower():
            return []
    links = []
    for anchor in tree.css("a[href]"):
        rel = (anchor.attributes.get("rel") or "").lower()
        href = (anchor.attributes.get("href") or "").strip()
        if href and "nofollow" not in rel:
            links.append(href)
    return links
