"""A council CSV export in: streamed row by row, each row its own inbox row, stored in batches.

Used by ``POST /api/v1/sources/{source}/csv`` and ``s117hub import-csv``. The file is never
held in memory: rows are read with the csv module from a byte stream, mapped (pure, so a bad
row is known at once) and stored ``BATCH_SIZE`` at a time in one transaction each; every
partition that got new work is hinted once per batch, after the commit.

Each stored row (channel ``council-csv``):
* message id ``<file ref>:<event_id cell>``, or ``<file ref>:<line>`` when the row has no
  event id; ``file ref`` is the file's name when given, else ``sha256:<digest of the file>``
  (a key over 200 characters is replaced by ``sha256:<digest of the key>``);
* payload ``{"line": n, "file": file ref, "row": {header: cell}}`` (what the worker maps);
* status ``received``, or ``failed`` with the mapping error when the row cannot be mapped.
A bad row is reported by line number and reason and does not stop the rest. The same file
imported again gives duplicates, not double facts.

Line numbers are physical lines (the header is line 1; a quoted cell may span lines; blank
lines are skipped but counted). Text is UTF-8 (a BOM is dropped) or, when the bytes are not
UTF-8, Windows-1252 as spreadsheet exports often are.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Engine

from mapping.council import map_csv_row
from mapping.errors import MappingError
from register_core.adapters.database import writer
from register_core.adapters.inbox import partition_for, store_message
from register_core.adapters.sources import SourceDefinition
from register_core.domain.commands import Command
from register_core.services.inbound import stored_error

from ..intake import person_key

CHANNEL = "council-csv"
BATCH_SIZE = 250
MAX_REPORTED_FAILURES = 1000  # the counts stay exact; the list of failures is capped
MAX_MESSAGE_ID = 200
_CHUNK = 1 << 20


class CsvFileError(Exception):
    """The file as a whole cannot be read as a council export (no header, no type column)."""

    def __init__(self, error: MappingError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RowFailure:
    line: int
    code: str
    message: str
    location: str | None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message,
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

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "accepted": self.accepted,
                "duplicates": self.duplicates, "failed": self.failed,
                "failures": [f.as_dict() for f in self.failures],
                "failures_truncated": self.failures_truncated}

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


def _message_id(file_ref: str, key: str) -> str:
    candidate = f"{file_ref}:{key}"
    if len(candidate) <= MAX_MESSAGE_ID:
        return candidate
    return f"sha256:{hashlib.sha256(candidate.encode('utf-8')).hexdigest()}"


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

    def run(self, stream: IO[bytes], progress: Callable[[int], None] | None = None
            ) -> CsvSummary:
        """Import a binary stream; ``progress`` gets the bytes read so far after each batch."""
        encoding = sniff_encoding(stream)
        counting = _Counting(stream)
        text = io.TextIOWrapper(io.BufferedReader(counting, _CHUNK), encoding=encoding,
                                newline="")
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
            text.detach()  # leave the caller's stream open
        return self.summary

    def _header(self, reader: Any) -> list[str]:
        type_header = self.source.csv.header("type")
        try:
            header = [cell.strip() for cell in next(reader)]
        except (StopIteration, csv.Error):
            header = []
        if type_header not in header:
            raise CsvFileError(MappingError(
                "missing-field", f"the header has no {type_header!r} column",
                location=f"line 1, column {type_header}", line=1))
        return header

    def _prepare(self, line: int, row: dict[str, str] | None) -> _Row:
        self.summary.rows += 1
        commands: list[Command] = []
        error: MappingError | None = None
        if row is None:
            row = {}
            error = MappingError("unparseable", "the row is not valid CSV",
                                 location=f"line {line}", line=line)
        else:
            try:
                commands = map_csv_row(row, line, self.source.csv, self.config,
                                       self.received_at, file_ref=self.file_ref)
            except MappingError as exc:
                error = exc
        columns = self.source.csv
        event_id = row.get(columns.header("event_id"), "").strip()
        kind = row.get(columns.header("type"), "").strip()
        payload = json.dumps({"line": line, "file": self.file_ref, "row": row},
                             ensure_ascii=False, separators=(",", ":"))
        return _Row(line=line, message_id=_message_id(self.file_ref, event_id or str(line)),
                    message_type=kind[:60] or None, payload=payload, commands=commands,
                    error=error)

    def _store(self, batch: list[_Row]) -> None:
        """One transaction for the batch, as ``Intake.accept`` would store each row."""
        touched: set[int] = set()
        source_id = self.source.source_id
        with writer(self.engine) as conn, conn.begin():
            results = []
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
                results.append(stored.duplicate)
        for partition in sorted(touched):
            self.notify(partition)
        for row, duplicate in zip(batch, results, strict=True):
            self._count(row, duplicate)

    def _count(self, row: _Row, duplicate: bool) -> None:
        if row.error is not None:
            self.summary._fail(RowFailure(row.line, row.error.code, row.error.message,
                                          row.error.location, duplicate))
        elif duplicate:
            self.summary.duplicates += 1
        else:
            self.summary.accepted += 1


def import_csv(stream: IO[bytes], *, engine: Engine, source: SourceDefinition, file_ref: str,
               received_at: datetime, notify: Callable[[int], None],
               batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None
               ) -> CsvSummary:
    """Import one export; raises CsvFileError when the header is unusable (nothing stored)."""
    importer = CsvImporter(engine, source, file_ref=file_ref, received_at=received_at,
                           notify=notify, batch_size=batch_size)
    return importer.run(stream, progress)
