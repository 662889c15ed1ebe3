"""Read and write section records as CSV, JSONL or Parquet, chosen by file extension.

CSV uses the columns of the reference corpus (``url,page_name,section_title,section_type,text_chunk``);
JSONL and Parquet use the record's field names (``text``; ``text_chunk`` is accepted on read).
Every malformed input raises :class:`~sitetune.errors.InputError` naming the file, line and field;
every write goes through a temporary file and a rename.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path

from sitetune.atomic import atomic_open, atomic_path
from sitetune.errors import InputError
from sitetune.records import SectionRecord, section_type_of

CSV_COLUMNS = ("url", "page_name", "section_title", "section_type", "text_chunk")
REQUIRED_FIELDS = ("url", "page_name", "section_title", "text")


class RecordFormat(StrEnum):
    """File formats for section records."""

    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


def format_of(path: str | Path) -> RecordFormat:
    """The record format implied by ``path``'s extension."""
    suffix = Path(path).suffix.lower().lstrip(".")
    aliases = {"csv": RecordFormat.CSV, "jsonl": RecordFormat.JSONL, "ndjson": RecordFormat.JSONL,
               "parquet": RecordFormat.PARQUET, "pq": RecordFormat.PARQUET}
    if suffix not in aliases:
        raise InputError(f"unknown extension '.{suffix}': use .csv, .jsonl or .parquet", path=str(path))
    return aliases[suffix]


def _record_from(row: dict[str, object], *, path: str, line: int) -> SectionRecord:
    values: dict[str, str] = {}
    if "text" not in row and "text_chunk" in row:
        row = {**row, "text": row["text_chunk"]}
    for name in (*REQUIRED_FIELDS, "section_type"):
        value = row.get(name)
        if value is None:
            if name == "section_type":
                continue
            shown = "text_chunk" if name == "text" and path.lower().endswith(".csv") else name
            raise InputError("missing value", path=path, line=line, field=shown)
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {type(value).__name__}", path=path, line=line, field=name)
        values[name] = value
    if not values["text"].strip():
        shown = "text_chunk" if path.lower().endswith(".csv") else "text"
        raise InputError("empty text", path=path, line=line, field=shown)
    if not values["page_name"].strip():
        raise InputError("empty page name", path=path, line=line, field="page_name")
    section_type = values.get("section_type") or section_type_of(values["section_title"])
    return SectionRecord(
        page_name=values["page_name"],
        section_title=values["section_title"],
        section_type=section_type,
        text=values["text"],
        url=values["url"],
    )


def _read_csv(path: Path) -> list[SectionRecord]:
    name = str(path)
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=name, line=line) from exc
    reader = csv.reader(raw.splitlines(keepends=True), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("empty file: expected a header row", path=name, line=1) from None
    except csv.Error as exc:
        raise InputError(f"broken CSV: {exc}", path=name, line=1) from exc
    missing = [c for c in ("url", "page_name", "section_title", "text_chunk") if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; header is {header}", path=name, line=1,
                         field=missing[0])
    records = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"broken CSV row: {exc}", path=name, line=line) from exc
        if not cells:
            continue
        if len(cells) != len(header):
            raise InputError(f"row has {len(cells)} cells, header has {len(header)}", path=name, line=line)
        records.append(_record_from(dict(zip(header, cells, strict=True)), path=name, line=line))
    return records


def _read_jsonl(path: Path) -> list[SectionRecord]:
    name = str(path)
    records = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"broken JSON: {exc.msg}", path=name, line=number) from exc
                if not isinstance(row, dict):
                    raise InputError("expected a JSON object", path=name, line=number)
                records.append(_record_from(row, path=name, line=number))
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path=name) from exc
    return records


def _read_parquet(path: Path) -> list[SectionRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", path=name) from exc
    columns = set(table.column_names)
    if "text" not in columns and "text_chunk" not in columns:
        raise InputError("missing column", path=name, field="text")
    for column in ("url", "page_name", "section_title"):
        if column not in columns:
            raise InputError("missing column", path=name, field=column)
    return [_record_from(row, path=name, line=i) for i, row in enumerate(table.to_pylist(), start=1)]


def read_records(path: str | Path) -> list[SectionRecord]:
    """Read section records from a CSV, JSONL or Parquet file.

    Args:
        path: The file; its extension picks the format.

    Returns:
        The records in file order (duplicates kept: see :class:`sitetune.corpus.Corpus`).

    Raises:
        InputError: The file is missing, unreadable or malformed; the message names file, line and field.
    """
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise InputError("no such file", path=str(path))
    readers = {RecordFormat.CSV: _read_csv, RecordFormat.JSONL: _read_jsonl, RecordFormat.PARQUET: _read_parquet}
    return readers[fmt](path)


def write_records(records: Iterable[SectionRecord], path: str | Path) -> int:
    """Write records atomically in the format the extension names; returns how many were written."""
    path = Path(path)
    fmt = format_of(path)
    rows: Sequence[SectionRecord] = list(records)
    if fmt is RecordFormat.CSV:
        with atomic_open(path) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for r in rows:
                writer.writerow([r.url, r.page_name, r.section_title, r.section_type, r.text])
    elif fmt is RecordFormat.JSONL:
        with atomic_open(path) as fh:
            for r in rows:
                fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([r.to_dict() for r in rows]) if rows else pa.table(
            {k: pa.array([], pa.string()) for k in ("page_name", "section_title", "section_type", "text", "url",
                                                    "chunk_id")})
        with atomic_path(path, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
    return len(rows)
