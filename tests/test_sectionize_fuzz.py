"""Fuzz the sectionizer with generated HTML: it never crashes, never emits a chunk over the limit, and keeps
the visible text of the main content."""

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


# Words planted in the main content: plain English words (one token each, so no chunk limit cuts one).
PLANTED = ("falcon", "meadow", "lantern", "harbour", "orchard", "glacier", "violin", "pepper", "canyon",
           "walnut", "comet", "saddle")
# Tags a well-formed noise element may use: every kind of chrome, but never <main> (which would move the
# content root) and never a tag that turns what follows it into raw text when left open.
NOISE_TAGS = [t for t in TAGS if t not in ("main", "br")]
# Containers whose text is visible: block and inline elements with harmless attributes.
VISIBLE = st.sampled_from([
    "<p{a}>{t}</p>", "<div{a}>{t}</div>", "<span{a}> {t} </span>", "<b{a}> {t} </b>",
    "<ul><li{a}>{t}</li></ul>", "<ol><li>x</li><li{a}>{t}</li></ol>", "<blockquote{a}>{t}</blockquote>",
    "<table><tr><td{a}>{t}</td></tr></table>", "<dl><dt>Term</dt><dd{a}>{t}</dd></dl>",
    "<section{a}><p>{t}</p></section>", "<article{a}><div><span> {t} </span></div></article>",
    "<pre{a}>{t}</pre>", "<a{a}> {t} </a>",
])
VISIBLE_ATTRS = st.sampled_from(["", ' class="content"', ' id="intro"', ' href="/x"', ' lang="en"'])
SAFE_TEXT = TEXT.map(html_lib.escape)  # escaped: no stray tag can open inside it


def _closed(tag: str, attr: str, inner: str) -> str:
    return f"<{tag}{attr}>{inner}</{tag}>"


# Well-formed noise: any tag and attribute (hidden, cookie banners, navigation...), always closed.
SAFE_NODE = st.recursive(
    SAFE_TEXT,
    lambda inner: st.builds(_closed, st.sampled_from(NOISE_TAGS), st.sampled_from(ATTRS),
                            st.lists(inner, max_size=4).map("".join)),
    max_leaves=20,
)


@st.composite
def pages_with_planted_text(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A page whose <main> holds planted words in visible containers among well-formed noise."""
    words = draw(st.lists(st.sampled_from(PLANTED), min_size=1, max_size=6, unique=True))
    blocks = [draw(VISIBLE).format(a=draw(VISIBLE_ATTRS), t=f"{word} {draw(SAFE_TEXT)}") for word in words]
    content: list[str] = []
    for block in blocks:
        content.extend(draw(st.lists(SAFE_NODE, max_size=2)))
        content.append(block)
    content.extend(draw(st.lists(SAFE_NODE, max_size=2)))
    before, after = draw(st.lists(SAFE_NODE, max_size=3)), draw(st.lists(SAFE_NODE, max_size=3))
    markup = (f"<html><head><title>{html_lib.escape(draw(TEXT))}</title></head><body>{''.join(before)}"
              f"<main>{''.join(content)}</main>{''.join(after)}</body></html>")
    return markup, words


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(page=pages_with_planted_text(), max_tokens=st.sampled_from([8, 24, 64, 512]))
@example(page=("<main><nav>Menu</nav><div hidden>gone</div><p>falcon</p></main>", ["falcon"]), max_tokens=8)
@example(page=("<main><h2>Heading</h2><table><tr><td>walnut</td></tr></table></main>", ["walnut"]),
         max_tokens=512)
def test_visible_main_content_text_reaches_the_records(page: tuple[str, list[str]], max_tokens: int) -> None:
    markup, words = page
    _check(markup, max_tokens)
    records = sectionize_html(markup, "https://fuzz.example/page", ChunkingConfig(max_tokens=max_tokens))
    seen = {w for r in records for w in r.text.split()}
    assert [w for w in words if w not in seen] == [], markup
