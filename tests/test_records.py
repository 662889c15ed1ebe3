from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sitetune.errors import InputError
from sitetune.recordio import read_records, write_records
from sitetune.records import SectionRecord, chunk_id_of, section_type_of


def test_chunk_id_follows_the_published_rule() -> None:
    text = "  Entry   requirements\n\tapply  "
    expected = hashlib.sha1(b"Entry requirements apply").hexdigest()[:16]
    assert chunk_id_of(text) == expected
    assert SectionRecord("P", "T", "T", text, "u").chunk_id == expected
    assert chunk_id_of("a b") != chunk_id_of("a  c")


def test_section_type_drops_part_suffix() -> None:
    assert section_type_of("About the programme (Part 3)") == "About the programme"
    assert section_type_of("Deadlines") == "Deadlines"


def test_card_text_has_no_space_before_text() -> None:
    r = SectionRecord("Finance", "Intro", "Intro", "Study finance.", "https://x")
    assert r.card_text() == "page_name: Financetext: Study finance."


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_round_trip_every_format(tmp_path: Path, ext: str) -> None:
    records = [
        SectionRecord("Page A", "Deadlines (Part 1)", "Deadlines", 'Apply by 1 March, "sharp".\nSecond line', "https://a"),
        SectionRecord("Page B", "Fees", "Fees", "No fees for EU students.", "https://b"),
    ]
    path = tmp_path / f"corpus.{ext}"
    assert write_records(records, path) == 2
    assert read_records(path) == records
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_cbs_csv_reads_every_row(cbs_csv: Path) -> None:
    records = read_records(cbs_csv)
    assert len(records) == 1643
    assert all(r.text.strip() for r in records)


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


HEADER = "url,page_name,section_title,section_type,text_chunk\n"


@pytest.mark.parametrize(
    ("content", "line", "field", "message"),
    [
        ("url,page_name,section_title,section_type\nu,p,t,t\n", 1, "text_chunk", "missing column"),
        (HEADER + "u,p,t,t,ok\nu,p,t,t,\n", 3, "text_chunk", "empty text"),
        (HEADER + "u,p,t,t,ok\nu,p,t\n", 3, None, "row has 3 cells"),
        (HEADER + 'u,p,t,t,"unterminated\n', 2, None, "broken CSV"),
        (HEADER.encode() + b"u,p,t,t,caf\xe9\n", 2, None, "not valid UTF-8"),
    ],
)
def test_malformed_csv_names_file_line_and_field(
    tmp_path: Path, content: str | bytes, line: int, field: str | None, message: str
) -> None:
    path = _write(tmp_path / "bad.csv", content)
    with pytest.raises(InputError) as info:
        read_records(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert err.field == field
    assert message in str(err) and str(path) in str(err)


def test_malformed_jsonl_names_line_and_field(tmp_path: Path) -> None:
    good = json.dumps({"url": "u", "page_name": "p", "section_title": "t", "text": "x"})
    path = _write(tmp_path / "bad.jsonl", good + "\n{not json\n")
    with pytest.raises(InputError, match="line 2") as info:
        read_records(path)
    assert info.value.line == 2
    path = _write(tmp_path / "bad2.jsonl", good + "\n" + json.dumps({"url": "u", "section_title": "t", "text": "x"}))
    with pytest.raises(InputError) as info:
        read_records(path)
    assert (info.value.line, info.value.field) == (2, "page_name")


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown extension"):
        read_records(tmp_path / "corpus.txt")
    with pytest.raises(InputError, match="no such file"):
        read_records(tmp_path / "absent.csv")


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    write_records([SectionRecord("P", "T", "T", "old", "u")], path)
    before = path.read_bytes()

    def exploding():  # type: ignore[no-untyped-def]
        yield SectionRecord("P", "T", "T", "new", "u")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_records(exploding(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.jsonl"]
