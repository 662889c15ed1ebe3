"""The sectionizer on real HTML: the sample pages (as files and through a local server) and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sitetune.cli.main import app
from sitetune.config import ChunkingConfig
from sitetune.crawl import sample_site_dir, sectionize_source
from sitetune.crawl.localsite import serve_site
from sitetune.errors import InputError
from sitetune.models import count_tokens
from sitetune.records import section_type_of
from sitetune.sectionize import sectionize_html, split_to_fit

SCM = sample_site_dir() / "programmes" / "msc-supply-chain-management.html"
NOISE = ("Accept all", "We use cookies", "Search the site", "Quay Street", "dataLayer", "font-family",
         "Staff area", "Alumni network", "Get news about this programme", "Home")
runner = CliRunner()


@pytest.fixture(scope="module")
def scm_records():  # type: ignore[no-untyped-def]
    return sectionize_source(SCM)


def test_page_name_comes_from_h1(scm_records) -> None:  # type: ignore[no-untyped-def]
    assert {r.page_name for r in scm_records} == {"MSc in Supply Chain Management"}


def test_text_before_first_heading_is_titled_after_the_page(scm_records) -> None:  # type: ignore[no-untyped-def]
    first = scm_records[0]
    assert first.section_title == "MSc in Supply Chain Management"
    assert first.text.startswith("A two-year, English-taught master's programme")


def test_sections_split_at_headings_in_order(scm_records) -> None:  # type: ignore[no-untyped-def]
    types = list(dict.fromkeys(r.section_type for r in scm_records))
    assert types == ["MSc in Supply Chain Management", "About the programme", "Programme structure",
                     "Entry requirements", "English language requirements", "Application deadlines",
                     "Selection criteria", "Documents to upload", "After you apply"]


def test_chrome_is_stripped(scm_records) -> None:  # type: ignore[no-untyped-def]
    text = "\n".join(r.text for r in scm_records)
    for noise in NOISE:
        assert noise not in text, noise


def test_lists_and_tables_are_flattened(scm_records) -> None:  # type: ignore[no-untyped-def]
    english = next(r for r in scm_records if r.section_title == "English language requirements")
    assert "\n- IELTS Academic with an overall score of 7.0 and no band below 6.5\n" in english.text
    entry = next(r for r in scm_records if r.section_title == "Entry requirements")
    assert "\nHarbour School of Business: BSc in International Shipping and Trade\n" in entry.text
    assert "\nUniversity: Degree\n" in entry.text


def test_long_section_is_split_into_parts_within_the_limit(scm_records) -> None:  # type: ignore[no-untyped-def]
    parts = [r for r in scm_records if r.section_type == "Programme structure"]
    expected = [f"Programme structure (Part {i})" for i in range(1, len(parts) + 1)]
    assert [r.section_title for r in parts] == expected
    assert len(parts) >= 2
    assert max(count_tokens([r.text for r in scm_records])) <= 512
    # Split at sentence boundaries: every part ends a sentence.
    assert all(r.text.rstrip().endswith((".", "!", "?")) for r in parts)
    assert all(r.section_type == section_type_of(r.section_title) for r in scm_records)


def test_smaller_limit_gives_more_parts_none_over_it() -> None:
    records = sectionize_source(SCM, ChunkingConfig(max_tokens=64))
    assert max(count_tokens([r.text for r in records])) <= 64
    assert len(records) > len(sectionize_source(SCM))


def test_single_overlong_sentence_and_word_are_split() -> None:
    sentence = "applicants " * 700 + "."
    word = "-" * 3000
    for text in (sentence, word, f"Short one. {sentence} {word} End."):
        chunks = split_to_fit(text, 100)
        assert len(chunks) > 1 and max(count_tokens(chunks)) <= 100
    assert split_to_fit("   ") == []
    with pytest.raises(ValueError, match="at least 3"):
        split_to_fit("text", 2)


def test_title_is_the_fallback_name_and_empty_headings_are_dropped() -> None:
    html = ("<html><head><title>Open day</title></head><body><h2>Empty</h2><h2>When</h2>"
            "<p>Saturday 4 May.</p><h5>Note</h5><p>Bring ID.</p></body></html>")
    records = sectionize_html(html, "https://x.example/open-day")
    assert [(r.page_name, r.section_title) for r in records] == [("Open day", "When")]
    assert records[0].text == "Saturday 4 May.\nNote\nBring ID."


def test_page_through_a_local_server_records_its_final_url() -> None:
    with serve_site(sample_site_dir()) as base:
        records = sectionize_source(base + "/apply.html")
    assert {r.url for r in records} == {base + "/admission/how-to-apply.html"}
    assert records[0].page_name == "How to apply for a master's programme"


def test_cli_sectionize_json_lists_records_with_every_field() -> None:
    result = runner.invoke(app, ["sectionize", str(SCM), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and set(rows[0]) == {"page_name", "section_title", "section_type", "text", "url", "chunk_id"}
    assert rows[0]["url"] == SCM.resolve().as_uri()


def test_cli_sectionize_plain_output() -> None:
    result = runner.invoke(app, ["sectionize", str(SCM)])
    assert result.exit_code == 0
    assert "[Entry requirements]" in result.stdout


@pytest.fixture()
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "notes.txt").write_text("Just some words, no markup at all.")
    (tmp_path / "blob.html").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "chrome.html").write_text("<html><body><nav>Home | Programmes</nav><header>Harbour</header>"
                                          "<footer>Contact</footer><script>x()</script></body></html>")
    (tmp_path / "folder").mkdir()
    return {"text": tmp_path / "notes.txt", "binary": tmp_path / "blob.html",
            "chrome": tmp_path / "chrome.html",
            "folder": tmp_path / "folder", "missing": tmp_path / "missing.html"}


@pytest.mark.parametrize(("kind", "message"), [
    ("missing", "no such file"),
    ("folder", "not a file"),
    ("binary", "binary content"),
    ("text", "not an HTML file"),
    ("chrome", "no text outside navigation"),
])
def test_bad_files_raise_and_the_cli_exits_nonzero(bad_inputs: dict[str, Path], kind: str,
                                                    message: str) -> None:
    path = bad_inputs[kind]
    with pytest.raises(InputError, match=message) as info:
        sectionize_source(path)
    assert info.value.path is not None and Path(info.value.path).name == path.name
    result = runner.invoke(app, ["sectionize", str(path)])
    assert result.exit_code == 2
    assert message in result.output and path.name in result.output


@pytest.mark.parametrize(("url", "message"), [
    ("http://", "not a valid http(s) URL"),
    ("ftp://example.org/page.html", "not a file path or an http(s) URL"),
    ("{base}/programmes/mba-maritime-leadership.html", "http-404"),
    ("{base}/files/graduate-brochure.pdf", "non-html"),
])
def test_bad_urls_exit_nonzero_with_the_reason(url: str, message: str) -> None:
    with serve_site(sample_site_dir()) as base:
        result = runner.invoke(app, ["sectionize", url.replace("{base}", base)])
    assert result.exit_code == 2
    assert message in result.output


def test_wrapper_named_after_a_banner_keeps_the_content_but_the_banner_goes() -> None:
    html = ('<body><div class="page has-cookie-banner"><div class="cookie-consent">Accept cookies</div>'
            '<div aria-label="Breadcrumb">Home / Study</div><main><h1>Study</h1><p>Real text.</p></main>'
            "</div></body>")
    records = sectionize_html(html, "https://x.example/study")
    assert [(r.page_name, r.text) for r in records] == [("Study", "Real text.")]
