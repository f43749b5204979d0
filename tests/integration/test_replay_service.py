"""``register_core.services.replay``: the replay decision the API route and the console's
Replay button share, on the real databases. Each status's rule, and the compare-and-set that
leaves a message alone when a worker (or another replay) moved it after it was read.

Rows are stored directly (their payloads are never mapped here): synthetic, no person data.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from register_core.adapters.inbox import Inbox
from register_core.adapters.tables import inbox_messages
from register_core.domain.errors import NotFound
from register_core.services.replay import ReplayRefused, refusal_for, requeue_one
from s117hub.bootstrap import Hub


def _store(hub: Hub, message_id: str, status: str) -> int:
    error = None if status in ("received", "applied") else {
        "kind": "mapping", "code": "unknown-code", "message": "synthetic", "location": "ZLS-1",
        "line": None, "field": None, "rule": None}
    stored = hub.inbox.store(source="trust-a", message_id=message_id, channel="hl7v2-mllp",
                             message_type="ADT^A01", payload="MSH|synthetic",
                             received_at=hub.clock.now(), status=status, error=error,
                             partition=3)
    return stored.id


def _status(hub: Hub, row_id: int) -> str:
    with hub.engine.connect() as conn:
        return str(conn.execute(select(inbox_messages.c.status)
                                .where(inbox_messages.c.id == row_id)).scalar_one())


@pytest.mark.parametrize(("status", "force", "refusal"), [
    ("rejected", False, "rejected"), ("rejected", True, "rejected"),
    ("applied", False, "applied"), ("applied", True, None),
    ("failed", False, None), ("received", False, None),
])
def test_which_statuses_may_be_replayed(status: str, force: bool, refusal: str | None) -> None:
    assert refusal_for(status, force=force) == refusal


def test_a_failed_message_goes_back_to_received(hub: Hub) -> None:
    row = _store(hub, "MSG-F", "failed")
    message = requeue_one(hub.inbox, row, force=False)
    assert (message["id"], message["status"], message["partition"]) == (row, "failed", 3)
    assert _status(hub, row) == "received"


def test_an_applied_message_only_with_force(hub: Hub) -> None:
    row = _store(hub, "MSG-A", "applied")
    with pytest.raises(ReplayRefused) as refused:
        requeue_one(hub.inbox, row, force=False)
    assert (refused.value.reason, refused.value.message_id) == ("applied", row)
    assert _status(hub, row) == "applied"
    requeue_one(hub.inbox, row, force=True)
    assert _status(hub, row) == "received"


def test_a_rejected_message_never(hub: Hub) -> None:
    row = _store(hub, "MSG-R", "rejected")
    for force in (False, True):
        with pytest.raises(ReplayRefused) as refused:
            requeue_one(hub.inbox, row, force=force)
        assert refused.value.reason == "rejected"
    assert _status(hub, row) == "rejected"


def test_a_received_message_is_left_as_it_is(hub: Hub) -> None:
    row = _store(hub, "MSG-W", "received")
    calls: list[Any] = []
    inbox = Inbox(hub.engine)
    inbox.requeue = lambda seen: calls.append(seen) or []  # type: ignore[method-assign]
    assert requeue_one(inbox, row, force=False)["status"] == "received"
    assert calls == []  # only hinted again by the caller: nothing to compare and set


def test_no_such_message_is_not_found(hub: Hub) -> None:
    with pytest.raises(NotFound) as missing:
        requeue_one(hub.inbox, 999_999, force=False)
    assert (missing.value.field, missing.value.rule) == ("message_id", "message-exists")


def test_a_message_a_worker_moved_after_it_was_read_is_left_alone(hub: Hub) -> None:
    """Read as ``failed``; a worker applies it (after another replay) before the
    compare-and-set: the replay is refused and the row keeps what the worker wrote."""
    row = _store(hub, "MSG-RACE", "failed")
    inbox = Inbox(hub.engine)
    real_requeue = inbox.requeue

    def worker_first(seen: dict[int, str]) -> list[int]:
        with hub.engine.begin() as conn:
            conn.execute(update(inbox_messages).where(inbox_messages.c.id == row)
                         .values(status="applied", error=None))
        return real_requeue(seen)

    inbox.requeue = worker_first  # type: ignore[method-assign]
    with pytest.raises(ReplayRefused) as refused:
        requeue_one(inbox, row, force=False)
    assert refused.value.reason == "changed"
    assert _status(hub, row) == "applied"
