"""Identity links and merges stay reversible, and a birth date that disagrees is asked about
(issue 4: "never link two records with different valid NHS numbers; A40 merges and later
un-merges are reversible"), through the real inbound path (MLLP receiver, inbox, worker) and
the API (`POST /api/v1/people/{id}/unmerge`, the exceptions workflow):

* D5: a record linked on arrival (no known NHS number or local id, a match at or above
  ``identity.link_threshold``) joins its match as a merge recorded in ``person_merges``, so the
  register owner un-merges a wrong automatic link like any merge.
* D6: an un-merge gives the merged person the facts that came after the merge under its
  identifiers (its local id, the NHS number it brought, an identifier first told with that
  number), and both people are recomputed.
* D7: a record linked by a valid NHS number whose birth date differs from the register's is
  linked all the same and raises ``identity-demographics-conflict`` for a person to settle.

Synthetic data only: NHS numbers from the 999 test range, invented names."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.adapters.tables import (
    detentions,
    entitlements,
    facts,
    inbox_messages,
    outbound_deliveries,
    person_checks,
    person_merges,
    persons,
    register_exceptions,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.domain.position import Policy
from register_core.services.bulk_matching import match_register
from register_core.services.inbound import drain
from register_core.services.reconcile import sweep
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from tests.unit.mapping.samples import segment

from .identity_people import (
    apply,
    confirmed,
    council_ref,
    detention,
    identifiers_of,
    identity_exceptions,
    keys_of,
    left_hospital,
    residence,
    trust_ref,
)
from .reconcile_people import TestClient, client_for

TRUST_A = SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                           hl7_sending_application="EPR", hl7_sending_facility="RX1")
TRUST_B = SourceDefinition(source_id="trust-b", kind="hl7v2-mllp",
                           hl7_sending_application="PAS", hl7_sending_facility="RX2")
APPS = {"trust-a": ("EPR", "RX1"), "trust-b": ("PAS", "RX2")}
NA, NM = make_synthetic(951), make_synthetic(952)
KIND = "identity-demographics-conflict"


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


def _msg(source: str, trigger: str, control: str, *segments: str,
         structure: str = "ADT_A01") -> str:
    app, facility = APPS[source]
    head = (f"MSH|^~\\&|{app}|{facility}|S117HUB|HUB|20260105093000||ADT^{trigger}^"
            f"{structure}|{control}|P|2.4|||AL|NE")
    return "\r".join([head, segment("EVN", {1: trigger, 2: "20260105093000"}), *segments]
                     ) + "\r"


def _pid(*, nhs: str = "", local: str = "", family: str = "Alder", given: str = "Ann",
         birth: str = "19800101", facility: str = "RX1") -> str:
    ids = "~".join(x for x in (f"{nhs}^^^NHS^NH" if nhs else "",
                               f"{local}^^^{facility}^MR" if local else "") if x)
    return segment("PID", {1: "1", 3: ids, 5: f"{family}^{given}^^^Mx^^L", 7: birth, 8: "F",
                           11: "1 Sample Street^^Sampletown^^AB1 2CD^^H", 32: "NSTS01"})


def _admit(source: str, control: str, visit: str, admit: str, *, gp: str = "",
           **person: str) -> str:
    facility = APPS[source][1]
    return _msg(source, "A01", control, _pid(facility=facility, **person),
                *([f"PD1|||Sample Surgery^^{gp}"] if gp else []),
                segment("PV1", {1: "1", 2: "I", 3: f"WARD1^^^{facility}", 19: visit,
                                44: admit}),
                segment("ZLS", {1: "03", 2: admit}))


def _discharge(source: str, control: str, visit: str, admit: str, left: str,
               **person: str) -> str:
    facility = APPS[source][1]
    return _msg(source, "A03", control, _pid(facility=facility, **person),
                segment("PV1", {1: "1", 2: "I", 3: f"WARD1^^^{facility}", 19: visit,
                                44: admit, 45: left}),
                segment("ZLS", {1: "03", 2: admit}), structure="ADT_A03")


def _details(source: str, control: str, **person: str) -> str:
    return _msg(source, "A31", control, _pid(facility=APPS[source][1], **person),
                structure="ADT_A05")


def _a40(control: str, survivor: str, mrg: str, **person: str) -> str:
    return _msg("trust-a", "A40", control, _pid(local=survivor, **person),
                segment("MRG", {1: mrg}), structure="ADT_A39")


def _receive(hub: Hub, *messages: str) -> dict[str, tuple[str, Any]]:
    """Receive each message over the MLLP receiver, let the worker apply them; answers
    {control id: (inbox status, stored error)} for every message so far."""
    for source in (TRUST_A, TRUST_B):
        hub.sources.save(source, hub.clock.now())
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, lambda _: None)
    for message in messages:
        receiver.handle(message.encode())
    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy, batch=100,
          time_budget=60.0)
    with hub.engine.connect() as conn:
        return {r.message_id: (r.status, r.error)
                for r in conn.execute(select(inbox_messages))}


def _applied(outcome: dict[str, tuple[str, Any]]) -> None:
    assert {status for status, _ in outcome.values()} == {"applied"}, outcome


def _by_local(engine: Engine, source: str, local: str) -> str:
    found = [pid for pid in _everyone(engine) if (source, local) in identifiers_of(engine, pid)]
    assert len(found) == 1, found
    return found[0]


def _everyone(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(persons.c.id).order_by(persons.c.id)).scalars())


def _person(engine: Engine, person_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(persons).where(persons.c.id == person_id)
                                 ).mappings().one())


def _episodes(engine: Engine, person_id: str) -> list[tuple[str, date | None]]:
    with engine.connect() as conn:
        return [(r.ref, r.end) for r in conn.execute(
            select(detentions.c.ref, detentions.c.end)
            .where(detentions.c.person_id == person_id).order_by(detentions.c.ref))]


def _journal(engine: Engine, person_id: str) -> list[tuple[int, str, str, int | None]]:
    with engine.connect() as conn:
        return [(r.seq, r.source_ref, r.kind, r.retracted_by) for r in conn.execute(
            select(facts.c.seq, facts.c.source_ref, facts.c.kind, facts.c.retracted_by)
            .where(facts.c.person_id == person_id).order_by(facts.c.seq))]


def _status(engine: Engine, person_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(entitlements.c.status).where(
            entitlements.c.person_id == person_id)).scalar()


def _merges(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(person_merges).order_by(person_merges.c.merged_at, person_merges.c.id)
        ).mappings()]


def _checked_at_current_version(engine: Engine, person_id: str) -> bool:
    with engine.connect() as conn:
        version = conn.execute(select(persons.c.version).where(
            persons.c.id == person_id)).scalar_one()
        checked = conn.execute(select(person_checks.c.version).where(
            person_checks.c.person_id == person_id)).scalar()
    return checked == version


def _subscribe(hub: Hub) -> None:
    hub.subscriptions.save(SubscriptionDefinition(
        subscription_id="council-a", kind="council-rest",
        endpoint="http://127.0.0.1:9/s117"), hub.clock.now())


def _deliveries(engine: Engine, person_id: str) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(outbound_deliveries.c.id).where(
            outbound_deliveries.c.person_id == person_id)).all())


# -- D5: a link made on arrival is a recorded, reversible merge --------------------------------


def test_a_link_made_on_arrival_is_undone_by_unmerge_with_its_later_facts(
        hub: Hub, owner: TestClient) -> None:
    """Trust B's record of Ann Alder (no NHS number, its own id L-B7) matches the person
    trust A registered at or above the link threshold and joins her. Before, the join was
    written straight onto her record and nothing recorded it: a wrong automatic link could
    not be undone. Now it is a merge of the arrived record's own person, recorded as the
    register's automatic identity link; un-merging that person gives it back its admission
    and the discharge trust B sent later under L-B7 (D6), and keeps the two apart."""
    first = _receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _discharge("trust-a", "M-2", "VA", "202601050930", "202603011100", nhs=NA,
                   local="L-A"),
        _admit("trust-b", "M-3", "VB", "202604100930", local="L-B7", gp="M85019"),
    )
    _applied(first)
    ann = _by_local(hub.engine, "trust-a", "L-A")
    # The link filled what the register did not know (as a link always did).
    assert _person(hub.engine, ann)["gp_practice_ods"] == "M85019"
    assert identifiers_of(hub.engine, ann) == {("trust-a", "L-A"), ("trust-b", "L-B7")}
    [link] = _merges(hub.engine)
    arrived = link["merged_id"]
    assert link["survivor_id"] == ann and arrived != ann
    assert (link["source"], link["source_ref"], link["merged_by"]) == (
        "register", "identity-link:trust-b:M-3", "system")
    assert identifiers_of(hub.engine, arrived) == set() and keys_of(hub.engine, arrived) == set()
    assert _journal(hub.engine, arrived) == []
    with hub.engine.connect() as conn:  # how the owner finds it: the message names it
        linking = conn.execute(select(inbox_messages.c.person_ids).where(
            inbox_messages.c.message_id == "M-3")).scalar_one()
    assert sorted(linking) == sorted([ann, arrived])
    # Trust B's discharge comes under L-B7: found exactly, on Ann's record.
    _applied(_receive(hub, _discharge("trust-b", "M-4", "VB", "202604100930",
                                      "202605011100", local="L-B7")))
    assert _episodes(hub.engine, ann) == [("VA", date(2026, 3, 1)), ("VB", date(2026, 5, 1))]

    _subscribe(hub)
    response = owner.post(f"/api/v1/people/{arrived}/unmerge")
    assert response.status_code == 200, response.text
    assert response.json() == {"merge_id": link["id"], "survivor_id": ann,
                               "merged_id": arrived, "facts_moved": 2}
    assert identifiers_of(hub.engine, ann) == {("trust-a", "L-A")}
    assert identifiers_of(hub.engine, arrived) == {("trust-b", "L-B7")}
    assert keys_of(hub.engine, arrived)  # back in the blocking look-ups
    assert [(s, ref, kind) for s, ref, kind, _ in _journal(hub.engine, arrived)] == [
        (1, "M-3", "detention-started"), (2, "M-4", "left-hospital")]
    assert {ref for _, ref, _, _ in _journal(hub.engine, ann)} == {"M-1", "M-2"}
    assert _episodes(hub.engine, ann) == [("VA", date(2026, 3, 1))]
    assert _episodes(hub.engine, arrived) == [("VB", date(2026, 5, 1))]
    assert _status(hub.engine, arrived) == "active"  # recomputed: partners are told
    # What the link filled goes back with it; the arrived record keeps what it told.
    assert _person(hub.engine, ann)["gp_practice_ods"] is None
    assert _person(hub.engine, arrived)["gp_practice_ods"] == "M85019"
    assert _deliveries(hub.engine, arrived) == 1
    assert all(_checked_at_current_version(hub.engine, pid) for pid in (ann, arrived))
    # The un-merge is the owner's decision that they are different people.
    [kept_apart] = identity_exceptions(hub.engine)
    assert kept_apart["decision"] == "different-people"
    assert {kept_apart["person_id"], kept_apart["detail"]["candidate_person_id"]} == {
        ann, arrived}
    # Trust B's next message finds its own record again, and is not linked to Ann anew.
    _applied(_receive(hub, _details("trust-b", "M-5", local="L-B7")))
    assert {ref for _, ref, _, _ in _journal(hub.engine, arrived)} == {"M-3", "M-4", "M-5"}
    assert len(_merges(hub.engine)) == 1


def test_a_link_made_on_arrival_in_a_batch_moves_the_first_facts_too(hub: Hub) -> None:
    """The arriving record and the one before it in the same worker batch: the link is a
    merge in the batch's transaction, and the batch goes on with the next message."""
    outcome = _receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _admit("trust-b", "M-2", "VB", "202604100930", local="L-B7"),
        _discharge("trust-b", "M-3", "VB", "202604100930", "202605011100", local="L-B7"),
    )
    _applied(outcome)
    ann = _by_local(hub.engine, "trust-a", "L-A")
    [link] = _merges(hub.engine)
    assert link["survivor_id"] == ann
    assert [ref for _, ref, _, _ in _journal(hub.engine, ann)] == ["M-1", "M-2", "M-3"]
    assert _episodes(hub.engine, ann) == [("VA", None), ("VB", date(2026, 5, 1))]


# -- D6: facts that came after a merge under the merged record's identifiers go back ----------


def test_an_unmerge_moves_back_what_came_later_under_the_merged_local_id(
        hub: Hub, owner: TestClient) -> None:
    """An A40 merges L-C into L-A; the trust then discharges L-C's stay under L-C (found on
    the survivor). Before, the un-merge left that discharge on the survivor: L-C's record came
    back still in hospital. Now it goes back with L-C's admission, after it, and both are
    recomputed."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _admit("trust-a", "M-2", "VC", "202602020930", local="L-C", family="Cedar",
               given="Carl", birth="19700505"),
        _a40("M-3", "L-A", "L-C^^^RX1^MR", nhs=NA),
        _discharge("trust-a", "M-4", "VC", "202602020930", "202604031100", local="L-C",
                   family="Cedar", given="Carl", birth="19700505"),
    ))
    a, c = _by_local(hub.engine, "trust-a", "L-A"), None
    [merge] = _merges(hub.engine)
    c = merge["merged_id"]
    assert _episodes(hub.engine, a) == [("VA", None), ("VC", date(2026, 4, 3))]
    # The trust told the survivor's demographics, so its message under L-C changed them.
    assert (_person(hub.engine, a)["family_name"], _person(hub.engine, a)["birth_date"]) == (
        "Cedar", date(1970, 5, 5))
    _subscribe(hub)
    response = owner.post(f"/api/v1/people/{c}/unmerge")
    assert response.status_code == 200, response.text
    assert response.json()["facts_moved"] == 2
    assert [(s, ref) for s, ref, _, _ in _journal(hub.engine, c)] == [(1, "M-2"), (2, "M-4")]
    assert [ref for _, ref, _, _ in _journal(hub.engine, a)] == ["M-1", "M-3"]
    assert _episodes(hub.engine, c) == [("VC", date(2026, 4, 3))]
    assert _episodes(hub.engine, a) == [("VA", None)]
    # L-C's discharge had made the survivor's entitlement active; back in hospital only now.
    assert (_status(hub.engine, c), _status(hub.engine, a)) == ("active", "pending")
    assert _deliveries(hub.engine, c) == 1 and _deliveries(hub.engine, a) == 1
    assert all(_checked_at_current_version(hub.engine, pid) for pid in (a, c))
    assert identifiers_of(hub.engine, c) == {("trust-a", "L-C")}
    # What L-C's later message changed on the survivor returns to what it was.
    assert (_person(hub.engine, a)["family_name"], _person(hub.engine, a)["birth_date"]) == (
        "Alder", date(1980, 1, 1))
    assert (_person(hub.engine, c)["family_name"], _person(hub.engine, c)["birth_date"]) == (
        "Cedar", date(1970, 5, 5))


def test_an_unmerge_moves_back_what_came_later_under_the_nhs_number_the_record_brought(
        hub: Hub, owner: TestClient) -> None:
    """L-M brought its NHS number to L-S (which had none) in an A40. Trust B then sent a
    first record with that number and its own id L-B9 (found by the number, on L-S), and
    later one under L-B9 alone; the trust sent L-S's own discharge. Un-merging L-M gives it
    its number, trust B's two facts and L-B9 (first told with that number); L-S keeps its
    own discharge."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VS", "202601050930", local="L-S", family="Sorrel",
               given="Sam", birth="19600101"),
        _admit("trust-a", "M-2", "VM", "202601060930", nhs=NM, local="L-M", family="Maple",
               given="Mo", birth="19650202"),
        _a40("M-3", "L-S", f"{NM}^^^NHS^NH~L-M^^^RX1^MR", family="Sorrel", given="Sam",
             birth="19600101"),
        _admit("trust-b", "M-4", "VB9", "202604100930", nhs=NM, local="L-B9", family="Maple",
               given="Mo", birth="19650202"),
        _discharge("trust-b", "M-5", "VB9", "202604100930", "202605011100", local="L-B9",
                   family="Maple", given="Mo", birth="19650202"),
        _discharge("trust-a", "M-6", "VS", "202601050930", "202603011100", local="L-S",
                   family="Sorrel", given="Sam", birth="19600101"),
    ))
    s = _by_local(hub.engine, "trust-a", "L-S")
    [merge] = _merges(hub.engine)
    m = merge["merged_id"]
    assert _person(hub.engine, s)["nhs_number"] == NM
    response = owner.post(f"/api/v1/people/{m}/unmerge")
    assert response.status_code == 200, response.text
    assert response.json()["facts_moved"] == 3
    assert [ref for _, ref, _, _ in _journal(hub.engine, m)] == ["M-2", "M-4", "M-5"]
    assert [ref for _, ref, _, _ in _journal(hub.engine, s)] == ["M-1", "M-3", "M-6"]
    assert identifiers_of(hub.engine, m) == {("trust-a", "L-M"), ("trust-b", "L-B9")}
    assert identifiers_of(hub.engine, s) == {("trust-a", "L-S")}
    assert (_person(hub.engine, m)["nhs_number"], _person(hub.engine, s)["nhs_number"]) == (
        NM, None)
    assert _episodes(hub.engine, m) == [("VB9", date(2026, 5, 1)), ("VM", None)]
    assert _episodes(hub.engine, s) == [("VS", date(2026, 3, 1))]
    # Trust B's next message under L-B9 is L-M's person's.
    _applied(_receive(hub, _details("trust-b", "M-7", local="L-B9", family="Maple",
                                    given="Mo", birth="19650202")))
    assert [ref for _, ref, _, _ in _journal(hub.engine, m)][-1] == "M-7"


def test_a_reconcile_link_is_undone_with_what_came_later_under_the_merged_record(
        hub: Hub, owner: TestClient) -> None:
    """``s117hub reconcile``'s bulk merges record what the write path's do (where the
    survivor's journal goes on, its demographics before): the council's confirmation sent
    after the link under its own id C-701 goes back with its record on un-merge."""
    configured = hub.policy
    hub.policy = replace(configured, probabilistic_identity=False)  # onboarded in bulk
    council = apply(hub, residence(council_ref())).person_id
    trust = apply(hub, detention(trust_ref())).person_id
    apply(hub, left_hospital(trust_ref()))
    hub.policy = configured
    report = match_register(hub.engine, hub.clock, Policy())
    assert report.merges == [(trust, council)]
    [merge] = _merges(hub.engine)
    assert (merge["source"], merge["source_ref"], merge["merged_by"]) == (
        "register", "reconcile", "system")
    assert merge["moved"]["survivor_seq"] == 4  # after the council's one fact
    later = apply(hub, confirmed(council_ref(family_name=None, birth_date=None)))
    assert later.person_id == trust
    response = owner.post(f"/api/v1/people/{council}/unmerge")
    assert response.status_code == 200 and response.json()["facts_moved"] == 2
    assert [kind for _, _, kind, _ in _journal(hub.engine, council)] == [
        "ordinary-residence", "s117-confirmed"]
    assert [kind for _, _, kind, _ in _journal(hub.engine, trust)] == [
        "detention-started", "left-hospital"]


def test_two_records_merged_into_one_are_each_given_back_their_own(
        hub: Hub, owner: TestClient) -> None:
    """L-C and then L-D merged into L-A; a message under L-C after both. Un-merging L-C
    takes its own admission and that message, not L-D's (merged after it); L-D's un-merge
    still finds all of its facts where its merge put them."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _admit("trust-a", "M-2", "VC", "202602020930", local="L-C", family="Cedar",
               given="Carl", birth="19700505"),
        _admit("trust-a", "M-3", "VD", "202602030930", local="L-D", family="Dogwood",
               given="Dan", birth="19750606"),
        _a40("M-4", "L-A", "L-C^^^RX1^MR", nhs=NA),
        _a40("M-5", "L-A", "L-D^^^RX1^MR", nhs=NA),
        _discharge("trust-a", "M-6", "VC", "202602020930", "202604031100", local="L-C",
                   family="Cedar", given="Carl", birth="19700505"),
    ))
    a = _by_local(hub.engine, "trust-a", "L-A")
    c, d = (m["merged_id"] for m in sorted(_merges(hub.engine),
                                            key=lambda m: m["source_ref"]))
    response = owner.post(f"/api/v1/people/{c}/unmerge")
    assert response.status_code == 200 and response.json()["facts_moved"] == 2
    assert [ref for _, ref, _, _ in _journal(hub.engine, c)] == ["M-2", "M-6"]
    assert identifiers_of(hub.engine, a) == {("trust-a", "L-A"), ("trust-a", "L-D")}
    response = owner.post(f"/api/v1/people/{d}/unmerge")
    assert response.status_code == 200 and response.json()["facts_moved"] == 1
    assert [ref for _, ref, _, _ in _journal(hub.engine, d)] == ["M-3"]
    assert [ref for _, ref, _, _ in _journal(hub.engine, a)] == ["M-1", "M-4", "M-5"]


def test_a_message_naming_two_people_an_owner_unmerged_does_not_merge_them_again(
        hub: Hub, owner: TestClient) -> None:
    """A valid NHS number arriving with a local id held by a person without one merges the
    two (the late-NHS-number merge). Once the owner un-merged them, the same pairing is
    refused (the message fails with the rule) rather than merged behind the decision."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _admit("trust-a", "M-2", "V9", "202601060930", local="L-9", family="Cedar",
               given="Carl", birth="19700505"),
        _discharge("trust-a", "M-3", "V9", "202601060930", "202604031100", nhs=NA,
                   local="L-9", family="Cedar", given="Carl", birth="19700505"),
    ))
    [merge] = _merges(hub.engine)
    local = merge["merged_id"]
    assert owner.post(f"/api/v1/people/{local}/unmerge").status_code == 200
    # The discharge came under L-9: it went back with the admission.
    assert [ref for _, ref, _, _ in _journal(hub.engine, local)] == ["M-2", "M-3"]
    assert _episodes(hub.engine, local) == [("V9", date(2026, 4, 3))]
    outcome = _receive(hub, _details("trust-a", "M-4", nhs=NA, local="L-9", family="Cedar",
                                     given="Carl", birth="19700505"))
    status, error = outcome["M-4"]
    assert status == "failed" and error["rule"] == "kept-apart-by-register-owner", outcome
    assert len(_merges(hub.engine)) == 1


# -- D7: a birth date that differs from the register's on an NHS-number link ------------------


def _conflicts(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(register_exceptions).where(register_exceptions.c.kind == KIND)
            .order_by(register_exceptions.c.raised, register_exceptions.c.id)).mappings()]


def test_a_birth_date_differing_on_an_nhs_number_link_is_asked_about_not_refused(
        hub: Hub, owner: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """Trust B sends Ann's NHS number with another birth date. The NHS number is the
    identity: the record links and applies, the register keeps trust A's birth date, and an
    identity-demographics-conflict names the field, both values and their sources (the
    summary, the fingerprint and the logs name neither date). Before, nothing was raised."""
    caplog.set_level(logging.DEBUG)
    outcome = _receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _details("trust-b", "M-2", nhs=NA, local="L-B1", birth="19810203"),
        _details("trust-b", "M-3", nhs=NA, local="L-B1", birth="19810203"),  # same again
    )
    _applied(outcome)
    [ann] = _everyone(hub.engine)
    assert _person(hub.engine, ann)["birth_date"] == date(1980, 1, 1)
    [row] = _conflicts(hub.engine)
    assert (row["person_id"], row["status"]) == (ann, "open")
    detail = row["detail"]
    assert detail["field"] == "person.birth_date"
    assert [(v["source"], v["value"], v["held_by_register"]) for v in detail["values"]] == [
        ("trust-a", "1980-01-01", True), ("trust-b", "1981-02-03", False)]
    assert (detail["source"], detail["source_ref"]) == ("trust-b", "M-2")
    for text in (row["summary"], row["fingerprint"], caplog.text):
        assert "1981" not in text and "1980-01-01" not in text
    assert "Alder" not in caplog.text
    # A person decides: not as an identity question, nor with a correction that sets nothing.
    for decision in ("same-person", "corrected", "accept-source:trust-c"):
        refused = owner.post(f"/api/v1/exceptions/{row['id']}/resolve",
                             json={"decision": decision, "reason": "checked"})
        assert refused.status_code == 422, (decision, refused.text)
    # The sweep leaves it alone: only a person closes it.
    sweep(hub.engine, hub.clock, hub.policy, full=True)
    assert _conflicts(hub.engine)[0]["status"] == "open"
    # Accepting trust B's value sets it on the register, as a register correction.
    response = owner.post(f"/api/v1/exceptions/{row['id']}/resolve", json={
        "decision": "accept-source:trust-b", "reason": "the birth certificate says so"})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["decision"]) == (
        "resolved", "accept-source:trust-b")
    assert _person(hub.engine, ann)["birth_date"] == date(1981, 2, 3)
    assert _journal(hub.engine, ann)[-1][1] == f"exception:{row['id']}"
    # Trust B's value is the register's now. Trust A's next message with its old date asks
    # the question just decided (the same two dates): not raised again (audit 9).
    _applied(_receive(hub, _details("trust-b", "M-4", nhs=NA, local="L-B1",
                                    birth="19810203")))
    assert len(_conflicts(hub.engine)) == 1
    _applied(_receive(hub, _details("trust-a", "M-5", nhs=NA, local="L-A")))
    assert _person(hub.engine, ann)["birth_date"] == date(1981, 2, 3)
    assert [r["status"] for r in _conflicts(hub.engine)] == ["resolved"]


def test_a_birth_date_conflict_can_be_resolved_or_dismissed(hub: Hub,
                                                             owner: TestClient) -> None:
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _details("trust-b", "M-2", nhs=NA, birth="19810203"),
    ))
    [row] = _conflicts(hub.engine)
    response = owner.post(f"/api/v1/exceptions/{row['id']}/dismiss",
                          json={"reason": "trust B fixes its record"})
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    # Decided: the same disagreement is not raised again.
    _applied(_receive(hub, _details("trust-b", "M-3", nhs=NA, birth="19810203")))
    assert len(_conflicts(hub.engine)) == 1
    # Another value is another question; resolved is a decision it accepts.
    _applied(_receive(hub, _details("trust-b", "M-4", nhs=NA, birth="19810204")))
    [again] = [r for r in _conflicts(hub.engine) if r["status"] == "open"]
    response = owner.post(f"/api/v1/exceptions/{again['id']}/resolve",
                          json={"decision": "resolved", "reason": "trust B corrected it"})
    assert response.status_code == 200 and response.json()["status"] == "resolved"
    assert _person(hub.engine, again["person_id"])["birth_date"] == date(1980, 1, 1)


def test_the_console_offers_a_birth_date_conflict_only_the_decisions_it_takes(
        hub: Hub) -> None:
    """accept-source for either value, resolved or dismiss: no "corrected" (refused, no
    correction sets a birth date) and no correction form."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _details("trust-b", "M-2", nhs=NA, birth="19810203"),
    ))
    [row] = _conflicts(hub.engine)
    _, token = TokenStore(hub.engine).create(Role.REGISTER_OWNER)
    with TestClient(create_app(hub), base_url="https://hub.test",
                    follow_redirects=False) as console:
        login = console.get("/ui/login").text
        guard = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
        assert console.post("/ui/login", data={"token": token,
                                               "csrf_token": guard}).status_code == 303
        page = console.get(f"/ui/exceptions/{row['id']}")
    assert page.status_code == 200
    offered = re.findall(r'<option value="([^"]+)"', page.text.split('id="resolve"')[1]
                         .split("</select>")[0])
    assert offered == ["accept-source:trust-a", "accept-source:trust-b", "resolved"]
    assert 'name="apply_type"' not in page.text


def test_an_a40_joining_two_people_an_owner_unmerged_waits_for_the_owner(
        hub: Hub, owner: TestClient) -> None:
    """The trust merges L-B into L-A (A40); the owner un-merges them; the trust's next A40
    for the same pair is refused with the rule (failed, kept) — not applied behind the
    owner's decision — and applies on replay once the owner reopens the question."""
    _applied(_receive(
        hub,
        _admit("trust-a", "M-1", "VA", "202601050930", nhs=NA, local="L-A"),
        _admit("trust-a", "M-2", "VB", "202601060930", local="L-B"),
        _a40("M-3", "L-A", "L-B", nhs=NA),
    ))
    [merge] = _merges(hub.engine)
    assert owner.post(f"/api/v1/people/{merge['merged_id']}/unmerge").status_code == 200
    outcome = _receive(hub, _a40("M-4", "L-A", "L-B", nhs=NA))
    status, error = outcome["M-4"]
    assert status == "failed" and error["rule"] == "kept-apart-by-register-owner", outcome
    assert len(_merges(hub.engine)) == 1  # the first, undone

    with hub.engine.connect() as conn:
        [decided] = conn.execute(select(register_exceptions.c.id).where(
            register_exceptions.c.decision == "different-people")).scalars()
        [message] = conn.execute(select(inbox_messages.c.id).where(
            inbox_messages.c.message_id == "M-4")).scalars()
    assert owner.post(f"/api/v1/exceptions/{decided}/reopen",
                      json={"reason": "the trust merged them again"}).status_code == 200
    with client_for(hub, Role.INTEGRATION_ENGINEER) as engineer:
        assert engineer.post(f"/api/v1/messages/{message}/replay").status_code == 202
    _applied(_receive(hub))
    merges = _merges(hub.engine)  # the same instant (a fixed clock): told apart by undoing
    [undone] = [m for m in merges if m["unmerged_at"] is not None]
    [again] = [m for m in merges if m["unmerged_at"] is None]
    assert (again["survivor_id"], again["merged_id"]) == (undone["survivor_id"],
                                                          undone["merged_id"])
