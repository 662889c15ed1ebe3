"""Fuzz the sectionizer with generated HTML: it never crashes and never emits a chunk over the limit."""

from __future__ import annotations

import html as html_lib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sitetune.config import ChunkingConfig
from sitetune.errors import InputError
from sitetune.models import count_tokens
from sitetune.records import section_type_of
from sitetune.sectionize import sectionize_html

TAGS = ["div", "p", "span", "b", "section", "article", "main", "h1", "h2", "h3", "h4", "h5", "ul", "ol", "li",
        "table", "tr", "td", "th", "thead", "nav", "header", "footer", "form", "script", "style", "aside",
        "br",
        "pre", "a", "dl", "dt", "dd", "noscript", "template", "svg", "iframe", "blockquote", "caption"]
ATTRS = ["", ' class="cookie-banner"', ' id="breadcrumbs"', ' role="navigation"', " hidden",
         ' aria-hidden="true"',
         ' class="content"', ' href="/x"', ' style="display:none"']
# Words, numbers, punctuation runs, non-Latin scripts and very long tokens-without-spaces.
WORDS = st.one_of(
    st.sampled_from(["IELTS", "7.0", "deadline.", "Apply!", "Why?", "(Part 2)", "—", "€", "Zürich",
                     "東京", "…"]),
    st.text(min_size=1, max_size=12),
    st.builds(lambda c, n: c * n, st.sampled_from(["!", "a", "é", "9", ".", "-", "中"]),
              st.integers(min_value=50, max_value=1500)),
)
TEXT = st.lists(WORDS, max_size=60).map(" ".join)


def _element(children: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda tag, attr, close, inner: f"<{tag}{attr}>{inner}" + (f"</{tag}>" if close else ""),
        st.sampled_from(TAGS), st.sampled_from(ATTRS), st.booleans(), st.just("".join(children)),
    )


NODE = st.recursive(
    TEXT.map(html_lib.escape) | TEXT,  # escaped and raw text (raw may hold stray < and &)
    lambda inner: st.lists(inner, max_size=5).flatmap(_element),
    max_leaves=30,
)
PAGE = st.builds(
    lambda title, body, head: f"<html><head>{head}<title>{title}</title></head><body>{body}</body></html>",
    TEXT, st.lists(NODE, max_size=6).map("".join),
    st.sampled_from(["", '<meta charset="utf-8">', "<style>p{}"]),
)


def _check(markup: str, max_tokens: int) -> None:
    try:
        records = sectionize_html(markup, "https://fuzz.example/page", ChunkingConfig(max_tokens=max_tokens))
    except InputError as exc:
        assert "no text" in str(exc)
        return
    assert records
    counts = count_tokens([r.text for r in records])
    assert max(counts) <= max_tokens, max(counts)
    for r in records:
        assert r.text.strip() and r.page_name.strip() and r.section_title.strip()
        assert r.section_type == section_type_of(r.section_title)
        assert r.url == "https://fuzz.example/page"


@settings(max_examples=70, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(markup=PAGE, max_tokens=st.sampled_from([8, 24, 64, 512]))
@example(markup="<div>" * 3000 + "deep text" + "</div>" * 3000, max_tokens=64)
@example(markup="<h2>" + "!" * 4000 + "</h2><p>" + "x" * 5000 + "</p>", max_tokens=24)
@example(markup="<table>" + "<tr><td>a</td><td>b</td></tr>" * 2000 + "</table>", max_tokens=512)
@example(markup="<ul>" + "<li>" * 500 + "item", max_tokens=64)
def test_generated_pages_never_crash_nor_exceed_the_limit(markup: str, max_tokens: int) -> None:
    _check(markup, max_tokens)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markup=st.text(max_size=3000), max_tokens=st.sampled_from([16, 512]))
def test_arbitrary_strings_never_crash(markup: str, max_tokens: int) -> None:
    _check(markup, max_tokens)
