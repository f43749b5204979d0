"""The one way an inbound adapter hands over a message: store it durably, then hint a worker.

Adapters parse and map first (pure and cheap) so that they can answer at once: a message that
maps is stored ``received`` and applied by a worker; one that cannot is stored ``failed`` with
its error (kept for the console and replay). Either way it is committed before the adapter
answers, and a repeat of the same source + message id is recognised as a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mapping.errors import MappingError
from register_core.adapters.inbox import Inbox, Stored, bytes_to_keep, partition_for
from register_core.domain.codec import to_json
from register_core.domain.commands import Command, MergePersons
from register_core.services.inbound import stored_error


def person_key(commands: list[Command], source: str) -> str | None:
    """The key that keeps one person's messages from a source in one partition (and so in
    the order the source sent them).

    The source's own record id first: a source names its record on every message (PID-3's
    MR), while the NHS number may come on some and not others, and keyed by whichever came
    first an A11 with the local id alone was applied before the A01 it cancels. A merge (A40)
    goes with the record it merges away, after everything the source told of that record and
    before anything it tells of it later (by then, of the survivor). Messages from different
    sources have no order between them to keep."""
    for command in commands:
        if isinstance(command, MergePersons):
            return f"{source}:{command.merged_local_id}"
    for command in commands:
        if command.person.local_id:
            return f"{source}:{command.person.local_id}"
    for command in commands:
        if command.person.nhs_number:
            return command.person.nhs_number
    return None


@dataclass(frozen=True)
class Row:
    """An inbox row ready to store, and whether storing it new should hint a worker."""

    fields: dict[str, Any]
    partition: int = 0
    hint: bool = False


@dataclass
class Intake:
    inbox: Inbox
    notify: Callable[[int], None]

    def accept(self, *, source: str, channel: str, message_id: str, message_type: str | None,
               payload: str, received_at: datetime, commands: list[Command],
               error: MappingError | None = None, ack: str | None = None,
               keep_commands: bool = False, received: bytes | None = None) -> Stored:
        """``keep_commands``: the commands are exactly what the worker's mapper makes of the
        stored payload, so they are stored with it and the worker skips mapping again.
        ``received``: the bytes as they came, kept where ``payload`` does not give them back."""
        row = self.accepted_row(
            source=source, channel=channel, message_id=message_id, message_type=message_type,
            payload=payload, received_at=received_at, commands=commands, error=error, ack=ack,
            keep_commands=keep_commands, received=received)
        return self.stored(row, self.inbox.store(**row.fields))

    def accepted_row(self, *, source: str, channel: str, message_id: str,
                     message_type: str | None, payload: str, received_at: datetime,
                     commands: list[Command], error: MappingError | None = None,
                     ack: str | None = None, keep_commands: bool = False,
                     received: bytes | None = None) -> Row:
        """What ``accept`` stores, for a caller that stores it itself (``store_async``)."""
        partition = partition_for(person_key(commands, source))
        status = "failed" if error is not None else "received"
        kept = ([[c.kind, to_json(c)] for c in commands]
                if keep_commands and status == "received" else None)
        fields = {"source": source, "message_id": message_id, "channel": channel,
                  "message_type": message_type, "payload": payload,
                  "received_at": received_at, "partition": partition, "status": status,
                  "error": stored_error(error) if error is not None else None, "ack": ack,
                  "commands": kept,
                  "raw": None if received is None else bytes_to_keep(payload, received)}
        return Row(fields, partition, hint=status == "received")

    def stored(self, row: Row, stored: Stored) -> Stored:
        """After the commit: hint a worker for a new row it has to apply."""
        if row.hint and not stored.duplicate:
            self.notify(row.partition)
        return stored

    def reject(self, *, source: str, channel: str, message_id: str, payload: str,
               received_at: datetime, error: MappingError, ack: str | None = None,
               received: bytes | None = None) -> Stored:
        """Keep what could not even be attributed (unknown sender, unparseable);
        ``received``: the bytes as they came, kept where ``payload`` does not give them back."""
        row = self.rejected_row(source=source, channel=channel, message_id=message_id,
                                payload=payload, received_at=received_at, error=error, ack=ack,
                                received=received)
        return self.inbox.store(**row.fields)

    def rejected_row(self, *, source: str, channel: str, message_id: str, payload: str,
                     received_at: datetime, error: MappingError, ack: str | None = None,
                     received: bytes | None = None) -> Row:
        return Row({"source": source, "message_id": message_id, "channel": channel,
                    "message_type": None, "payload": payload, "received_at": received_at,
                    "status": "rejected", "error": stored_error(error), "ack": ack,
                    "raw": None if received is None else bytes_to_keep(payload, received)})
