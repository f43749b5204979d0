"""Replaying one stored inbound message: the decision the API and the console share.

``POST /api/v1/messages/{id}/replay`` and the console's Replay button both call
``requeue_one``; each edge words the refusal its own way (a JSON problem, an HTML page) but
the rules are here, once:

* a ``rejected`` message (unknown sender, unparseable, refused as sent) is never replayed:
  it was never attributed, or the sender was told it was refused and must send it again;
* an ``applied`` message only with ``force``: re-applying appends its facts again;
* a ``failed`` (or forced ``applied``) one goes back to ``received`` only if its status is
  still the one read here (compare-and-set in ``Inbox.requeue``), so two replays at once, or
  a replay racing a worker, apply it once;
* a ``received`` one is not changed: the caller only hints a worker again.

Auditing and hinting stay with the caller: they need the request and the broker.
"""

from __future__ import annotations

from typing import Any, Literal

from register_core.adapters import message_store
from register_core.adapters.inbox import Inbox
from register_core.domain.errors import NotFound

# Why a replay was refused: each edge maps these to its own 409 wording.
ReplayRefusal = Literal["rejected", "applied", "changed"]


class ReplayRefused(Exception):
    """The message may not be replayed now (409 at every edge)."""

    def __init__(self, reason: ReplayRefusal, message_id: int) -> None:
        super().__init__(f"message {message_id}: replay refused ({reason})")
        self.reason: ReplayRefusal = reason
        self.message_id = message_id


def refusal_for(status: str, *, force: bool) -> ReplayRefusal | None:
    """Whether a message in ``status`` may be replayed at all (before any change)."""
    if status == "rejected":
        return "rejected"
    if status == "applied" and not force:
        return "applied"
    return None


def requeue_one(inbox: Inbox, message_id: int, *, force: bool) -> dict[str, Any]:
    """Put one stored message back to ``received`` for a worker; return it as it was read
    (``people_concerned``, read before the replay clears its mapped commands, and
    ``partition`` are what the caller audits and hints).

    Raises NotFound when there is no such message, ReplayRefused when the rules above refuse.
    """
    with inbox.engine.connect() as conn:
        message = message_store.get(conn, message_id)
        if message is None:
            raise NotFound(f"no message {message_id}", field="message_id",
                           rule="message-exists")
        message["people_concerned"] = message_store.people_concerned(conn, message)
    refusal = refusal_for(message["status"], force=force)
    if refusal is not None:
        raise ReplayRefused(refusal, message_id)
    # Compare-and-set on the status read above: a message a worker (or another replay)
    # moved meanwhile is left alone rather than applied twice.
    if message["status"] != "received" and not inbox.requeue({message_id: message["status"]}):
        raise ReplayRefused("changed", message_id)
    return message
