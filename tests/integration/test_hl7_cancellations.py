"""ADT A11 (cancel admit) and A13 (cancel discharge) through the inbound path the receiver and
worker use: a cancel takes back everything the hub recorded from the cancelled message, so an
A13 for a discharge onto a CTO or a conditional discharge also retracts the CTO / CD start the
A03 carried, and the register returns to what it was before the A03. The journal stays
append-only: the cancelled facts are kept, marked retracted by the cancel."""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.tables import facts, inbox_messages
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from register_core.views import people_by_nhs_number, person_json
from s117hub.bootstrap import Hub
from tests.integration.test_inbound_batch import TRUST_A
from tests.unit.mapping.samples import adt, evn, pid, pv1, zls

NHS = make_synthetic(32)  # 9990000328, the audit's patient
VISIT = "V0328"
_ids = count(1)


def _msg(trigger: str, *segments: str, structure: str = "ADT_A01") -> str:
    return adt(trigger, *segments, control_id=f"C-{next(_ids):04d}", structure=structure)


def admit(status: str = "03", visit: str = VISIT, when: str = "202601050930") -> str:
    return _msg("A01", evn("A01"), pid(nhs=NHS, local="L-328"),
                pv1(visit=visit, admit=when), zls(status, when))


def discharge(*status: str, visit: str = VISIT, when: str = "202603011100") -> str:
    """An A03; ``status`` is the ZLS fields (none: no ZLS segment at all)."""
    extra = [zls(*status)] if status else []
    return _msg("A03", evn("A03"), pid(nhs=NHS, local="L-328"),
                pv1(visit=visit, discharge=when), *extra, structure="ADT_A03")


def cancel_discharge(visit: str = VISIT) -> str:
    return _msg("A13", evn("A13", "20260302090000"), pid(nhs=NHS, local="L-328"),
                pv1(visit=visit), structure="ADT_A01")


def cancel_admit(visit: str = VISIT) -> str:
    return _msg("A11", evn("A11", "20260105120000"), pid(nhs=NHS, local="L-328"),
                pv1(visit=visit), structure="ADT_A09")


def update(*status: str, visit: str = VISIT) -> str:
    return _msg("A08", evn("A08", "20260310100000"), pid(nhs=NHS, local="L-328"),
                pv1(visit=visit), zls(*status))


def send(hub: Hub, engine: Engine, *messages: str, batch: int = 1) -> dict[str, Any]:
    """Receive and apply the messages in order; the person's register record afterwards."""
    hub.sources.save(TRUST_A, hub.clock.now())
    receiver = Hl7Receiver(engine, hub.sources, hub.clock, lambda _: None)
    for message in messages:
        receiver.handle(message.encode())
    drain(engine, make_mapper(hub.sources), hub.clock, hub.policy, batch=batch,
          time_budget=60.0)
    with engine.connect() as conn:
        statuses = {r.message_id: r.status for r in conn.execute(select(inbox_messages))}
        assert set(statuses.values()) == {"applied"}, statuses
        (person_id,) = people_by_nhs_number(conn, NHS)
        record = person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert record is not None
    return record


def kinds(record: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in record["legal_status_events"]]


def journal(record: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(p["kind"], p["retracted"]) for p in record["provenance"]]


def stored(engine: Engine) -> list[tuple[str, str | None, int, int | None]]:
    """The facts table as written: (kind, legal-status event, seq, retracted_by)."""
    with engine.connect() as conn:
        rows = conn.execute(select(facts.c.kind, facts.c.payload, facts.c.seq,
                                   facts.c.retracted_by).order_by(facts.c.seq)).all()
    return [(r.kind, r.payload.get("event"), r.seq, r.retracted_by) for r in rows]


ONTO = {"CTO": ("cto-start", True), "CD": ("conditional-discharge-start", False)}


@pytest.mark.parametrize("batch", [1, 100])
@pytest.mark.parametrize("marker", ["CTO", "CD"])
def test_a13_undoes_a_discharge_onto_a_cto_or_conditional_discharge(
        hub: Hub, engine: Engine, marker: str, batch: int) -> None:
    started, on_cto = ONTO[marker]
    # Before the cancel: discharged onto the CTO / CD.
    before = send(hub, engine, admit(), discharge(marker, "202603011100"))
    assert before["detentions"][0]["end"] == "2026-03-01"
    assert kinds(before) == [started]
    assert before["entitlement"]["status"] == "active"
    assert before["entitlement"]["on_cto"] is on_cto

    record = send(hub, engine, cancel_discharge(), batch=batch)
    (detention,) = record["detentions"]
    assert (detention["section"], detention["start"]) == ("03", "2026-01-05")
    assert (detention["end"], detention["end_reason"]) == (None, None)
    assert kinds(record) == []
    assert record["entitlement"]["status"] == "pending"
    assert record["entitlement"]["on_cto"] is False
    # Append-only: both facts of the A03 kept, retracted by the cancel; the admission stands.
    assert journal(record) == [("detention-started", False), ("left-hospital", True),
                               ("legal-status", True), ("cancel", False)]
    assert stored(engine) == [("detention-started", None, 1, None),
                              ("left-hospital", None, 2, 4), ("legal-status", started, 3, 4),
                              ("cancel", None, 4, None)]


def test_a13_in_the_same_batch_as_its_a03(hub: Hub, engine: Engine) -> None:
    record = send(hub, engine, admit(), discharge("CTO", "202603011100"), cancel_discharge(),
                  batch=100)
    assert record["detentions"][0]["end"] is None
    assert kinds(record) == []
    assert (record["entitlement"]["status"], record["entitlement"]["on_cto"]) == (
        "pending", False)
    assert [(kind, event, by) for kind, event, _, by in stored(engine) if by] == [
        ("left-hospital", None, 4), ("legal-status", "cto-start", 4)]


@pytest.mark.parametrize("status", [(), ("03", "202601050930")], ids=["no-zls", "zls-s3"])
def test_a13_undoes_a_plain_discharge(hub: Hub, engine: Engine,
                                      status: tuple[str, ...]) -> None:
    record = send(hub, engine, admit(), discharge(*status), cancel_discharge())
    assert record["detentions"][0]["end"] is None
    assert kinds(record) == []
    assert record["entitlement"]["status"] == "pending"
    assert journal(record) == [("detention-started", False), ("left-hospital", True),
                               ("cancel", False)]


def test_a13_for_a_discharge_the_hub_never_saw_changes_nothing(hub: Hub,
                                                               engine: Engine) -> None:
    record = send(hub, engine, admit(), cancel_discharge())
    assert record["detentions"][0]["end"] is None
    assert record["entitlement"]["status"] == "pending"
    assert journal(record) == [("detention-started", False), ("cancel", False)]


def test_a13_keeps_a_cto_told_by_another_message(hub: Hub, engine: Engine) -> None:
    """Only what the cancelled A03 recorded goes: a CTO start sent later in an A08 stays."""
    record = send(hub, engine, admit(), discharge("03", "202601050930"),
                  update("CTO", "20260301"), cancel_discharge())
    assert kinds(record) == ["cto-start"]
    assert journal(record) == [("detention-started", False), ("left-hospital", True),
                               ("person-details", False), ("legal-status", False),
                               ("cancel", False)]


def test_a13_keeps_the_earlier_discharge_of_another_visit(hub: Hub, engine: Engine) -> None:
    record = send(hub, engine, admit(visit="V1"), discharge("CTO", "20260301", visit="V1"),
                  admit(visit="V2", when="202604010930"),
                  discharge("CD", visit="V2", when="202605011100"),
                  cancel_discharge(visit="V2"))
    assert kinds(record) == ["cto-start"]
    assert [(d["start"], d["end"]) for d in record["detentions"]] == [
        ("2026-01-05", "2026-03-01"), ("2026-04-01", None)]


def test_a03_sent_again_after_the_a13_counts(hub: Hub, engine: Engine) -> None:
    record = send(hub, engine, admit(), discharge("CTO", "202603011100"), cancel_discharge(),
                  discharge("CTO", "202603021100", when="202603021100"))
    assert record["detentions"][0]["end"] == "2026-03-02"
    assert kinds(record) == ["cto-start"]
    assert (record["entitlement"]["status"], record["entitlement"]["on_cto"]) == (
        "active", True)


def test_a11_undoes_an_admission_with_its_legal_status(hub: Hub, engine: Engine) -> None:
    record = send(hub, engine, admit("03"), cancel_admit())
    assert record["detentions"] == []
    assert kinds(record) == []
    assert record["entitlement"]["status"] == "none"
    assert journal(record) == [("detention-started", True), ("cancel", False)]


@pytest.mark.parametrize("marker", ["CTO", "CD"])
def test_a11_undoes_an_informal_admission_that_told_a_cto_or_cd(
        hub: Hub, engine: Engine, marker: str) -> None:
    """A patient on a CTO (or conditionally discharged) admitted informally: the A01 tells no
    detention, only the CTO / CD; cancelling that admission takes the CTO / CD back too."""
    started, on_cto = ONTO[marker]
    before = send(hub, engine, admit(marker))
    assert kinds(before) == [started]
    assert before["entitlement"]["on_cto"] is on_cto
    record = send(hub, engine, cancel_admit())
    assert kinds(record) == []
    assert record["entitlement"]["on_cto"] is False
    assert journal(record) == [("person-details", False), ("legal-status", True),
                               ("cancel", False)]


def test_a11_withdraws_what_the_visits_later_messages_told(hub: Hub, engine: Engine) -> None:
    """An A08 regrade of the cancelled visit is withdrawn with it, not left to land on the
    person's earlier detention."""
    earlier = send(hub, engine, admit("37", visit="V0327", when="202501050930"),
                   discharge(visit="V0327", when="202503011100"))
    assert earlier["detentions"][0]["section"] == "37"
    send(hub, engine, admit("02"), update("03", "202601100900"))
    record = send(hub, engine, cancel_admit())
    assert [(d["section"], d["start"], d["end"]) for d in record["detentions"]] == [
        ("37", "2025-01-05", "2025-03-01")]
    assert record["entitlement"]["trigger_section"] == "37"
