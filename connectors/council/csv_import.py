"""A council CSV export in: streamed row by row, each row its own inbox row, stored in batches.

Used by ``POST /api/v1/sources/{source}/csv`` and ``s117hub import-csv``. The file is never
held in memory: rows are read with the csv module from a byte stream, mapped (pure, so a bad
row is known at once) and stored ``BATCH_SIZE`` at a time in one transaction each; every
partition that got new work is hinted once per batch, after the commit.

Each stored row (channel ``council-csv``):
* message id (``row_message_id``, the same for both routes): the row's own event id (the
  cell of the source's ``event_id`` column, trimmed) when it has one of at most 200
  characters, exactly as a council REST event's id is its ``event_id``; otherwise
  ``sha256:<hex>`` over the normalised row: every field of the column map (``event_id``,
  ``type``, ``nhs_number``, …) with its cell trimmed of surrounding whitespace, empty cells
  and columns the map does not name left out, as JSON with the field names sorted. So the
  key is what the mapper reads: column order, header spelling, extra columns (notes),
  padding and the file's name do not change it; any changed value does. A row csv cannot
  parse is ``unparseable:<random uuid>`` (nothing of it can be read or applied);
* payload ``{"line": n, "file": file ref, "row": {header: cell}}`` (what the worker maps;
  ``file ref`` is the file's name when given, else ``sha256:<digest of the file>``; file
  and line are for provenance and error reports, never part of the key);
* status ``received``, or ``failed`` with the mapping error when the row cannot be mapped.
A repeated row or event id is a duplicate, whichever file or route brings it (and, in a
source that also takes REST events, the same ``event_id`` posted as JSON): acknowledged,
counted as a duplicate and applied once; the first row's outcome stands (a row whose first
copy failed is reported failed again). Two identical rows without an event id are one event.
A bad row is reported by line number and reason and does not stop the rest; each failure
also carries ``reason``, a description that never quotes a cell (for logs: the command
line prints it), while ``message`` and the stored error keep the detail.

Line numbers are physical lines (the header is line 1; a quoted cell may span lines; blank
lines are skipped but counted). Text is UTF-8 (a BOM is dropped). A file that is not UTF-8
throughout is decoded line by line: a line that is UTF-8 as such, any other as Windows-1252
(as spreadsheet exports often are), the five bytes Windows-1252 leaves undefined (0x81, 0x8D,
0x8F, 0x90, 0x9D) as the Latin-1 control characters they are there (U+0081 …), so no file
fails to decode; the summary's ``notices`` then says which lines were read so. A cell (or a
header) holding a NUL character (U+0000) makes its row ``failed`` (``invalid-value`` at
``line n, column c``): PostgreSQL cannot store it, so the stored payload writes it
``\\u0000`` (the same JSON value) and the row is keyed by its content, not its event id.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Engine

from mapping.council import CSV_FIELDS, CsvColumnMap, header_without_type, map_csv_row
from mapping.errors import MappingError
from register_core.adapters.database import writer
from register_core.adapters.inbox import Stored, partition_for, store_message
from register_core.adapters.sources import SourceDefinition
from register_core.domain.commands import Command
from register_core.services.inbound import stored_error

from ..inbound_mapper import NUL_MESSAGE, csv_nul_column, json_without_nul, nul_error, without_nul
from ..intake import person_key
from .events import message_id_for

CHANNEL = "council-csv"
BATCH_SIZE = 250
MAX_REPORTED_FAILURES = 1000  # the counts stay exact; the list of failures is capped
MAX_NOTED_LINES = 10  # lines named in a decoding notice
_CHUNK = 1 << 20
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_BOM = codecs.BOM_UTF8
# Windows-1252 leaves five bytes undefined; read them as Latin-1 does (C1 controls), as the
# WHATWG encoding standard does, so that every byte decodes.
_UNDEFINED_1252 = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
_SURROGATE_TO_LATIN1 = {0xDC00 + byte: byte for byte in _UNDEFINED_1252}


class CsvFileError(Exception):
    """The file as a whole cannot be read as a council export (no header, no type column)."""

    def __init__(self, error: MappingError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RowFailure:
    line: int
    code: str
    message: str  # the mapping error as stored: may quote the offending cell
    location: str | None
    duplicate: bool = False
    reason: str = ""  # the same problem without any cell value (``describe_failure``)

    def as_dict(self, *, echo_values: bool = True) -> dict[str, Any]:
        """``echo_values=False``: ``message`` is the value-free ``reason`` (for logs)."""
        return {"line": self.line, "code": self.code,
                "message": self.message if echo_values else self.reason,
                "location": self.location, "duplicate": self.duplicate}


@dataclass
class CsvSummary:
    """Rows read (non-blank data rows) = accepted + duplicates + failed."""

    file: str
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    failures: list[RowFailure] = field(default_factory=list)
    failures_truncated: bool = False
    notices: list[str] = field(default_factory=list)  # e.g. how a non-UTF-8 file was read

    def as_dict(self, *, echo_values: bool = True) -> dict[str, Any]:
        """``notices`` only when there are some (a UTF-8 file has none)."""
        summary: dict[str, Any] = {
            "file": self.file, "rows": self.rows, "accepted": self.accepted,
            "duplicates": self.duplicates, "failed": self.failed,
            "failures": [f.as_dict(echo_values=echo_values) for f in self.failures],
            "failures_truncated": self.failures_truncated}
        if self.notices:
            summary["notices"] = list(self.notices)
        return summary

    def _fail(self, failure: RowFailure) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append(failure)
        else:
            self.failures_truncated = True


@dataclass(frozen=True)
class _Row:
    line: int
    message_id: str
    message_type: str | None
    payload: str
    commands: list[Command]
    error: MappingError | None


def file_digest(stream: IO[bytes]) -> str:
    """``sha256:<hex>`` of a seekable stream, read in chunks; the stream is rewound."""
    sha = hashlib.sha256()
    start = stream.tell()
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
    stream.seek(start)
    return f"sha256:{sha.hexdigest()}"


def sniff_encoding(stream: IO[bytes]) -> str:
    """``utf-8-sig`` when every byte decodes as UTF-8, else ``cp1252``; the stream is rewound."""
    start = stream.tell()
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp1252"
    finally:
        stream.seek(start)


def _physical_lines(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """The stream's lines, each with its ending (``\\r\\n``, ``\\r`` or ``\\n``), as a text
    file opened with ``newline=""`` gives them; read in chunks, never the whole file."""
    parts: list[bytes] = []
    while chunk := read(_CHUNK):
        start = 0
        if parts and parts[-1].endswith(b"\r") and not chunk.startswith(b"\n"):
            yield b"".join(parts)  # a lone CR ended the last chunk: that line is complete
            parts = []
        for match in _NEWLINE.finditer(chunk):
            end = match.end()
            if end == len(chunk) and match.group() == b"\r":
                break  # maybe the CR of a CRLF split over two chunks
            parts.append(chunk[start:end])
            yield b"".join(parts)
            parts, start = [], end
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts)


class _LineDecoder:
    """Decodes a file that is not UTF-8 throughout, line by line, never failing: UTF-8 when
    the line is UTF-8, else Windows-1252 (its undefined bytes as Latin-1). Notes which."""

    def __init__(self) -> None:
        self.line = 0
        self.windows_1252: list[int] = []
        self.windows_1252_count = 0
        self.undefined: list[int] = []
        self.undefined_count = 0

    def decode(self, lines: Iterable[bytes]) -> Iterator[str]:
        for raw in lines:
            self.line += 1
            if self.line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                yield raw.decode("utf-8")
                continue
            except UnicodeDecodeError:
                pass
            self.windows_1252_count += 1
            if len(self.windows_1252) < MAX_NOTED_LINES:
                self.windows_1252.append(self.line)
            # surrogateescape: an undefined byte b comes out as U+DC00 + b, then as U+00 + b.
            escaped = raw.decode("cp1252", errors="surrogateescape")
            text = escaped.translate(_SURROGATE_TO_LATIN1)
            if text != escaped:
                self.undefined_count += 1
                if len(self.undefined) < MAX_NOTED_LINES:
                    self.undefined.append(self.line)
            yield text

    def notices(self) -> list[str]:
        notes: list[str] = []
        if self.windows_1252_count:
            notes.append(f"the file is not UTF-8 throughout: {self.windows_1252_count} of "
                         f"{self.line} lines were read as Windows-1252 ("
                         f"{_lines(self.windows_1252, self.windows_1252_count)}); check the "
                         "names on them, and export as UTF-8 if you can")
        if self.undefined_count:
            where = _lines(self.undefined, self.undefined_count)
            notes.append("bytes Windows-1252 does not define (0x81, 0x8D, 0x8F, 0x90 or "
                         f"0x9D) on {where} were kept as the control characters U+0081 … "
                         "U+009D")
        return notes


def _lines(noted: list[int], count: int) -> str:
    shown = ", ".join(str(n) for n in noted)
    more = f" and {count - len(noted)} more" if count > len(noted) else ""
    return f"line{'s' if count > 1 else ''} {shown}{more}"


class _Counting(io.RawIOBase):
    """Counts the bytes read from the caller's stream (for a progress bar); never closes it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        return len(data)


def normalised_row(row: dict[str, str], columns: CsvColumnMap) -> dict[str, str]:
    """The fields the mapper reads, by our field name, trimmed; empty cells left out."""
    cells: dict[str, str] = {}
    for name in CSV_FIELDS:
        value = row.get(columns.header(name))
        if isinstance(value, str) and value.strip():
            cells[name] = value.strip()
    return cells


def row_message_id(row: dict[str, str], columns: CsvColumnMap) -> str:
    """A row's inbox key: its event id, else ``sha256:`` of the normalised row.

    The same rule as a council REST event's key (``events.message_id_for``), the normalised
    row standing in for the event's JSON; never the file's name or the row's line."""
    cells = normalised_row(row, columns)
    canonical = json.dumps(cells, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return message_id_for(cells.get("event_id"), canonical)


_DATE_FIELDS = frozenset({"birth_date", "start", "end", "date", "council_signoff_date",
                          "icb_signoff_date"})
_STRFTIME = {"%d": "dd", "%m": "mm", "%Y": "yyyy", "%y": "yy", "%H": "hh", "%M": "mm",
             "%S": "ss", "%b": "mon", "%B": "month"}


def _shown(fmt: str) -> str:
    for directive, shown in _STRFTIME.items():
        fmt = fmt.replace(directive, shown)
    return fmt


def describe_failure(code: str, field_name: str | None, columns: CsvColumnMap) -> str:
    """What is wrong, from the error code and the field alone: never a cell's value."""
    if code == "unparseable":
        return "the row is not valid CSV"
    if code == "missing-field":
        if field_name == "type":
            return "no event type"
        if field_name:
            return "required but empty"
        return ("a required value is missing (the person needs an NHS number, a local id, "
                "or a name and birth date)")
    if code == "unsupported-event":
        return "not a supported event type"
    if code == "unknown-code":
        return "a code that is neither standard nor in the source's code map"
    if field_name == "occurred_at":
        return "not a date and time (ISO 8601 expected)"
    if field_name in _DATE_FIELDS:
        shown = " or ".join(_shown(fmt) for fmt in columns.date_formats)
        return f"not a date ({shown} expected)"
    if field_name == "nhs_number":
        return "not a valid NHS number (ten digits with a modulus-11 check digit)"
    return "invalid value"


def _records(reader: Any, header: list[str]) -> Iterator[tuple[int, dict[str, str] | None]]:
    """(first physical line, row dict) per non-blank row; None for a row csv cannot parse."""
    while True:
        before = reader.line_num
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield before + 1, None
            continue
        if not any(cell.strip() for cell in cells):
            continue
        row = {name: "" for name in header}
        row.update(zip(header, cells, strict=False))  # extra cells (no header) are dropped
        yield before + 1, row


class CsvImporter:
    """One import: a source, a file ref and a received-at time shared by every row."""

    def __init__(self, engine: Engine, source: SourceDefinition, *, file_ref: str,
                 received_at: datetime, notify: Callable[[int], None],
                 batch_size: int = BATCH_SIZE) -> None:
        self.engine = engine
        self.source = source
        self.config = source.mapping_config()
        self.file_ref = file_ref
        self.received_at = received_at
        self.notify = notify
        self.batch_size = max(1, batch_size)
        self.summary = CsvSummary(file=file_ref)
        columns = source.csv
        self._field_of = {columns.header(name): name for name in CSV_FIELDS}

    def run(self, stream: IO[bytes], progress: Callable[[int], None] | None = None
            ) -> CsvSummary:
        """Import a binary stream; ``progress`` gets the bytes read so far after each batch."""
        encoding = sniff_encoding(stream)
        counting = _Counting(stream)
        decoder: _LineDecoder | None = None
        text: Iterable[str]
        if encoding == "utf-8-sig":
            wrapper = io.TextIOWrapper(io.BufferedReader(counting, _CHUNK),
                                       encoding=encoding, newline="")
            text = wrapper
        else:
            wrapper = None
            decoder = _LineDecoder()
            text = decoder.decode(_physical_lines(counting.read))
        try:
            reader = csv.reader(text)
            header = self._header(reader)
            batch: list[_Row] = []
            for line, row in _records(reader, header):
                batch.append(self._prepare(line, row))
                if len(batch) >= self.batch_size:
                    self._store(batch)
                    batch = []
                    if progress:
                        progress(counting.count)
            if batch:
                self._store(batch)
            if progress:
                progress(counting.count)
        finally:
            if wrapper is not None:
                wrapper.detach()  # leave the caller's stream open
        if decoder is not None:
            self.summary.notices.extend(decoder.notices())
        return self.summary

    def _header(self, reader: Any) -> list[str]:
        type_header = self.source.csv.header("type")
        try:
            header = [cell.strip() for cell in next(reader)]
        except (StopIteration, csv.Error):
            header = []
        column = csv_nul_column(dict.fromkeys(header, ""))
        if column is not None:
            raise CsvFileError(nul_error(f"line 1, column {column}", line=1))
        if type_header not in header:
            raise CsvFileError(header_without_type(header, type_header))
        return header

    def _prepare(self, line: int, row: dict[str, str] | None) -> _Row:
        self.summary.rows += 1
        commands: list[Command] = []
        error: MappingError | None = None
        columns = self.source.csv
        if row is None:
            row = {}
            message_id = f"unparseable:{uuid.uuid4()}"  # no content to key it by
            error = MappingError("unparseable", "the row is not valid CSV",
                                 location=f"line {line}", line=line)
        elif (column := csv_nul_column(row)) is not None:
            # Keyed by content: the event id may hold the NUL (PostgreSQL stores neither).
            canonical = json.dumps(normalised_row(row, columns), ensure_ascii=False,
                                   sort_keys=True, separators=(",", ":"))
            message_id = message_id_for(None, canonical)
            error = nul_error(f"line {line}, column {column}", line=line)
        else:
            message_id = row_message_id(row, columns)
            try:
                commands = map_csv_row(row, line, columns, self.config,
                                       self.received_at, file_ref=self.file_ref)
            except MappingError as exc:
                error = exc
        kind = without_nul(row.get(columns.header("type"), "").strip())
        payload = json_without_nul(json.dumps({"line": line, "file": self.file_ref, "row": row},
                                              ensure_ascii=False, separators=(",", ":")))
        return _Row(line=line, message_id=message_id, message_type=kind[:60] or None,
                    payload=payload, commands=commands, error=error)

    def _store(self, batch: list[_Row]) -> None:
        """One transaction for the batch, as ``Intake.accept`` would store each row."""
        touched: set[int] = set()
        source_id = self.source.source_id
        with writer(self.engine) as conn, conn.begin():
            results: list[Stored] = []
            for row in batch:
                partition = partition_for(person_key(row.commands, source_id))
                status = "failed" if row.error is not None else "received"
                stored = store_message(
                    conn, source=source_id, message_id=row.message_id, channel=CHANNEL,
                    message_type=row.message_type, payload=row.payload,
                    received_at=self.received_at, partition=partition, status=status,
                    error=stored_error(row.error) if row.error is not None else None)
                if not stored.duplicate and status == "received":
                    touched.add(partition)
                results.append(stored)
        for partition in sorted(touched):
            self.notify(partition)
        for row, stored in zip(batch, results, strict=True):
            self._count(row, stored)

    def _count(self, row: _Row, stored: Stored) -> None:
        """The first copy's outcome stands for a duplicate, as for a repeated REST event."""
        if stored.duplicate and stored.status not in ("failed", "rejected"):
            self.summary.duplicates += 1
        elif row.error is not None:
            error = row.error
            reason = (NUL_MESSAGE if error.message == NUL_MESSAGE else
                      describe_failure(error.code, self._field(row.line, error),
                                       self.source.csv))
            self.summary._fail(RowFailure(
                row.line, error.code, error.message, error.location, stored.duplicate,
                reason=reason))
        elif stored.duplicate:  # failed the first time; this copy maps (a fixed code map?)
            message = ("this row was stored before and could not be applied (replay it "
                       "from the console)")
            self.summary._fail(RowFailure(row.line, "invalid-value", message,
                                          f"line {row.line}", True, reason=message))
        else:
            self.summary.accepted += 1

    def _field(self, line: int, error: MappingError) -> str | None:
        """Our field name for the column a row error names (``line 7, column Start``)."""
        prefix = f"line {line}, column "
        location = error.location or ""
        return self._field_of.get(location[len(prefix):]) if location.startswith(prefix) \
            else None


def import_csv(stream: IO[bytes], *, engine: Engine, source: SourceDefinition, file_ref: str,
               received_at: datetime, notify: Callable[[int], None],
               batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None
               ) -> CsvSummary:
    """Import one export; raises CsvFileError when the header is unusable (nothing stored)."""
    importer = CsvImporter(engine, source, file_ref=file_ref, received_at=received_at,
                           notify=notify, batch_size=batch_size)
    return importer.run(stream, progress)
