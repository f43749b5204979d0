"""A regrade told on an ADT A02 (transfer) or A03 (discharge), through the inbound path the
receiver and worker use, on the dates of the audit that found it dropped.

s117-rules.md "Who is entitled": "A person on s2 who is regraded to s3 becomes entitled"
(joint policy 3.3), and entitlement begins when the person leaves hospital (joint policy 2.2).
The section in ZLS-1 of an A02/A03, started (ZLS-2) after the stay's admission (PV1-44), is a
section change as an A08 would tell it; the status the person was admitted under, repeated on
every message, is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from register_core.ports import FixedClock
from s117hub.bootstrap import Hub
from tests.conftest import empty_all_tables
from tests.integration.test_hl7_cancellations import NHS, _msg, journal, kinds, send, stored
from tests.unit.mapping.samples import evn, pid, pv1, zls

VISIT = "V0328"
ADMITTED = "202606010930"  # 1 June 2026
REGRADED = "20260620"  # s2 → s3 on 20 June
LEFT = "202608031100"  # discharged 3 August


@pytest.fixture
def clock() -> FixedClock:
    """After the audit's discharge, so every fact it sent is in force."""
    return FixedClock(datetime(2026, 9, 1, 9, 0, tzinfo=UTC))


def _pid() -> str:
    return pid(nhs=NHS, local="L-328")


def admit(section: str) -> str:
    return _msg("A01", evn("A01", "20260601093000"), _pid(), pv1(visit=VISIT, admit=ADMITTED),
                zls(section, ADMITTED))


def transfer(*status: str) -> str:
    return _msg("A02", evn("A02", "20260701140000"), _pid(), pv1(visit=VISIT, admit=ADMITTED),
                zls(*status), structure="ADT_A02")


def discharge(*status: str) -> str:
    """An A03 with PV1-45; ``status`` is the ZLS fields (none: no ZLS segment at all)."""
    extra = [zls(*status)] if status else []
    return _msg("A03", evn("A03", "20260803120000"), _pid(),
                pv1(visit=VISIT, admit=ADMITTED, discharge=LEFT), *extra, structure="ADT_A03")


def cancel_discharge() -> str:
    return _msg("A13", evn("A13", "20260804090000"), _pid(), pv1(visit=VISIT))


def register(record: dict[str, Any]) -> dict[str, Any]:
    """What the register says, without the facts' message ids the explanations cite."""
    return {key: record[key] for key in ("detentions", "legal_status_events", "entitlement")}


def sections(record: dict[str, Any]) -> list[tuple[str, str]]:
    (detention,) = record["detentions"]
    return [(span["section"], span["from"]) for span in detention["sections"]]


@pytest.mark.parametrize("batch", [1, 100])
def test_s2_regraded_to_s3_on_the_discharge_is_entitled(hub: Hub, engine: Engine,
                                                        batch: int) -> None:
    """The audit's A03: ``ZLS|03|20260620|20260803`` with PV1-45 3 August after an s2 A01.
    s117-rules.md "Who is entitled" (joint policy 3.3, 2.2): the s3 counts from the regrade
    and the entitlement starts on leaving hospital."""
    record = send(hub, engine, admit("02"), discharge("03", REGRADED, LEFT[:8]), batch=batch)
    (detention,) = record["detentions"]
    assert (detention["section"], detention["start"], detention["end"]) == (
        "03", "2026-06-01", "2026-08-03")
    assert sections(record) == [("02", "2026-06-01"), ("03", "2026-06-20")]
    assert kinds(record) == ["section-change"]
    entitlement = record["entitlement"]
    assert (entitlement["status"], entitlement["trigger_section"], entitlement["start"],
            entitlement["pending_since"]) == ("active", "03", "2026-08-03", "2026-06-20")
    # The regrade is recorded before the leaving, from the same message and episode.
    assert [(kind, event) for kind, event, _, _ in stored(engine)] == [
        ("detention-started", None), ("legal-status", "section-change"),
        ("left-hospital", None)]


@pytest.mark.parametrize("a03_status", [(), ("03", REGRADED, LEFT[:8])],
                         ids=["a03-no-zls", "a03-zls-s3"])
def test_s2_regraded_to_s3_on_a_transfer_is_entitled(hub: Hub, engine: Engine,
                                                     a03_status: tuple[str, ...]) -> None:
    """The audit's A02 ``ZLS|03|20260620`` between an s2 A01 and the A03. s117-rules.md "Who
    is entitled" (joint policy 3.3, 2.2)."""
    record = send(hub, engine, admit("02"), transfer("03", REGRADED), discharge(*a03_status))
    # (An A03 repeating the regrade the A02 told tells it again: the mapping keeps no register
    # state, and the register keeps a same-section change as told.)
    assert kinds(record)[0] == "section-change" and "transfer" in kinds(record)
    if not a03_status:
        assert kinds(record) == ["section-change", "transfer"]
    assert sections(record)[:2] == [("02", "2026-06-01"), ("03", "2026-06-20")]
    entitlement = record["entitlement"]
    assert (entitlement["status"], entitlement["trigger_section"], entitlement["start"]) == (
        "active", "03", "2026-08-03")


def test_an_a03_repeating_the_section_in_force_changes_nothing(hub: Hub,
                                                               engine: Engine) -> None:
    """s3 from admission, and the A03 sends ``ZLS|03|<admitted>|<discharged>`` as trusts send
    the current status on every message: the same register as a plain A03, no section change.
    s117-rules.md "Who is entitled" (joint policy 2.2: entitled on leaving)."""
    plain = send(hub, engine, admit("03"), discharge())
    empty_all_tables(engine)
    repeated = send(hub, engine, admit("03"), discharge("03", ADMITTED, LEFT))
    assert register(repeated) == register(plain)
    assert kinds(repeated) == []
    assert sections(repeated) == [("03", "2026-06-01")]
    assert journal(repeated) == [("detention-started", False), ("left-hospital", False)]
    entitlement = repeated["entitlement"]
    assert (entitlement["status"], entitlement["trigger_section"], entitlement["start"]) == (
        "active", "03", "2026-08-03")


def test_a13_takes_back_the_regrade_with_the_discharge(hub: Hub, engine: Engine) -> None:
    """Cancelling the A03 retracts everything it recorded about the episode, the regrade too:
    the register is what it was before the A03 (on s2, so not entitled: s117-rules.md "Who is
    entitled", joint policy 3.3)."""
    before = send(hub, engine, admit("02"))
    assert before["entitlement"]["status"] == "none"
    after = send(hub, engine, discharge("03", REGRADED, LEFT[:8]), cancel_discharge())
    assert register(after) == register(before)
    (detention,) = after["detentions"]
    assert (detention["section"], detention["end"]) == ("02", None)
    assert kinds(after) == []
    assert journal(after) == [("detention-started", False), ("legal-status", True),
                              ("left-hospital", True), ("cancel", False)]
    assert [(kind, event, by) for kind, event, _, by in stored(engine)] == [
        ("detention-started", None, None), ("legal-status", "section-change", 4),
        ("left-hospital", None, 4), ("cancel", None, None)]


def update(*status: str) -> str:
    return _msg("A08", evn("A08", "20260620120000"), _pid(), pv1(visit=VISIT, admit=ADMITTED),
                zls(*status))


@pytest.mark.parametrize("regrade_on", ["A08", "A03"])
def test_an_informal_patient_detained_on_the_ward_is_entitled(hub: Hub, engine: Engine,
                                                              regrade_on: str) -> None:
    """Admitted informally (ZLS 01), detained under s3 on the ward on 20 June (told by an
    A08, or by the A03's ZLS), discharged 3 August. Joint policy 3.3 (s3 entitles) and 2.2
    (on leaving): the detention starts on the regrade. It was lost: a section change with no
    detention to change was dropped, and every message was answered AA (seeds audit)."""
    if regrade_on == "A08":
        record = send(hub, engine, admit("01"), update("03", REGRADED), discharge())
    else:
        record = send(hub, engine, admit("01"), discharge("03", REGRADED, LEFT[:8]))
    (detention,) = record["detentions"]
    assert (detention["section"], detention["start"], detention["end"]) == (
        "03", "2026-06-20", "2026-08-03")
    entitlement = record["entitlement"]
    assert (entitlement["status"], entitlement["trigger_section"], entitlement["start"]) == (
        "active", "03", "2026-08-03")
