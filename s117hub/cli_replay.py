"""``s117hub replay``: re-run stored inbound messages from their raw payload.

Replay is for messages that **failed** once the cause is fixed (a code-map entry, a source's
configuration in the database or the config file, which this command loads first). The
command selects messages by filter, puts them back to ``received``, and — because a command
line has no worker — applies them itself in this process with the same ``drain`` the workers
run. ``--no-apply`` only requeues them and hints the broker, for a running ``s117hub worker``
(or the sweeper of ``s117hub serve``) to pick up.

Never selected: ``rejected`` messages (unknown sender, unparseable: the sender must send them
again). ``applied`` messages only with ``--force``: re-applying appends their facts again.

Kept apart from ``cli.py`` (which imports ``add_replay``), so it imports nothing from there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.inbound_mapper import make_mapper
from register_core.adapters import message_store
from register_core.services.inbound import drain
from register_core.services.replay import refusal_for

from .cli_audit import audit_cli_writes
from .config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DESCRIPTION = (
    "Re-run stored inbound messages from their raw payload, typically failed ones after a "
    "fix to a source's code map or configuration (the config file's sources are loaded "
    "first). Selected messages go back to 'received' and are then applied in this process, "
    "as a worker would; --no-apply leaves that to a running worker. Rejected messages are "
    "never replayed; applied ones only with --force, as their facts are appended again.")
REPLAYABLE = ("failed", "received", "applied")


def _err(message: str) -> None:
    print(f"s117hub: {message}", file=sys.stderr)


def _iso(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _usage_problem(args: argparse.Namespace) -> str | None:
    statuses = set(args.status or ())
    if "rejected" in statuses:
        return ("rejected messages (unknown sender, unparseable) cannot be replayed: "
                "configure the source and ask the sender to send them again")
    if "applied" in statuses and not args.force:
        return "replaying applied messages appends their facts again: add --force"
    if args.since and args.until and args.until <= args.since:
        return "--until must be after --since"
    return None


def _filter(args: argparse.Namespace) -> message_store.MessageFilter:
    if args.status:
        statuses = set(args.status)
    elif args.id:  # named messages: whatever state they are in, within the rules below
        statuses = {"failed", "received"} | ({"applied"} if args.force else set())
    else:
        statuses = {"failed"}
    return message_store.MessageFilter(source=args.source, statuses=statuses,
                                       since=args.since, until=args.until,
                                       ids=args.id or None)


def _unreplayable_ids(conn: Any, args: argparse.Namespace) -> str | None:
    """With --id every named message must exist and be allowed, or nothing is done."""
    found = {m["id"]: m for m in message_store.summaries(conn, args.id)}
    missing = sorted(set(args.id) - set(found))
    if missing:
        return f"no stored message with id {', '.join(map(str, missing))}"
    # The rule the API and the console follow (register_core.services.replay).
    refused = {i: refusal_for(m["status"], force=args.force) for i, m in found.items()}
    rejected = sorted(i for i, why in refused.items() if why == "rejected")
    if rejected:
        return (f"message {', '.join(map(str, rejected))} was rejected (unknown sender or "
                "unparseable) and cannot be replayed")
    applied = sorted(i for i, why in refused.items() if why == "applied")
    if applied:
        return (f"message {', '.join(map(str, applied))} was applied already; replaying "
                "appends its facts again: add --force")
    return None


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print("id\tsource\tmessage_id\tchannel\tstatus\treceived_at\terror")
    for m in rows:
        error = m["error"] or {}
        code = error.get("code") or "-"
        print("\t".join([str(m["id"]), m["source"], m["message_id"], m["channel"],
                         m["status"], m["received_at"].isoformat(), str(code)]))


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        _err(problem)
        return EXIT_USAGE
    from .bootstrap import bootstrap

    hub = bootstrap(settings)
    try:
        # A fix made in the config file counts, as at `serve`: an entry edited in the file is
        # applied; an unchanged one leaves the stored source (and its API fix) alone.
        hub.sources.preload(hub.file_config.sources, hub.clock.now())
        with hub.engine.connect() as conn:
            if args.id:
                problem = _unreplayable_ids(conn, args)
                if problem:
                    _err(problem)
                    return EXIT_USAGE
            ids = message_store.select_ids(conn, _filter(args))
            selected = message_store.summaries(conn, ids)
            # Read before the replay clears the mapped commands that name them.
            concerned = [(str(m["id"]), person_id) for m in selected
                         for person_id in message_store.people_concerned(conn, m) or [None]]
        if args.dry_run:
            _print_rows(selected)
            print(f"would replay {len(ids)} message(s)")
            return EXIT_OK
        requeued = len(hub.inbox.requeue({m["id"]: m["status"] for m in selected
                                           if m["status"] != "received"}))
        audit_cli_writes(hub.engine, hub.clock, "replay", "inbound-message", concerned)
        print(f"requeued {requeued} message(s)")
        if args.no_apply:
            for partition in sorted({m["partition"] for m in selected}):
                hub.notify(partition)
            return EXIT_OK
        drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
        with hub.engine.connect() as conn:
            after = message_store.summaries(conn, ids)
        applied = sum(1 for m in after if m["status"] == "applied")
        failed = [m for m in after if m["status"] == "failed"]
        print(f"applied {applied}, failed {len(failed)}")
        if failed:
            _print_rows(failed)
            return EXIT_FAILED
        return EXIT_OK
    finally:
        hub.close()


def add_replay(subparsers: Any) -> argparse.ArgumentParser:
    """Declare ``replay`` on the ``s117hub`` sub-command parser."""
    replay = subparsers.add_parser(
        "replay", help="re-run stored inbound messages (failed ones by default)",
        description=DESCRIPTION,
        epilog="Exit status: 0 done (or nothing matched), 1 some replayed messages failed "
        "again (listed), 2 usage error (nothing changed).")
    replay.add_argument("--source", help="only messages from this source id")
    replay.add_argument("--status", action="append", choices=(*REPLAYABLE, "rejected"),
                        help="only messages in this state (repeatable); default failed, or "
                        "failed and received with --id. applied needs --force; rejected "
                        "never replays")
    replay.add_argument("--since", type=_iso, help="received at or after (ISO 8601, UTC "
                        "when no offset)")
    replay.add_argument("--until", type=_iso, help="received before (ISO 8601)")
    replay.add_argument("--id", type=int, nargs="+", metavar="N", action="extend",
                        help="these stored message ids")
    replay.add_argument("--force", action="store_true",
                        help="allow applied messages (their facts are appended again)")
    replay.add_argument("--dry-run", action="store_true",
                        help="list what would be replayed and change nothing")
    replay.add_argument("--no-apply", action="store_true",
                        help="requeue only; leave applying to a running worker")
    replay.set_defaults(handler=cmd_replay)
    return replay


def run(argv: Sequence[str], settings: Settings | None = None) -> int:
    """``s117hub replay ARGS`` on its own (tests, and scripts that import it)."""
    parser = argparse.ArgumentParser(prog="s117hub")
    add_replay(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(["replay", *argv])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return int(args.handler(settings or Settings(), args))
