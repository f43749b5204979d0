"""``s117hub import-csv FILE --source S``: import a council CSV export from a local file.

For integration engineers (no token: it runs where the database is). The file streams in
batches; a bad row is stored as failed, reported by line number, and does not stop the rest.
The summary goes to stdout (``--json`` for scripts), the progress bar to stderr. Rows are
applied by the workers (``s117hub serve`` or ``s117hub worker``; their sweeper also finds
rows imported while no broker was reachable).

A row is known by its event id, or else by its content (``connectors.council.csv_import``),
never by the file's name: a nightly export with a fixed name imports each night's new rows,
and rows already imported (by this command or over HTTP) are counted as duplicates.

Failure lines name the line, the column and the problem but never a cell's value (cron mails
and logs must not carry names or NHS numbers); the full error, with the value, is kept with
the stored row (``GET /api/v1/messages?source=S&status=failed``).

Exit codes: 0 every row accepted (or already there), 1 some rows failed (the rest imported)
or the file is not an export, 2 usage (unknown or non-council source, missing file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from connectors.council.csv_import import BATCH_SIZE, CsvFileError, CsvSummary, import_csv

from .cli_audit import audit_cli_writes
from .config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
COUNCIL_KINDS = ("council-csv", "council-rest", "council-poll")


def _err(message: str) -> None:
    print(f"s117hub: {message}", file=sys.stderr)


def _print_summary(summary: CsvSummary, source: str, as_json: bool) -> None:
    """Never a cell's value: each failure is its value-free ``reason``."""
    if as_json:
        print(json.dumps(summary.as_dict(echo_values=False), indent=2))
        return
    print(f"file: {summary.file}")
    print(f"rows read: {summary.rows}")
    print(f"accepted: {summary.accepted}")
    print(f"duplicates: {summary.duplicates}")
    print(f"failed: {summary.failed}")
    for failure in summary.failures:
        prefix = f"line {failure.line}, column "
        column = (f"column {failure.location[len(prefix):]}: "
                  if failure.location and failure.location.startswith(prefix) else "")
        again = " [stored before]" if failure.duplicate else ""
        print(f"  line {failure.line}: {column}{failure.reason} ({failure.code}){again}")
    if summary.failures_truncated:
        print(f"  … and {summary.failed - len(summary.failures)} more failed rows")
    if summary.failed:
        print(f"  (the full errors are kept with the stored rows: GET /api/v1/messages"
              f"?source={source}&status=failed)")


def cmd_import_csv(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        _err(f"no such file: {path}")
        return EXIT_USAGE
    if args.batch_size < 1:
        _err("--batch-size must be at least 1")
        return EXIT_USAGE
    from .cli import _hub  # late: cli imports this module to register the command

    hub = _hub(settings)
    try:
        source = hub.sources.get(args.source)
        if source is None or source.kind not in COUNCIL_KINDS:
            _err(f"no council source {args.source!r} (create it first: POST /api/v1/sources "
                 "or the config file)")
            return EXIT_USAGE
        with path.open("rb") as stream, tqdm(
                total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name,
                file=sys.stderr, disable=args.no_progress) as bar:
            def progress(done: int) -> None:
                bar.update(done - bar.n)

            summary = import_csv(stream, engine=hub.engine, source=source,
                                 file_ref=path.name, received_at=hub.clock.now(),
                                 notify=hub.notify, batch_size=args.batch_size,
                                 progress=progress)
        # As the HTTP route audits the file it stored (architecture 6).
        audit_cli_writes(hub.engine, hub.clock, "import-csv", "inbound-file",
                         [(path.name[:100], None)])
    except CsvFileError as exc:
        _err(f"{path.name} is not a council export: {exc.error.message} "
             f"({exc.error.location})")
        return EXIT_FAILED
    finally:
        hub.close()
    _print_summary(summary, source.source_id, args.json)
    return EXIT_OK if summary.failed == 0 else EXIT_FAILED


def add_import_csv(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``import-csv`` on the ``s117hub`` sub-command parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import-csv", help="import a council CSV export (one event per row)",
        description="Import a council CSV export: each row is stored as its own message "
        "and applied by the workers. Columns follow the source's CSV column map.")
    parser.add_argument("file", metavar="FILE", type=Path, help="the CSV file")
    parser.add_argument("--source", required=True, metavar="S",
                        help="the council source the export comes from")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"rows per transaction (default {BATCH_SIZE})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cmd_import_csv)
    return parser
