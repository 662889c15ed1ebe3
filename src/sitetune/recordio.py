"""Read and write section records as CSV, JSONL or Parquet, chosen by file extension.

CSV uses the columns of the reference corpus (``url,page_name,section_title,section_type,text_chunk``);
JSONL and Parquet use the record's field names (``text``; ``text_chunk`` is accepted on read).
Every malformed input raises :class:`~sitetune.errors.InputError` naming the file, line and field;
every write goes through a temporary file and a rename.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path

from sitetune.atomic import atomic_open, atomic_path
from sitetune.errors import InputError
from sitetune.records import SectionRecord, section_type_of

CSV_COLUMNS = ("url", "page_name", "section_title", "section_type", "text_chunk")
REQUIRED_FIELDS = ("url", "page_name", "section_title", "text")
_PARQUET_BATCH = 8192


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


def _utf8_lines(path: Path) -> Iterator[str]:
    """The file's lines decoded one at a time (a leading BOM dropped); bad UTF-8 names its line and byte."""
    name = str(path)
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"not valid UTF-8 (byte {offset + exc.start})", path=name, line=number) from exc
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            offset += len(raw)
            yield text


def _iter_csv(path: Path) -> Iterator[SectionRecord]:
    name = str(path)
    reader = csv.reader(_utf8_lines(path), strict=True)
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
        yield _record_from(dict(zip(header, cells, strict=True)), path=name, line=line)


def _iter_jsonl(path: Path) -> Iterator[SectionRecord]:
    name = str(path)
    for number, text in enumerate(_utf8_lines(path), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"broken JSON: {exc.msg}", path=name, line=number) from exc
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=name, line=number)
        yield _record_from(row, path=name, line=number)


def _iter_parquet(path: Path) -> Iterator[SectionRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", path=name) from exc
    columns = set(parquet.schema_arrow.names)
    if "text" not in columns and "text_chunk" not in columns:
        raise InputError("missing column", path=name, field="text")
    for column in ("url", "page_name", "section_title"):
        if column not in columns:
            raise InputError("missing column", path=name, field=column)
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
            for values in batch.to_pylist():
                row += 1
                yield _record_from(values, path=name, line=row)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"not a readable Parquet file: {exc}", path=name, line=row + 1) from exc


def iter_records(path: str | Path) -> Iterator[SectionRecord]:
    """Read section records one at a time from a CSV, JSONL or Parquet file (memory does not grow with it).

    Args:
        path: The file; its extension picks the format.

    Yields:
        The records in file order (duplicates kept).

    Raises:
        InputError: The file is missing, unreadable or malformed (raised when the bad row is reached);
            the message names file, line and field.
    """
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise InputError("no such file", path=str(path))
    readers = {RecordFormat.CSV: _iter_csv, RecordFormat.JSONL: _iter_jsonl, RecordFormat.PARQUET: _iter_parquet}
    return readers[fmt](path)


def read_records(path: str | Path) -> list[SectionRecord]:
    """Read section records from a CSV, JSONL or Parquet file.

    Args:
        path: The file; its extension picks the format.

    Returns:
        The records in file order (duplicates kept: see :class:`sitetune.corpus.Corpus`).

    Raises:
        InputError: The file is missing, unreadable or malformed; the message names file, line and field.
    """
    return list(iter_records(path))


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
