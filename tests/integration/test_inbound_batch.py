"""The worker's batch (one transaction, persons kept in memory, rows written once at the end)
leaves the register exactly as applying the same messages one transaction each does: the
same facts, retractions, identifiers, projections, history and inbox outcomes, including
when a person is admitted, cancelled and merged within the batch and messages fail in it."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import (
    detentions,
    entitlements,
    facts,
    inbox_messages,
    person_identifiers,
    persons,
    register_changes,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub
from tests.conftest import empty_all_tables
from tests.unit.mapping.samples import adt, evn, pid, pv1, segment, zls

TRUST_A = SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                           hl7_sending_application="EPR", hl7_sending_facility="RX1")
N1, N2, N3, N5 = (make_synthetic(n) for n in (501, 502, 503, 505))


def _stream() -> list[str]:
    n = iter(range(1, 100))

    def msg(trigger: str, *segments: str, structure: str = "ADT_A01") -> str:
        return adt(trigger, *segments, control_id=f"B-{next(n):03d}", structure=structure)

    admit = zls("03", "202601050930")
    return [
        # One admitted, discharged, the admission cancelled, then admitted again.
        msg("A01", evn("A01"), pid(nhs=N1, local="L-1"), pv1(), admit),
        msg("A03", evn("A03"), pid(nhs=N1, local="L-1"), pv1(discharge="202603011100"),
            admit, structure="ADT_A03"),
        msg("A11", evn("A11", "20260305120000"), pid(nhs=N1, local="L-1"), pv1(),
            structure="ADT_A09"),
        # Someone else's NHS number with L-1: refused in the middle of the batch.
        msg("A01", evn("A01"), pid(nhs=N5, local="L-1"), pv1(visit="V5"), admit),
        msg("A01", evn("A01"), pid(nhs=N1, local="L-1"), pv1(visit="V0002",
                                                             admit="202604010930"),
            zls("03", "202604010930")),
        # The second of a message's two commands is refused (a CTO from before birth): the
        # first, already recorded, is rolled back with it.
        msg("A03", evn("A03"), pid(nhs=N1, local="L-1"), pv1(visit="V0002",
                                                             discharge="202605011100"),
            zls("CTO", "19700101"), structure="ADT_A03"),
        # An A40 of L-3 into L-2 across two different NHS numbers: refused whole (never
        # linked, standards.md section 4), so L-3's later messages stay with its own person.
        msg("A01", evn("A01"), pid(nhs=N2, local="L-2"), pv1(visit="V2"), admit),
        msg("A01", evn("A01"), pid(nhs=N3, local="L-3"), pv1(visit="V3"), admit),
        msg("A40", evn("A40", "20260401090000"), pid(nhs=N2, local="L-2"),
            segment("MRG", {1: "L-3^^^RX1^MR"}), structure="ADT_A39"),
        msg("A08", evn("A08", "20260402100000"), pid(nhs=N3, local="", family="Testley"),
            pv1(visit="V3")),
        msg("A03", evn("A03"), pid(nhs="", local="L-3"), pv1(visit="V3",
                                                            discharge="202604021100"),
            admit, structure="ADT_A03"),
        # L-4 (no NHS number) merged into L-2, then L-4 found again: it leads to the survivor.
        msg("A01", evn("A01"), pid(nhs="", local="L-4", family="Otherby", given="Kim"),
            pv1(visit="V4"), admit),
        msg("A40", evn("A40", "20260401093000"), pid(nhs=N2, local="L-2"),
            segment("MRG", {1: "L-4^^^RX1^MR"}), structure="ADT_A39"),
        msg("A03", evn("A03"), pid(nhs="", local="L-4", family="Otherby", given="Kim"),
            pv1(visit="V4", discharge="202604021200"), admit, structure="ADT_A03"),
        # A discharge dated before the admission fails; the next message still applies.
        msg("A03", evn("A03"), pid(nhs=N2, local="L-2"), pv1(visit="V2",
                                                            discharge="202512011100"),
            admit, structure="ADT_A03"),
        msg("A08", evn("A08", "20260412100000"), pid(nhs=N2, local="L-2",
                                                    family="Testwood-Hale"), pv1()),
    ]


def _key(conn: Any) -> dict[str, str]:
    """Person ids are random: name each person by their NHS number or first identifier."""
    names: dict[str, str] = {}
    for row in conn.execute(select(persons.c.id, persons.c.nhs_number)):
        names[row.id] = row.nhs_number or ""
    for row in conn.execute(select(person_identifiers.c.person_id, person_identifiers.c.value)
                            .order_by(person_identifiers.c.id)):
        names[row.person_id] = names[row.person_id] or row.value
    return names


def _plain(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        k = _key(conn)

        def rows(table: Any, skip: set[str]) -> Counter[tuple[Any, ...]]:
            out: Counter[tuple[Any, ...]] = Counter()
            for row in conn.execute(select(table)).mappings():
                out[tuple((c, k.get(v, v) if c in ("id", "person_id") else _plain(v))
                          for c, v in sorted(row.items()) if c not in skip)] += 1
            return out

        stamps = {"created_at", "updated_at", "recorded_at", "at", "processed_at"}
        return {
            "inbox": sorted((r.message_id, r.status, (r.error or {}).get("code"))
                            for r in conn.execute(select(inbox_messages))),
            "persons": rows(persons, stamps),
            "identifiers": rows(person_identifiers, {"id"}),
            "facts": rows(facts, {"id"} | stamps),
            "entitlements": rows(entitlements, stamps),
            "detentions": rows(detentions, {"id"}),
            "changes": rows(register_changes, {"id"} | stamps),
        }


def _run(hub: Hub, engine: Engine, batch: int) -> dict[str, Any]:
    empty_all_tables(engine)
    hub.sources.save(TRUST_A, hub.clock.now())
    receiver = Hl7Receiver(engine, hub.sources, hub.clock, lambda _: None)
    for message in _stream():
        receiver.handle(message.encode())
    drain(engine, make_mapper(hub.sources), hub.clock, hub.policy, batch=batch,
          time_budget=60.0)
    return _snapshot(engine)


def test_one_batch_writes_what_one_transaction_per_message_writes(hub: Hub,
                                                                   engine: Engine) -> None:
    alone = _run(hub, engine, batch=1)
    together = _run(hub, engine, batch=100)
    statuses = Counter(status for _, status, _ in alone["inbox"])
    assert statuses == {"applied": 12, "failed": 4}, alone["inbox"]
    refused_a40 = next(m for m in alone["inbox"] if m[0] == "B-009")
    assert refused_a40[1:] == ("failed", "identity-conflict"), alone["inbox"]
    assert any(dict(f).get("retracted_by") for f in alone["facts"]), "the cancel retracted"
    applied = {message_id for message_id, status, _ in alone["inbox"] if status == "applied"}
    assert {dict(f)["source_ref"] for f in alone["facts"]} == applied, "facts of failures"
    for part in alone:
        assert together[part] == alone[part], part
