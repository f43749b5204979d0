"""The inbox's asyncio path (the MLLP listener's): stores queued from an event loop are
committed by one writer thread in groups, each future done only once its row is committed,
duplicates recognised within a group and across groups."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from register_core.adapters.inbox import Inbox, Stored
from register_core.adapters.tables import inbox_messages

AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _fields(message_id: str) -> dict[str, object]:
    return {"source": "trust-a", "message_id": message_id, "channel": "hl7v2-mllp",
            "message_type": "ADT^A01", "payload": f"MSH|{message_id}", "received_at": AT,
            "partition": 3, "status": "received", "ack": f"ACK {message_id}"}


def _committed(engine: Engine, message_id: str) -> bool:
    with engine.connect() as conn:  # another connection: sees committed rows only
        return conn.execute(select(func.count()).select_from(inbox_messages).where(
            inbox_messages.c.message_id == message_id)).scalar_one() == 1


def test_concurrent_async_stores_are_committed_before_they_are_answered(
        engine: Engine) -> None:
    inbox = Inbox(engine)

    async def store(message_id: str) -> Stored:
        stored = await inbox.store_async(**_fields(message_id))
        assert _committed(engine, message_id)
        return stored

    async def main() -> list[Stored]:
        return await asyncio.gather(*(store(f"M{n}") for n in range(20)))

    results = asyncio.run(main())
    assert [r.duplicate for r in results] == [False] * 20
    assert len({r.id for r in results}) == 20
    assert inbox.get(results[5].id).message_id == "M5"  # type: ignore[union-attr]


def test_async_duplicates_in_one_group_and_later_get_the_first_answer(engine: Engine) -> None:
    inbox = Inbox(engine)

    async def main() -> tuple[list[Stored], Stored]:
        same_group = await asyncio.gather(inbox.store_async(**_fields("D1")),
                                          inbox.store_async(**_fields("D1")))
        later = await inbox.store_async(**{**_fields("D1"), "ack": "another answer"})
        return same_group, later

    (first, second), later = asyncio.run(main())
    assert not first.duplicate and second.duplicate and later.duplicate
    assert first.id == second.id == later.id
    assert later.ack == "ACK D1"
    with engine.connect() as conn:
        assert conn.execute(select(inbox_messages.c.resent)).scalar_one() == 2


def test_an_async_store_that_fails_fails_alone(engine: Engine) -> None:
    inbox = Inbox(engine)

    async def main() -> list[Stored | BaseException]:
        bad = {**_fields("B1"), "status": None}  # NOT NULL: the insert fails
        return await asyncio.gather(inbox.store_async(**_fields("G1")),
                                    inbox.store_async(**bad),
                                    inbox.store_async(**_fields("G2")),
                                    return_exceptions=True)

    good, failed, other = asyncio.run(main())
    assert isinstance(failed, Exception)
    assert isinstance(good, Stored) and isinstance(other, Stored)
    assert _committed(engine, "G1") and _committed(engine, "G2")
    assert not _committed(engine, "B1")


def test_the_after_commit_hook_runs_in_the_writer_once_committed(engine: Engine) -> None:
    inbox = Inbox(engine)
    seen: list[tuple[str, bool, bool]] = []
    hinted = threading.Event()

    def hint(stored: Stored) -> None:
        seen.append((threading.current_thread().name, stored.duplicate,
                     _committed(engine, "H1")))
        hinted.set()
        raise RuntimeError("the broker is down")  # logged: the row stays stored

    async def main() -> Stored:
        return await inbox.store_async(hint, **_fields("H1"))

    stored = asyncio.run(main())  # answered without waiting for the hook (a broker publish)
    assert not stored.duplicate
    assert hinted.wait(5)
    assert seen == [("inbox-writer", False, True)]


def test_a_sqlite_commit_waits_for_the_wal_fsync(engine: Engine) -> None:
    """An ACK follows the inbox commit; on SQLite that commit is durable only if it waits for
    the WAL's fsync (synchronous FULL): with NORMAL the last commits before a power cut or
    an OS crash roll back, and an AA'd message would be lost."""
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL's commit waits for its WAL flush by default (synchronous_commit)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
