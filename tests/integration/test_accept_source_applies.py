"""A register owner's ``accept-source:<source>`` on a source-conflict changes the register
(issue 4: "a resolution applies its decision through the unit of work and is itself
provenance"): the decision is journalled as a register fact (source ``register``,
source_ref ``exception:<id>``, recorded by the owner), the position follows the accepted
source as a precedence rule would and explain names the decision, partners are told of the
status change, and neither the sweep nor ``reconcile --full`` raises the conflict again for
the same facts. Through the resolve endpoint and the console's resolve form."""

from __future__ import annotations

import re
import warnings
from datetime import date
from typing import Any

from sqlalchemy import select

from register_core.adapters.security import Role, TokenStore
from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.adapters.tables import facts, outbound_changes, outbound_deliveries
from register_core.domain.commands import (
    PersonRef,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordOrdinaryResidenceChanged,
    RecordS117Confirmed,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.services.reconcile import sweep
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

from .console_world import seed
from .reconcile_people import admit, apply, client_for, prov, ref

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ADMITTED, LEFT = date(2026, 3, 2), date(2026, 4, 1)  # the hub's clock: 2026-06-01


def told_detention(hub: Hub, serial: int, source: str, section: str) -> str:
    """``source``'s record of the detention: admitted ``ADMITTED`` under ``section``, left
    hospital ``LEFT`` (as a council's CSV or REST feed tells it)."""
    person = ref(serial) if source == "council-csv" else PersonRef(
        nhs_number=make_synthetic(serial))
    person_id = apply(hub, RecordDetentionStarted(
        person=person, provenance=prov(source, f"{serial}-{source}-admit", ADMITTED),
        section=section, start=ADMITTED, end=LEFT))
    apply(hub, RecordLeftHospital(
        person=PersonRef(nhs_number=make_synthetic(serial)),
        provenance=prov(source, f"{serial}-{source}-left", LEFT), date=LEFT))
    return person_id


def conflicts(owner: TestClient, person_id: str) -> list[dict[str, Any]]:
    return owner.get("/api/v1/exceptions", params={
        "kind": "source-conflict", "person_id": person_id}).json()["items"]


def subscribe(hub: Hub) -> None:
    hub.subscriptions.save(SubscriptionDefinition(
        subscription_id="council-a", kind="council-rest",
        endpoint="http://127.0.0.1:9/s117"), hub.clock.now())


def deliveries(hub: Hub, person_id: str) -> list[list[dict[str, Any]]]:
    with hub.engine.connect() as conn:
        return [list(row.changes) for row in conn.execute(
            select(outbound_changes.c.changes)
            .join(outbound_deliveries, outbound_changes.c.id == outbound_deliveries.c.change_id)
            .where(outbound_deliveries.c.person_id == person_id)
            .order_by(outbound_deliveries.c.id))]


def decisions_journalled(hub: Hub, person_id: str) -> list[tuple[str, str, str]]:
    """The person's register facts other than disputes: (kind, source_ref, recorded_by)."""
    with hub.engine.connect() as conn:
        return [(r.kind, r.source_ref, r.recorded_by) for r in conn.execute(
            select(facts.c.kind, facts.c.source_ref, facts.c.recorded_by).where(
                facts.c.person_id == person_id, facts.c.source == "register",
                facts.c.kind.not_like("dispute-%")))]


def test_accepting_the_section_2_source_ends_the_s3_entitlement_everywhere(hub: Hub) -> None:
    told_detention(hub, 61, "council-csv", "03")
    person_id = told_detention(hub, 61, "council-a", "02")
    sweep(hub.engine, hub.clock, hub.policy)
    subscribe(hub)
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        before = owner.get(f"/api/v1/people/{person_id}").json()["entitlement"]
        assert (before["status"], before["trigger_section"]) == ("active", "03")
        [conflict] = conflicts(owner, person_id)
        assert conflict["detail"]["field"] == "detention.section"
        done = owner.post(f"/api/v1/exceptions/{conflict['id']}/resolve", json={
            "decision": "accept-source:council-a", "reason": "the tribunal papers say s2"})
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["decision"]) == (
            "resolved", "accept-source:council-a")

        record = owner.get(f"/api/v1/people/{person_id}").json()
        decision = (f"register owner {owner.token_id} resolving exception "  # type: ignore[attr-defined]
                    f"{conflict['id']}: accept-source:council-a")
        assert (record["entitlement"]["status"], record["entitlement"]["trigger_section"]) == (
            "none", None)
        assert [d["section"] for d in record["detentions"]] == ["02"]
        assert decision in record["explain"]["entitlement.status"]["rule"]
        [section_key] = [k for k in record["explain"] if k.endswith("].section")]
        why = record["explain"][section_key]
        assert why["rule"].startswith(decision)
        assert any(f"source-accepted from register (exception:{conflict['id']})" in cite
                   for cite in why["facts"])
        assert decisions_journalled(hub, person_id) == [
            ("source-accepted", f"exception:{conflict['id']}",
             owner.token_id)]  # type: ignore[attr-defined]
        # Partners hear of the status change, in the decision's transaction.
        [changes] = deliveries(hub, person_id)
        assert {"field": "entitlement.status", "old": "active", "new": "none"} in changes

        # Not raised again for the same facts, by the nightly sweep or a full reconcile.
        sweep(hub.engine, hub.clock, hub.policy)
        sweep(hub.engine, hub.clock, hub.policy, full=True)
        assert [(c["id"], c["status"]) for c in conflicts(owner, person_id)] == [
            (conflict["id"], "resolved")]
        assert owner.get(f"/api/v1/people/{person_id}").json()["entitlement"][
            "status"] == "none"
        assert len(deliveries(hub, person_id)) == 1

        # council-csv regrades its record to s37: 37 against 2 is a question nobody decided.
        apply(hub, RecordLegalStatusChanged(
            person=PersonRef(nhs_number=make_synthetic(61)),
            provenance=prov("council-csv", "61-regrade", date(2026, 3, 10)),
            event="section-change", section="37", date=date(2026, 3, 10)))
        sweep(hub.engine, hub.clock, hub.policy)
        [new] = [c for c in conflicts(owner, person_id) if c["status"] == "open"]
        assert {v["value"] for v in new["detail"]["values"]} == {"02", "37"}
        assert new["id"] != conflict["id"]


def test_accepting_a_councils_residence_moves_the_responsible_council(hub: Hub) -> None:
    for source, code in (("council-a", "E10000034"), ("council-b", "E10000011")):
        apply(hub, RecordOrdinaryResidenceChanged(
            person=ref(62), provenance=prov(source, f"62-or-{source}", ADMITTED),
            council_code=code, date=date(2025, 1, 1)))
    person_id = admit(hub, 62, ADMITTED)
    sweep(hub.engine, hub.clock, hub.policy)
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        assert owner.get(f"/api/v1/people/{person_id}").json()["entitlement"][
            "responsible_council"] == "E10000011"  # the last one told
        [conflict] = conflicts(owner, person_id)
        assert conflict["detail"]["field"] == "ordinary_residence.council_code"
        assert owner.post(f"/api/v1/exceptions/{conflict['id']}/resolve", json={
            "decision": "accept-source:council-a", "reason": "council tax records"}
        ).status_code == 200
        record = owner.get(f"/api/v1/people/{person_id}").json()
        assert record["entitlement"]["responsible_council"] == "E10000034"
        why = record["explain"]["entitlement.responsible_council"]["rule"]
        assert (f"resolving exception {conflict['id']}: accept-source:council-a "
                "(ordinary residence from council-a over council-b): E10000034 from "
                "2025-01-01") in why
        sweep(hub.engine, hub.clock, hub.policy, full=True)
        assert [c["status"] for c in conflicts(owner, person_id)] == ["resolved"]


def test_accept_source_on_a_conflict_no_source_value_settles_is_refused(hub: Hub) -> None:
    """Events told after the date of death: no source's word settles it, so accepting one
    would close the exception with nothing changed (what the audit found)."""
    person_id = admit(hub, 63, ADMITTED)
    apply(hub, RecordLeftHospital(
        person=PersonRef(nhs_number=make_synthetic(63), death_date=date(2026, 3, 20)),
        provenance=prov("council-a", "63-left", LEFT), date=LEFT))
    sweep(hub.engine, hub.clock, hub.policy)
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        [conflict] = [c for c in conflicts(owner, person_id)
                      if "later_events" in c["detail"]]
        refused = owner.post(f"/api/v1/exceptions/{conflict['id']}/resolve", json={
            "decision": "accept-source:council-a", "reason": "r"})
        assert refused.status_code == 422, refused.text
        assert "no source value" in refused.json()["message"]
        assert owner.get(f"/api/v1/exceptions/{conflict['id']}").json()["status"] == "open"
    assert decisions_journalled(hub, person_id) == []


def test_the_console_offers_accept_source_only_where_a_sources_value_settles_it(
        hub: Hub) -> None:
    """A council confirms s117 after an s2 stay the trust told: the sources disagree on
    eligibility, which no source's value settles (the API refuses accept-source there); the
    console had offered "accept council-a's value" all the same."""
    person_id = told_detention(hub, 64, "trust-a", "02")
    apply(hub, RecordS117Confirmed(person=PersonRef(nhs_number=make_synthetic(64)),
                                   provenance=prov("council-a", "64-confirmed", LEFT),
                                   start=LEFT))
    sweep(hub.engine, hub.clock, hub.policy)
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        [conflict] = conflicts(owner, person_id)
        assert conflict["detail"]["field"] == "entitlement.trigger_section"
        assert owner.post(f"/api/v1/exceptions/{conflict['id']}/resolve", json={
            "decision": "accept-source:council-a", "reason": "r"}).status_code == 422
    _, token = TokenStore(hub.engine).create(Role.REGISTER_OWNER)
    with TestClient(create_app(hub), base_url="https://hub.test",
                    follow_redirects=False) as client:
        guard = CSRF.search(client.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        assert client.post("/ui/login", data={"token": token,
                                               "csrf_token": guard}).status_code == 303
        page = client.get(f"/ui/exceptions/{conflict['id']}")
    assert page.status_code == 200 and "accept-source:" not in page.text
    assert 'value="resolved"' in page.text


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_the_consoles_resolve_form_applies_the_accepted_source(hub: Hub) -> None:
    """The console's world: the trust says s3 (pending), council-a says s2."""
    world = seed(hub, with_hl7=False)
    with TestClient(create_app(hub), base_url="https://hub.test",
                    follow_redirects=False) as client:
        guard = CSRF.search(client.get("/ui/login").text).group(1)  # type: ignore[union-attr]
        assert client.post("/ui/login", data={"token": world.tokens["register-owner"],
                                               "csrf_token": guard}).status_code == 303
        path = f"/ui/exceptions/{world.conflict_exception}"
        token = CSRF.search(client.get(path).text).group(1)  # type: ignore[union-attr]
        answer = client.post(f"{path}/resolve", data={
            "csrf_token": token, "decision": "accept-source:council-a",
            "reason": "the council's record is right"})
        assert answer.status_code == 303, answer.text
        # The person's page shows the record with the decision's fact in it.
        page = client.get(f"/ui/people/{world.conflict_person}")
        assert page.status_code == 200 and "accept-source:council-a" in page.text
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        record = owner.get(f"/api/v1/people/{world.conflict_person}").json()
    assert record["entitlement"]["status"] == "none"
    assert [d["section"] for d in record["detentions"]] == ["02"]
    assert decisions_journalled(hub, world.conflict_person) == [
        ("source-accepted", f"exception:{world.conflict_exception}",
         world.token_ids["register-owner"])]
