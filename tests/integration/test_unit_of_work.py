"""The unit of work on the real databases: commit, roll back on error, optimistic locking."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from register_core.adapters.tables import facts, persons, register_changes
from register_core.domain.commands import (
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordLeftHospital,
)
from register_core.domain.errors import ConcurrentChange, ImpossibleDates, InvalidValue
from register_core.services.handlers import IdentityConflict, apply_command
from s117hub.bootstrap import Hub

NHS = "9990000018"
OTHER_NHS = "9990000026"


def _prov(hub: Hub, ref: str) -> Provenance:
    return Provenance(source="trust-a", source_ref=ref, received_at=hub.clock.now())


def _admit(hub: Hub, ref: str = "m1", nhs: str = NHS, local: str = "RX1-1",
           section: str = "03", start: date = date(2026, 1, 5)) -> RecordDetentionStarted:
    return RecordDetentionStarted(
        person=PersonRef(nhs_number=nhs, local_id=local, birth_date=date(1980, 2, 2)),
        provenance=_prov(hub, ref), section=section, start=start, episode_ref="V1")


def _count(hub: Hub, table) -> int:  # type: ignore[no-untyped-def]
    with hub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_commit_writes_journal_projection_and_history(hub: Hub) -> None:
    with hub.uow() as uow:
        applied = apply_command(_admit(hub), uow, hub.clock)
    assert applied.created
    with hub.uow() as uow:
        again = apply_command(RecordLeftHospital(
            person=PersonRef(local_id="RX1-1"), provenance=_prov(hub, "m2"),
            date=date(2026, 3, 1), episode_ref="V1"), uow, hub.clock)
    assert again.person_id == applied.person_id and not again.created
    assert ("entitlement.status", "pending", "active") in again.changes
    assert again.status_changed
    assert _count(hub, facts) == 2
    with hub.engine.connect() as conn:
        history = conn.execute(select(register_changes.c.field, register_changes.c.new_value,
                                      register_changes.c.source_ref)
                               .where(register_changes.c.field == "entitlement.status")
                               .order_by(register_changes.c.id)).all()
    assert [(h.new_value, h.source_ref) for h in history] == [("pending", "m1"),
                                                              ("active", "m2")]


@pytest.mark.parametrize("bad, error, field", [
    (dict(nhs="9990000019"), InvalidValue, "person.nhs_number"),
    (dict(section="11"), InvalidValue, "section"),
    (dict(start=date(1970, 1, 1)), ImpossibleDates, "start"),
])
def test_bad_input_is_rejected_and_nothing_is_written(hub: Hub, bad, error, field) -> None:
    with pytest.raises(error) as caught, hub.uow() as uow:
        apply_command(_admit(hub, **bad), uow, hub.clock)
    assert caught.value.field == field and caught.value.rule
    assert _count(hub, persons) == 0 and _count(hub, facts) == 0


def test_left_hospital_before_admission_rolls_back(hub: Hub) -> None:
    with hub.uow() as uow:
        apply_command(_admit(hub), uow, hub.clock)
    with pytest.raises(ImpossibleDates), hub.uow() as uow:
        apply_command(RecordLeftHospital(person=PersonRef(local_id="RX1-1"),
                                         provenance=_prov(hub, "m2"), date=date(2025, 1, 1),
                                         episode_ref="V1"), uow, hub.clock)
    assert _count(hub, facts) == 1


def test_never_links_different_valid_nhs_numbers(hub: Hub) -> None:
    with hub.uow() as uow:
        apply_command(_admit(hub), uow, hub.clock)
    with pytest.raises(IdentityConflict), hub.uow() as uow:
        apply_command(_admit(hub, ref="m9", nhs=OTHER_NHS), uow, hub.clock)
    assert _count(hub, persons) == 1


def test_stale_writer_gets_concurrent_change(hub: Hub) -> None:
    """A person read before another writer committed cannot be saved over that change."""
    from register_core.adapters.repository import SqlPersonRepository
    from register_core.domain.position import compute_position

    with hub.uow() as uow:
        applied = apply_command(_admit(hub), uow, hub.clock)
    with hub.engine.connect() as reader:
        stale = SqlPersonRepository(reader).get(applied.person_id)
    with hub.uow() as first:
        fresh = first.persons.get(applied.person_id)
        assert stale is not None and fresh is not None
        first.persons.save(fresh, compute_position(fresh, hub.clock.today()), source="t",
                           source_ref="a", recorded_by="t", now=hub.clock.now())
        first.commit()
    with hub.uow() as second, pytest.raises(ConcurrentChange):
        second.persons.save(stale, compute_position(stale, hub.clock.today()), source="t",
                            source_ref="b", recorded_by="t", now=hub.clock.now())


def test_concurrent_writers_to_one_person_lose_nothing(hub: Hub) -> None:
    """Eight threads each record a review for the same person; every review is kept once."""
    with hub.uow() as uow:
        apply_command(_admit(hub), uow, hub.clock)
    from register_core.domain.commands import RecordReviewCompleted

    errors: list[BaseException] = []

    def write(i: int) -> None:
        cmd = RecordReviewCompleted(person=PersonRef(local_id="RX1-1"),
                                    provenance=_prov(hub, f"r{i}"), date=date(2026, 4, 1 + i))
        for _ in range(50):
            try:
                with hub.uow() as uow:
                    apply_command(cmd, uow, hub.clock)
                return
            except ConcurrentChange:
                continue
            except Exception as exc:  # sqlite "database is locked" is retried too
                if "locked" in str(exc):
                    continue
                errors.append(exc)
                return

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with hub.engine.connect() as conn:
        seqs = conn.execute(select(facts.c.seq).order_by(facts.c.seq)).scalars().all()
    assert seqs == list(range(1, 10))
