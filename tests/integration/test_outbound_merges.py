"""Merges and un-merges reach partners as their integration engines expect (issue 5), through
the real transports to loopback partners, on SQLite and PostgreSQL:

- HL7 v2: an ADT^A40 for the merged-away record, PID the survivor (NHS number, register id)
  and MRG the merged record (its register id); the survivor's status as an A08;
- FHIR R4: a transaction Bundle that PUTs the merged-away Patient (``active`` false, ``link``
  replaced-by the survivor) and its EpisodeOfCare, and the survivor's Patient with a
  ``replaces`` link;
- council REST: ``merged_into`` naming the survivor by register id and NHS number
  (``merged_from`` on the survivor), with ``changes`` saying ``person.merged_into`` /
  ``person.merged_from``.

No merge notice carries a source's own identifiers (a trust's MRNs to a council, a
council's case number to a trust): partners know people by the register id and NHS number.

An un-merge tells each side its own status again, without the links. Every kind of merge is
covered: an A40 in the worker's batch, a register owner's same-person decision, ``s117hub
reconcile``'s link (also of a person whose status did not move), and an NHS number arriving
for a record known by a local id only (a link on arrival merges a record no partner was ever
sent: nobody is told of it). Before this, the merged-away person was told as status ``none``
(or not at all) with nothing naming the survivor. Synthetic people only (999-range NHS
numbers, invented names).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import hl7
import pytest
from sqlalchemy import select

from connectors.outbound.delivery import Deliverer
from register_core.adapters import inbox
from register_core.adapters.security import Role
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import entitlements, outbound_deliveries, person_merges
from register_core.domain.codec import to_json
from register_core.domain.commands import (
    CancelEvent,
    Command,
    MergePersons,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    SetNamedPractitioner,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.bulk_matching import apply_matches, plan_matches
from register_core.services.inbound import process_batch
from register_core.services.outbound import enqueue_on_change
from s117hub import cli_reconcile
from s117hub.bootstrap import Hub
from s117hub.config import Settings
from tests.unit.outbound.partners import HttpPartner, MllpPartner
from tests.unit.outbound.support import FAST_RETRY, sub

from .identity_people import (
    COUNCIL,
    TRUST,
    TYPO,
    apply,
    at,
    confirmed,
    council_ref,
    detention,
    identity_exceptions,
    left_hospital,
    residence,
    trust_ref,
)
from .reconcile_people import TestClient, client_for

# These tests are about what partners are told, not timeouts: a loaded CI machine took over
# FAST_RETRY's half second to answer a transaction Bundle once, leaving it retrying.
RETRY = {**FAST_RETRY, "timeout_seconds": 10.0}

SUBSCRIBERS = ("trust-fhir", "council-x", "trust-pas")
REGISTER_ID = "urn:s117hub:register-id"


@dataclass
class Partners:
    fhir: HttpPartner
    council: HttpPartner
    pas: MllpPartner
    seen: dict[str, int]

    def mark(self) -> None:
        """Later ``new_*`` calls return what arrived after this."""
        self.seen = {"fhir": len(self.fhir.recorder.requests),
                     "council": len(self.council.recorder.requests),
                     "pas": len(self.pas.recorder.requests)}

    def _new(self, name: str) -> list[Any]:
        partner = getattr(self, name)
        return [payload for _, _, payload in partner.recorder.requests[self.seen[name]:]]

    def fhir_bundles(self) -> dict[str, dict[str, Any]]:
        """Merge Bundles that arrived, by the register id of their Patient."""
        found = {}
        for body in self._new("fhir"):
            if body["resourceType"] == "Bundle":
                patient = _entry(body, "Patient")
                found[_register_id(patient)] = body
        return found

    def fhir_episodes(self) -> dict[str, dict[str, Any]]:
        """Plain EpisodeOfCare PUTs that arrived, by register id."""
        return {body["identifier"][0]["value"]: body for body in self._new("fhir")
                if body["resourceType"] == "EpisodeOfCare"}

    def council_documents(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for body in self._new("council"):
            found[body["person"]["register_id"]] = body  # the last one per person
        return found

    def hl7_messages(self) -> list[hl7.Message]:
        return [hl7.parse(text.replace("\n", "\r")) for text in self._new("pas")]


@pytest.fixture
def partners(hub: Hub) -> Iterator[Partners]:
    with HttpPartner() as fhir, HttpPartner() as council, MllpPartner() as pas:
        for definition in (
                sub("trust-fhir", "fhir-r4", f"{fhir.url}/fhir", retry=RETRY),
                sub("council-x", "council-rest", f"{council.url}/s117/changes",
                    retry=RETRY),
                sub("trust-pas", "hl7v2-mllp", pas.endpoint, retry=RETRY,
                    hl7={"receiving_application": "PAS", "receiving_facility": "RX2"})):
            hub.subscriptions.save(definition, hub.clock.now())
        yield Partners(fhir, council, pas, {"fhir": 0, "council": 0, "pas": 0})


@pytest.fixture
def owner(hub: Hub) -> Iterator[TestClient]:
    with client_for(hub, Role.REGISTER_OWNER) as client:
        yield client


def deliver(hub: Hub, partners: Partners) -> None:
    """Send everything queued (as the outbound worker does) and check it all arrived."""
    partners.mark()
    deliverer = Deliverer(hub.engine, hub.clock, SubscriptionRegistry(hub.engine,
                                                                      ttl_seconds=0))
    try:
        for subscription_id in SUBSCRIBERS:
            deliverer.drain(subscription_id)
    finally:
        deliverer.close()
    with hub.engine.connect() as conn:
        statuses = set(conn.execute(select(outbound_deliveries.c.status)).scalars())
    assert statuses <= {"delivered", "superseded"}, statuses


_batches = iter(range(1, 1_000_000))


def worker_applies(hub: Hub, *commands: Command) -> list[Any]:
    """The commands stored in the inbox as a receiver would, then applied by the worker's
    batch (which queues the outbound changes in its transaction)."""
    batch = next(_batches)
    ids = []
    with hub.engine.begin() as conn:
        for n, command in enumerate(commands):
            ids.append(inbox.store_message(
                conn, source=command.provenance.source, message_id=f"b{batch}-{n}",
                channel="council-rest", message_type=command.kind, payload="{}",
                received_at=command.provenance.received_at,
                commands=[[command.kind, to_json(command)]]).id)
    outcomes = process_batch(hub.engine, ids, lambda entry: [], hub.clock, hub.policy)
    assert [o.status for o in outcomes] == ["applied"] * len(commands), outcomes
    return outcomes


def status_of(hub: Hub, person_id: str) -> str:
    with hub.engine.connect() as conn:
        return str(conn.execute(select(entitlements.c.status).where(
            entitlements.c.person_id == person_id)).scalar_one())


def _entry(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    [resource] = [e["resource"] for e in bundle["entry"]
                  if e["resource"]["resourceType"] == kind]
    return resource


def _register_id(resource: dict[str, Any]) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == REGISTER_ID)


def _links(patient: dict[str, Any]) -> list[tuple[str, str]]:
    return [(link["type"], link["other"]["identifier"]["value"])
            for link in patient.get("link", [])]


def _cx(segment: Any, index: int) -> set[tuple[str, str, str]]:
    """A CX field's repetitions as (value, assigning authority, type)."""
    return {(str(rep[0]), str(rep[3]), str(rep[4])) for rep in segment[index]}


def _by_trigger(messages: list[hl7.Message]) -> dict[str, list[hl7.Message]]:
    found: dict[str, list[hl7.Message]] = {}
    for message in messages:
        found.setdefault(str(message.segment("MSH")[9][0][1]), []).append(message)
    return found


def _a08_of(messages: list[hl7.Message], person_id: str) -> hl7.Message:
    [found] = [m for m in _by_trigger(messages).get("A08", [])
               if (person_id, "S117HUB", "PI") in _cx(m.segment("PID"), 3)]
    return found


def _changed(document: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(c["field"], c["old"], c["new"]) for c in document["changes"]]


# -- an A40, then an un-merge ---------------------------------------------------------------

SURVIVOR = trust_ref(802, local_id="RX1-802", given_name="Neil", family_name="Payne")
MERGED = PersonRef(local_id="RX1-801", family_name="Paine", given_name="Neil",
                   birth_date=date(1979, 3, 14), postcode="S10 2TN")


def _duplicate_then_a40(hub: Hub, partners: Partners) -> tuple[str, str]:
    """The trust registered one man twice (with his NHS number, and without it under
    another number), both known to every partner; then it sends an A40."""
    hub.policy = replace(hub.policy, probabilistic_identity=False)  # two records, as sent
    first = worker_applies(
        hub,
        detention(SURVIVOR, date(2025, 6, 2), msg="old-1"),
        left_hospital(SURVIVOR, date(2025, 9, 1), msg="old-2"),
        detention(MERGED, date(2026, 1, 7), msg="adt-1"))
    survivor, merged = first[0].applied[0].person_id, first[2].applied[0].person_id
    assert survivor != merged
    deliver(hub, partners)
    assert set(partners.council_documents()) == {survivor, merged}
    worker_applies(hub, MergePersons(
        person=SURVIVOR, merged_local_id="RX1-801",
        provenance=Provenance(source=TRUST, source_ref="a40-1",
                              received_at=at(date(2026, 4, 1)))))
    deliver(hub, partners)
    return survivor, merged


def test_an_a40_reaches_each_partner_as_a_merge_naming_the_survivor(
        hub: Hub, partners: Partners) -> None:
    survivor, merged = _duplicate_then_a40(hub, partners)
    nhs = make_synthetic(802)
    assert status_of(hub, merged) == "none"

    # HL7 v2: an A40 (PID the survivor, MRG the merged record), and the survivor's A08.
    messages = partners.hl7_messages()
    by_trigger = _by_trigger(messages)
    [a40] = by_trigger["A40"]
    assert str(a40.segment("MSH")[9]) == "ADT^A40^ADT_A39"
    # The two records as the A08s named them: no source's local ids (RX1-80x).
    assert _cx(a40.segment("PID"), 3) == {(nhs, "NHS", "NH"), (survivor, "S117HUB", "PI")}
    assert str(a40.segment("PID")[5]) == "Payne^Neil"
    assert _cx(a40.segment("MRG"), 1) == {(merged, "S117HUB", "PI")}
    assert str(a40.segment("MRG")[7]) == "Paine^Neil"
    zse = _a08_of(messages, survivor).segment("ZSE")
    assert str(zse[1]) == status_of(hub, survivor)
    assert "person.merged_from" in [str(rep) for rep in zse[12]]
    # No A08 resurrects the merged record at the partner.
    assert not [m for m in by_trigger.get("A08", [])
                if (merged, "S117HUB", "PI") in _cx(m.segment("PID"), 3)]

    # FHIR R4: the merged-away Patient inactive, replaced by the survivor; and the other way.
    bundles = partners.fhir_bundles()
    assert set(bundles) == {survivor, merged}
    for bundle in bundles.values():
        assert bundle["type"] == "transaction"
        assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT"]
        assert [e["request"]["url"].split("?")[0] for e in bundle["entry"]] == [
            "Patient", "EpisodeOfCare"]
    gone = _entry(bundles[merged], "Patient")
    assert gone["active"] is False
    assert _links(gone) == [("replaced-by", survivor)]
    assert _entry(bundles[merged], "EpisodeOfCare")["status"] == "cancelled"
    kept = _entry(bundles[survivor], "Patient")
    assert kept["active"] is True and _links(kept) == [("replaces", merged)]
    assert {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs} in kept["identifier"]
    key, headers, _ = partners.fhir.recorder.requests[-1]
    assert headers["path"] == "/fhir" and headers["idempotency-key"] == key

    # Council REST: merged_into names the survivor by register id and NHS number (not the
    # trust's MRNs); the survivor's document says whom it now also stands for.
    documents = partners.council_documents()
    gone_doc = documents[merged]
    assert gone_doc["entitlement"]["status"] == "none"
    assert gone_doc["merged_into"] == {"register_id": survivor, "nhs_number": nhs}
    assert ("person.merged_into", None, survivor) in _changed(gone_doc)
    kept_doc = documents[survivor]
    assert kept_doc["merged_into"] is None
    assert kept_doc["merged_from"] == [{"register_id": merged, "nhs_number": None}]
    assert "RX1-80" not in str(list(documents.values()))
    assert ("person.merged_from", None, merged) in _changed(kept_doc)
    assert kept_doc["entitlement"]["status"] == status_of(hub, survivor)


def test_an_unmerge_tells_each_side_its_own_status_without_the_links(
        hub: Hub, partners: Partners, owner: TestClient) -> None:
    survivor, merged = _duplicate_then_a40(hub, partners)
    response = owner.post(f"/api/v1/people/{merged}/unmerge",
                          json={"reason": "two different men: checked with the ward"})
    assert response.status_code == 200, response.text
    deliver(hub, partners)
    assert status_of(hub, merged) == "pending"  # its own detention again

    messages = partners.hl7_messages()
    assert "A40" not in _by_trigger(messages)
    for person_id in (survivor, merged):
        zse = _a08_of(messages, person_id).segment("ZSE")
        assert str(zse[1]) == status_of(hub, person_id)
    assert "person.merged_into" in [str(r) for r in
                                    _a08_of(messages, merged).segment("ZSE")[12]]

    bundles = partners.fhir_bundles()
    assert set(bundles) == {survivor, merged}
    back = _entry(bundles[merged], "Patient")
    assert back["active"] is True and "link" not in back
    assert _entry(bundles[merged], "EpisodeOfCare")["status"] == "planned"  # pending
    assert "link" not in _entry(bundles[survivor], "Patient")

    documents = partners.council_documents()
    assert documents[merged]["merged_into"] is None
    assert documents[merged]["entitlement"]["status"] == "pending"
    assert ("person.merged_into", survivor, None) in _changed(documents[merged])
    assert documents[survivor]["merged_from"] == []
    assert ("person.merged_from", merged, None) in _changed(documents[survivor])

    # A later ordinary change is told as before: an EpisodeOfCare PUT, an A08.
    worker_applies(hub, left_hospital(MERGED, date(2026, 5, 4), msg="adt-9"))
    deliver(hub, partners)
    assert partners.fhir_bundles() == {}
    assert set(partners.fhir_episodes()) == {merged}
    assert set(_by_trigger(partners.hl7_messages())) == {"A08"}


# -- the other ways two people become one ---------------------------------------------------

def test_a_same_person_decision_names_the_survivor_to_partners(
        hub: Hub, partners: Partners, owner: TestClient) -> None:
    """The council's record (its S117 confirmed, so partners know it) is decided to be the
    trust's person: partners subscribed to it learn it is now the trust's record."""
    trust = worker_applies(hub, detention(trust_ref()), left_hospital(trust_ref()))
    council = worker_applies(hub, residence(council_ref(**TYPO)),
                             confirmed(council_ref(**TYPO)))
    survivor, merged = trust[0].applied[0].person_id, council[0].applied[0].person_id
    deliver(hub, partners)
    assert merged in partners.council_documents()
    [question] = identity_exceptions(hub.engine)
    response = owner.post(f"/api/v1/exceptions/{question['id']}/resolve", json={
        "decision": "same-person", "reason": "same person: checked with the council"})
    assert response.status_code == 200, response.text
    deliver(hub, partners)

    documents = partners.council_documents()
    assert documents[merged]["merged_into"] == {"register_id": survivor,
                                                "nhs_number": make_synthetic(701)}
    assert documents[survivor]["merged_from"] == [{"register_id": merged,
                                                   "nhs_number": None}]
    [a40] = _by_trigger(partners.hl7_messages())["A40"]
    # The trust's PAS is not given the council's case number, nor the council the MRN.
    assert _cx(a40.segment("PID"), 3) == {(make_synthetic(701), "NHS", "NH"),
                                           (survivor, "S117HUB", "PI")}
    assert _cx(a40.segment("MRG"), 1) == {(merged, "S117HUB", "PI")}
    assert "RX1-701" not in str(list(documents.values()))
    assert _links(_entry(partners.fhir_bundles()[merged], "Patient")) == [
        ("replaced-by", survivor)]


def test_reconciles_link_names_the_survivor_to_partners(
        hub: Hub, partners: Partners, database_url: str, clock: FixedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Records onboarded with matching off are linked by ``s117hub reconcile`` (in bulk):
    the council's record partners knew is told merged into the trust's person."""
    configured = hub.policy
    hub.policy = replace(configured, probabilistic_identity=False)
    council = worker_applies(hub, residence(council_ref()), confirmed(council_ref()))
    worker_applies(hub, detention(trust_ref()), left_hospital(trust_ref()))
    merged = council[0].applied[0].person_id
    deliver(hub, partners)
    assert merged in partners.council_documents()
    hub.policy = configured
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    assert cli_reconcile.run(["--no-progress"], Settings(database_url=database_url),
                             clock) == 0
    deliver(hub, partners)

    documents = partners.council_documents()
    survivor = documents[merged]["merged_into"]["register_id"]
    assert survivor != merged
    assert documents[merged]["entitlement"]["status"] == "none"
    assert documents[survivor]["merged_from"][0]["register_id"] == merged
    [a40] = _by_trigger(partners.hl7_messages())["A40"]
    assert _cx(a40.segment("MRG"), 1) == {(merged, "S117HUB", "PI")}
    assert _entry(partners.fhir_bundles()[merged], "Patient")["active"] is False


def test_reconciles_link_of_a_person_whose_status_did_not_move_is_told(
        hub: Hub, partners: Partners, database_url: str, clock: FixedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The trust's local-id record partners were sent (pending, then none when its detention
    was cancelled) is linked by ``s117hub reconcile`` to the council's person with the NHS
    number. The merge moves no register value of either (status none before and after),
    yet partners that knew the record are told it is merged into the survivor, as the A40,
    same-person and NHS-number paths tell them. Before, reconcile told only people whose
    values changed: this merge reached nobody."""
    configured = hub.policy
    hub.policy = replace(configured, probabilistic_identity=False)  # two records, as sent
    nhs = make_synthetic(904)
    local = PersonRef(local_id="RX1-904", family_name="Thornley", given_name="Amelia",
                      birth_date=date(1984, 7, 19), sex="female", postcode="LS6 2AB",
                      gp_practice_ods="B86001")
    holder = worker_applies(hub, residence(council_ref(nhs_number=nhs)))
    held = worker_applies(hub, detention(local, date(2026, 1, 5), msg="adt-904"))
    survivor, merged = holder[0].applied[0].person_id, held[0].applied[0].person_id
    assert survivor != merged
    worker_applies(hub, CancelEvent(
        person=local, cancels="detention-started", episode_ref="RX1-904-V1",
        provenance=Provenance(source=TRUST, source_ref="adt-904-x",
                              received_at=at(date(2026, 1, 6)))))
    deliver(hub, partners)  # partners heard of the local-id record: pending, then none
    with hub.engine.connect() as conn:
        told_before = set(conn.execute(select(outbound_deliveries.c.person_id)).scalars())
    assert merged in told_before
    survivor_status = status_of(hub, survivor)
    hub.policy = configured
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)
    assert cli_reconcile.run(["--no-progress"], Settings(database_url=database_url),
                             clock) == 0
    with hub.engine.connect() as conn:
        [link] = conn.execute(select(person_merges.c.survivor_id, person_merges.c.merged_id)
                              .where(person_merges.c.unmerged_at.is_(None))).all()
    assert tuple(link) == (survivor, merged)  # reconcile's link, not another merge
    assert (status_of(hub, merged), status_of(hub, survivor)) == ("none", survivor_status)
    deliver(hub, partners)

    documents = partners.council_documents()
    assert _changed(documents[merged]) == [("person.merged_into", None, survivor)]
    assert documents[merged]["merged_into"] == {"register_id": survivor, "nhs_number": nhs}
    assert _changed(documents[survivor]) == [("person.merged_from", None, merged)]
    [a40] = _by_trigger(partners.hl7_messages())["A40"]
    assert _cx(a40.segment("PID"), 3) == {(nhs, "NHS", "NH"), (survivor, "S117HUB", "PI")}
    assert _cx(a40.segment("MRG"), 1) == {(merged, "S117HUB", "PI")}
    assert _links(_entry(partners.fhir_bundles()[merged], "Patient")) == [
        ("replaced-by", survivor)]


def test_reconcile_asks_about_unmoved_merges_only_for_people_partners_heard_of(
        hub: Hub, partners: Partners) -> None:
    """The batch stays cheap: of two merges that move no register value, outbound is asked
    about the one whose merged-away record a partner was sent, not about the one no partner
    ever heard of (nor about either survivor, told with the merged person)."""
    hub.policy = replace(hub.policy, probabilistic_identity=False)  # two records each
    pairs = {}
    for serial, who, sent in (
            (905, {"family_name": "Thornley", "given_name": "Amelia",
                   "birth_date": date(1984, 7, 19), "postcode": "LS6 2AB"}, True),
            (906, {"family_name": "Okafor", "given_name": "Ada",
                   "birth_date": date(1990, 5, 6), "postcode": "S10 2TN"}, False)):
        local = PersonRef(local_id=f"RX1-{serial}", sex="female", gp_practice_ods="B86001",
                          **who)
        commands: list[Command] = [
            residence(council_ref(f"C-{serial}", nhs_number=make_synthetic(serial), **who),
                      msg=f"ev-{serial}"),
            detention(local, date(2026, 1, 5), msg=f"adt-{serial}"),
            CancelEvent(person=local, cancels="detention-started",
                        episode_ref=f"RX1-{serial}-V1",
                        provenance=Provenance(source=TRUST, source_ref=f"adt-{serial}-x",
                                              received_at=at(date(2026, 1, 6))))]
        # Through the worker (partners are queued the record) or straight into the register.
        applied = ([o.applied[0] for o in worker_applies(hub, *commands)] if sent
                   else [apply(hub, command) for command in commands])
        pairs[serial] = (applied[0].person_id, applied[1].person_id)
    deliver(hub, partners)
    hub.policy = replace(hub.policy, probabilistic_identity=True)
    asked: list[str] = []
    enqueue = enqueue_on_change(hub.clock.now)

    def on_merge(conn: Any, applied: Any) -> object:
        asked.append(applied.person_id)
        return enqueue(conn, applied)

    report = apply_matches(hub.engine, plan_matches(hub.engine, hub.policy), hub.clock,
                           hub.policy, on_merge=on_merge)
    assert sorted(report.merges) == sorted(pairs.values())
    assert asked == [pairs[905][1]]
    deliver(hub, partners)
    assert set(partners.council_documents()) == set(pairs[905])


def test_an_nhs_number_for_a_local_id_record_is_told_as_a_merge(
        hub: Hub, partners: Partners) -> None:
    """The trust's record known by its local id only is merged into the person holding the
    NHS number that now arrives with it; partners that knew it are told so even though its
    status had already fallen to none (its detention was cancelled: nothing else moved)."""
    nhs = make_synthetic(903)
    local = PersonRef(local_id="RX1-903", family_name="Okafor", given_name="Ada",
                      birth_date=date(1990, 5, 6))
    holder = worker_applies(hub, RecordDetentionStarted(
        person=PersonRef(nhs_number=nhs, local_id="C-903", family_name="Okafor",
                         given_name="Ada", birth_date=date(1990, 5, 6)),
        provenance=Provenance(source=COUNCIL, source_ref="ev-903",
                              received_at=at(date(2026, 2, 1))),
        section="03", start=date(2026, 2, 1), episode_ref="C-903-V1"))
    hub.policy = replace(hub.policy, probabilistic_identity=False)
    held = worker_applies(hub, detention(local, date(2026, 1, 5), msg="adt-903"))
    survivor, merged = holder[0].applied[0].person_id, held[0].applied[0].person_id
    assert survivor != merged
    deliver(hub, partners)  # partners hear of the local-id record: pending
    worker_applies(hub, CancelEvent(
        person=local, cancels="detention-started", episode_ref="RX1-903-V1",
        provenance=Provenance(source=TRUST, source_ref="adt-903-x",
                              received_at=at(date(2026, 1, 6)))))
    deliver(hub, partners)  # … and of its status falling to none
    assert partners.council_documents()[merged]["entitlement"]["status"] == "none"

    # The NHS number arrives with a message that moves no status field of anyone.
    worker_applies(hub, SetNamedPractitioner(
        person=replace(local, nhs_number=nhs), name="Sam Carer", role="care coordinator",
        provenance=Provenance(source=TRUST, source_ref="adt-903-2",
                              received_at=at(date(2026, 3, 2)))))
    deliver(hub, partners)
    documents = partners.council_documents()
    assert documents[merged]["merged_into"]["register_id"] == survivor
    assert documents[merged]["merged_into"]["nhs_number"] == nhs
    assert _changed(documents[merged]) == [("person.merged_into", None, survivor)]
    # The survivor's status did not move either: it is told all the same, with the link.
    assert _changed(documents[survivor]) == [("person.merged_from", None, merged)]
    assert documents[survivor]["entitlement"]["status"] == status_of(hub, survivor)
    messages = partners.hl7_messages()
    [a40] = _by_trigger(messages)["A40"]
    assert _cx(a40.segment("MRG"), 1) == {(merged, "S117HUB", "PI")}
    assert str(_a08_of(messages, survivor).segment("ZSE")[1]) == status_of(hub, survivor)
    assert _links(_entry(partners.fhir_bundles()[survivor], "Patient")) == [
        ("replaces", merged)]


def test_a_link_on_arrival_tells_no_partner_of_a_record_it_never_saw(
        hub: Hub, partners: Partners) -> None:
    """A record linked on arrival is recorded as a merge of a person made for it a moment
    before: no partner ever heard of that person, so none is sent an A40 or a Patient for
    it; the survivor's own change says what joined it."""
    trust = worker_applies(hub, detention(trust_ref()), left_hospital(trust_ref()))
    survivor = trust[0].applied[0].person_id
    deliver(hub, partners)
    worker_applies(hub, residence(council_ref()))  # same demographics: linked on arrival
    deliver(hub, partners)
    with hub.engine.connect() as conn:
        [arrived] = conn.execute(select(person_merges.c.merged_id).where(
            person_merges.c.survivor_id == survivor)).scalars().all()
    documents = partners.council_documents()
    assert arrived not in documents
    assert documents[survivor]["entitlement"]["responsible_council"] == "E08000035"
    assert [r["register_id"] for r in documents[survivor]["merged_from"]] == [arrived]
    assert "A40" not in _by_trigger(partners.hl7_messages())
    assert arrived not in partners.fhir_bundles()
