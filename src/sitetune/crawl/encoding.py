"""Pick a page's character encoding the way browsers do, with a guard against mislabelled UTF-8."""

from __future__ import annotations

import codecs
import email.message

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels that decode any byte string, so a wrong one never fails loudly: check for UTF-8 first.
_SINGLE_BYTE = frozenset({"iso-8859-1", "latin-1", "latin1", "cp1252", "windows-1252", "us-ascii", "ascii",
                          "iso8859-1", "l1", "iso-8859-15"})


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, lower-cased, or None."""
    if not content_type:
        return None
    msg = email.message.Message()
    msg["content-type"] = content_type
    charset = msg.get_param("charset")
    return charset.strip().strip("'\"").lower() if isinstance(charset, str) and charset.strip() else None


def _known(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _meta_charset(body: bytes) -> str | None:
    """The charset a ``<meta>`` tag declares in the first 1024 bytes (the HTML prescan window)."""
    from selectolax.lexbor import LexborHTMLParser

    head = body[:1024].decode("ascii", errors="replace")
    tree = LexborHTMLParser(head)
    for meta in tree.css("meta"):
        attrs = meta.attributes
        if attrs.get("charset"):
            return attrs["charset"]
        if (attrs.get("http-equiv") or "").lower() == "content-type":
            found = charset_of(attrs.get("content"))
            if found:
                return found
    return None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_body(body: bytes, content_type: str | None = None) -> str:
    """Decode an HTML body: a BOM wins, then the header charset, then ``<meta charset>``, then UTF-8/cp1252.

    A declared single-byte charset loses to UTF-8 when the bytes are valid UTF-8 with non-ASCII
    characters (servers often mislabel UTF-8 as ISO-8859-1); undecodable bytes become U+FFFD.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(name, errors="replace")
    declared = _known(charset_of(content_type)) or _known(_meta_charset(body))
    non_ascii = any(b > 0x7F for b in body[:200_000])
    if declared in {_known(x) for x in _SINGLE_BYTE} and non_ascii and _is_utf8(body):
        return body.decode("utf-8")
    if declared:
        try:
            return body.decode(declared)
        except UnicodeDecodeError:
            pass
    if _is_utf8(body):
        return body.decode("utf-8")
    return body.decode(declared if declared and declared != "utf-8" else "cp1252", errors="replace")
