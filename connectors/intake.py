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

from mapping.errors import MappingError
from register_core.adapters.inbox import Inbox, Stored, partition_for
from register_core.domain.codec import to_json
from register_core.domain.commands import Command
from register_core.services.inbound import stored_error


def person_key(commands: list[Command], source: str) -> str | None:
    """The key that keeps one person's messages in one partition (and so in order)."""
    for command in commands:
        ref = command.person
        if ref.nhs_number:
            return ref.nhs_number
        if ref.local_id:
            return f"{source}:{ref.local_id}"
    return None


@dataclass
class Intake:
    inbox: Inbox
    notify: Callable[[int], None]

    def accept(self, *, source: str, channel: str, message_id: str, message_type: str | None,
               payload: str, received_at: datetime, commands: list[Command],
               error: MappingError | None = None, ack: str | None = None,
               keep_commands: bool = False) -> Stored:
        """``keep_commands``: the commands are exactly what the worker's mapper makes of the
        stored payload, so they are stored with it and the worker skips mapping again."""
        partition = partition_for(person_key(commands, source))
        status = "failed" if error is not None else "received"
        kept = ([[c.kind, to_json(c)] for c in commands]
                if keep_commands and status == "received" else None)
        stored = self.inbox.store(
            source=source, message_id=message_id, channel=channel, message_type=message_type,
            payload=payload, received_at=received_at, partition=partition, status=status,
            error=stored_error(error) if error is not None else None, ack=ack, commands=kept)
        if not stored.duplicate and status == "received":
            self.notify(partition)
        return stored

    def reject(self, *, source: str, channel: str, message_id: str, payload: str,
               received_at: datetime, error: MappingError, ack: str | None = None) -> Stored:
        """Keep what could not even be attributed (unknown sender, unparseable)."""
        return self.inbox.store(source=source, message_id=message_id, channel=channel,
                                message_type=None, payload=payload, received_at=received_at,
                                status="rejected", error=stored_error(error), ack=ack)
