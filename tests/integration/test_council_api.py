"""Council REST events over the HTTP API on the real databases: stored before the answer,
every event type reaching the register after a drain, duplicates, invalid events, who may post,
and the schema published in OpenAPI. Synthetic data only (999-range NHS numbers)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from connectors.inbound_mapper import make_mapper
from mapping.council import validate_council_event
from mapping.council_models import EVENT_TYPES
from register_core import views
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import audit_log, inbox_messages
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS_A, NHS_B, NHS_C = (make_synthetic(n) for n in (11, 12, 13))
URL = "/api/v1/sources/{source}/events"


def event(event_id: str, kind: str, nhs: str, data: dict[str, Any],
          **person: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "occurred_at": "2026-03-01T09:30:00Z",
            "person": {"nhs_number": nhs, "local_id": f"LAS-{nhs[-4:]}",
                       "family_name": "Testperson", "given_name": "Alex",
                       "birth_date": "1980-01-01", **person},
            "data": data}


@dataclass
class Council:
    client: TestClient
    hub: Hub
    tokens: dict[str, str]  # name → plaintext

    def post(self, body: Any, *, token: str = "council-w", source: str = "council-w",
             raw: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        if raw is not None:
            return self.client.post(URL.format(source=source), content=raw,
                                    headers=headers | {"Content-Type": "application/json"})
        return self.client.post(URL.format(source=source), json=body, headers=headers)

    def drain(self) -> int:
        hub = self.hub
        return drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)

    def person(self, nhs: str) -> dict[str, Any]:
        with self.hub.engine.connect() as conn:
            [person_id] = views.people_by_nhs_number(conn, nhs)
            record = views.person_json(conn, person_id, self.hub.clock.today(),
                                       self.hub.policy)
        assert record is not None
        return record

    def inbox(self) -> list[Any]:
        with self.hub.engine.connect() as conn:
            return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))


@pytest.fixture
def council(hub: Hub) -> Iterator[Council]:
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="council-w", kind="council-rest",
                                      code_map={"S3": "03"}), now)
    hub.sources.save(SourceDefinition(source_id="council-x", kind="council-rest"), now)
    hub.sources.save(SourceDefinition(source_id="council-csv", kind="council-csv"), now)
    store = TokenStore(hub.engine, hub.clock)
    tokens = {name: store.create("source-system", source=name)[1]
              for name in ("council-w", "council-x", "council-csv", "council-nowhere")}
    tokens["register-owner"] = store.create(Role.REGISTER_OWNER)[1]
    tokens["integration-engineer"] = store.create(Role.INTEGRATION_ENGINEER)[1]
    tokens[""] = ""
    with TestClient(create_app(hub)) as client:
        yield Council(client, hub, tokens)


def test_every_event_type_is_accepted_and_reaches_the_register(council: Council) -> None:
    person_a = [
        # Ordinary residence dated before the detention: that council is responsible.
        event("w-1", "ordinary-residence.changed", NHS_A,
              {"council_code": "E10000034", "date": "2020-01-01"}),
        event("w-2", "detention.notified", NHS_A,
              {"section": "S3", "start": "2026-01-05", "end": "2026-03-01"}),
        event("w-3", "aftercare-plan.agreed", NHS_A, {"date": "2026-03-05"}),
        event("w-4", "named-practitioner.set", NHS_A,
              {"name": "Sam Carer", "role": "Care coordinator", "date": "2026-03-02"}),
        event("w-5", "review.completed", NHS_A, {"date": "2026-05-01", "kind": "scheduled"}),
        event("w-6", "service.charged", NHS_A, {"service": "Supported living",
                                                "under_s117": False, "amount": "125.50",
                                                "date": "2026-04-01"}),
    ]
    person_b = [
        event("w-7", "s117.confirmed", NHS_B, {"start": "2026-02-01"}),
        # The joint review an ending needs (joint policy 16.1).
        event("w-9", "review.completed", NHS_B, {"date": "2026-05-15", "kind": "unscheduled",
                                                 "joint": True}),
        event("w-8", "s117.ended", NHS_B, {
            "date": "2026-05-20", "reason": "Needs met after joint review",
            "council_signoff": {"by": "AMHP lead", "date": "2026-05-20"},
            "icb_signoff": {"by": "ICB S117 lead", "date": "2026-05-20"}}),
    ]
    sent = [*person_a, *person_b]
    assert {e["type"] for e in sent} == set(EVENT_TYPES)
    for body in sent:
        response = council.post(body)
        assert response.status_code == 202, response.text
        [accepted] = response.json()["accepted"]
        assert accepted["event_id"] == body["event_id"] and accepted["duplicate"] is False
        assert isinstance(accepted["message_id"], int)

    rows = council.inbox()  # stored before the answer, one row per event
    assert [(r.message_id, r.channel, r.status) for r in rows] == [
        (e["event_id"], "council-rest", "received") for e in sent]
    assert json.loads(rows[1].payload) == person_a[1]

    assert council.drain() == len(sent)
    assert {r.status for r in council.inbox()} == {"applied"}
    a = council.person(NHS_A)["entitlement"]
    assert (a["status"], a["start"], a["trigger_section"]) == ("active", "2026-03-01", "03")
    assert a["responsible_council"] == "E10000034"
    assert a["named_practitioner"] == "Sam Carer"
    assert (a["aftercare_plan_date"], a["last_review"]) == ("2026-03-05", "2026-05-01")
    assert "service-charged" in {p["kind"] for p in council.person(NHS_A)["provenance"]}
    b = council.person(NHS_B)["entitlement"]
    assert b["status"] == "ended" and b["ended"]["date"] == "2026-05-20"
    assert b["ended"]["icb_signoff"] == {"by": "ICB S117 lead", "date": "2026-05-20"}


def test_an_array_of_events_is_accepted_in_order(council: Council) -> None:
    body = [event("arr-1", "detention.notified", NHS_C, {"section": "03",
                                                         "start": "2026-01-05"}),
            event("arr-2", "s117.confirmed", NHS_A, {"start": "2026-02-01"})]
    response = council.post(body)
    assert response.status_code == 202
    accepted = response.json()["accepted"]
    assert [a["event_id"] for a in accepted] == ["arr-1", "arr-2"]
    council.drain()
    assert council.person(NHS_C)["entitlement"]["status"] == "pending"
    assert council.person(NHS_A)["entitlement"]["status"] == "active"


def test_a_duplicate_is_accepted_again_and_applied_once(council: Council) -> None:
    body = event("dup-1", "detention.notified", NHS_A, {"section": "03", "start": "2026-01-05",
                                                       "end": "2026-03-01"})
    first = council.post(body).json()["accepted"][0]
    council.drain()
    second = council.post(body)
    assert second.status_code == 202
    again = second.json()["accepted"][0]
    assert again == {"event_id": "dup-1", "message_id": first["message_id"], "duplicate": True}
    assert council.drain() == 0
    [row] = council.inbox()
    assert (row.status, row.resent) == ("applied", 1)
    kinds = [p["kind"] for p in council.person(NHS_A)["provenance"]]
    assert kinds.count("detention-started") == 1


@pytest.mark.parametrize("change, code, location", [
    (lambda e: e["data"].update(start="01/03/2026"), "invalid-value", "data.start"),
    (lambda e: e["person"].update(nhs_number="9990000019"), "invalid-value",
     "person.nhs_number"),
    (lambda e: e["data"].pop("start"), "missing-field", "data.start"),
    (lambda e: e.update(type="relocated"), "unsupported-event", "type"),
    (lambda e: e["data"].update(section="XX"), "unknown-code", "data.section"),
])
def test_an_invalid_event_is_stored_failed_and_answered_422(
        council: Council, change: Any, code: str, location: str) -> None:
    body = event("bad-1", "detention.notified", NHS_A, {"section": "03", "start": "2026-01-05"})
    change(body)
    raw = json.dumps(body)
    response = council.post(None, raw=raw)
    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "invalid-event" and answer["event_id"] == "bad-1"
    assert (answer["code"], answer["location"]) == (code, location)
    assert answer["message"] and answer["duplicate"] is False
    [row] = council.inbox()
    assert (row.id, row.status, row.payload) == (answer["message_id"], "failed", raw)
    assert row.error["code"] == code and row.error["location"] == location

    repeat = council.post(None, raw=raw)  # the same answer again, marked duplicate
    assert repeat.status_code == 422
    assert repeat.json() == answer | {"duplicate": True}
    assert council.drain() == 0


def test_an_array_with_an_invalid_event_lists_each_outcome(council: Council) -> None:
    good = event("mix-1", "s117.confirmed", NHS_B, {"start": "2026-02-01"})
    bad = event("mix-2", "s117.confirmed", NHS_B, {"start": "2026-02-31"})
    response = council.post([good, bad])
    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["accepted"], body["invalid"]) == ("invalid-events", 1, 1)
    first, second = body["results"]
    assert (first["index"], first["status"], first["event_id"]) == (0, "accepted", "mix-1")
    assert (second["status"], second["code"], second["location"]) == (
        "invalid", "invalid-value", "data.start")
    assert [r.status for r in council.inbox()] == ["received", "failed"]
    council.drain()
    assert council.person(NHS_B)["entitlement"]["status"] == "active"


def test_a_body_that_is_not_json_is_kept_as_rejected(council: Council) -> None:
    response = council.post(None, raw='{"event_id": "broken", ')
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["event_id"]) == ("unparseable", None)
    [row] = council.inbox()
    assert (row.status, row.payload) == ("rejected", '{"event_id": "broken", ')
    empty = council.post([])
    assert empty.status_code == 422 and empty.json()["code"] == "missing-field"


@pytest.mark.parametrize("token, source, status", [
    ("council-x", "council-w", 403),  # bound to another source
    ("register-owner", "council-w", 403),  # wrong role
    ("integration-engineer", "council-w", 403),
    ("", "council-w", 401),  # no token
    ("council-nowhere", "council-nowhere", 404),  # no such source
    ("council-csv", "council-csv", 404),  # a source, but not council-rest
])
def test_only_a_token_bound_to_the_council_rest_source_may_post(
        council: Council, token: str, source: str, status: int) -> None:
    body = event("auth-1", "s117.confirmed", NHS_A, {"start": "2026-02-01"})
    response = council.post(body, token=token, source=source)
    assert response.status_code == status
    assert response.json()["error"] in ("forbidden", "not-found", "unauthorised")
    assert council.inbox() == []


def test_each_stored_event_is_audited_without_personal_data(council: Council) -> None:
    body = [event("aud-1", "s117.confirmed", NHS_A, {"start": "2026-02-01"}),
            event("aud-2", "s117.confirmed", NHS_B, {"start": "2026-02-01"})]
    accepted = council.post(body).json()["accepted"]
    with council.hub.engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
    assert [(r.action, r.resource, r.resource_id, r.role) for r in rows] == [
        ("write", "inbound-message", str(a["message_id"]), "source-system") for a in accepted]
    assert rows[0].request == "POST /api/v1/sources/council-w/events"
    assert NHS_A not in str([tuple(r) for r in rows])


def test_openapi_publishes_the_event_schema_with_an_example_of_every_type(
        council: Council) -> None:
    headers = {"Authorization": f"Bearer {council.tokens['council-w']}"}
    schema = council.client.get("/openapi.json", headers=headers).json()
    operation = schema["paths"]["/api/v1/sources/{source}/events"]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    single, array = content["schema"]["oneOf"]
    assert array["type"] == "array" and array["items"] == single
    branches = {b["properties"]["type"]["const"]: b for b in single["oneOf"]}
    assert set(branches) == set(EVENT_TYPES)
    detention = branches["detention.notified"]
    assert {"event_id", "type", "occurred_at", "person", "data"} <= set(detention["required"])
    assert {"section", "start", "end"} <= detention["properties"]["data"]["properties"].keys()
    assert "$ref" not in json.dumps(single)  # stands alone
    examples = content["examples"]
    assert set(EVENT_TYPES) <= examples.keys()
    for kind in EVENT_TYPES:
        assert validate_council_event(examples[kind]["value"]).type == kind
    assert isinstance(examples["array"]["value"], list)
    assert {"202", "401", "403", "404", "422"} <= operation["responses"].keys()
    models = schema["components"]["schemas"]
    assert {"EventsAccepted", "InvalidEvent", "EventResults"} <= models.keys()
    assert "/api/v1/sources/{source}/csv" in schema["paths"]


def test_received_at_is_the_hub_clock(council: Council) -> None:
    council.post(event("t-1", "s117.confirmed", NHS_A, {"start": "2026-02-01"}))
    [row] = council.inbox()
    received = row.received_at
    assert isinstance(received, datetime)
    assert received.replace(tzinfo=None) == council.hub.clock.now().replace(tzinfo=None)


def test_an_ending_signed_for_another_council_does_not_end_it(council: Council) -> None:
    """Joint policy 16.1, 17.1: the ending is the responsible council's decision with the
    NHS; a council case system signs for its own council (its source's organisation code)."""
    now = council.hub.clock.now()
    for source_id, gss in (("council-resp", "E10000034"), ("council-other", "E06000019")):
        council.hub.sources.save(SourceDefinition(source_id=source_id, kind="council-rest",
                                                  organisation_code=gss), now)
        council.tokens[source_id] = TokenStore(council.hub.engine, council.hub.clock).create(
            "source-system", source=source_id)[1]
    story = [
        event("r-1", "ordinary-residence.changed", NHS_C,
              {"council_code": "E10000034", "date": "2020-01-01"}),
        event("r-2", "detention.notified", NHS_C, {"section": "03", "start": "2026-01-05",
                                                   "end": "2026-03-01"}),
        event("r-3", "review.completed", NHS_C, {"date": "2026-05-15", "kind": "unscheduled",
                                                 "joint": True}),
    ]
    ending = {"date": "2026-05-20", "reason": "Needs met after joint review",
              "council_signoff": {"by": "AMHP lead", "date": "2026-05-20"},
              "icb_signoff": {"by": "ICB S117 lead", "date": "2026-05-20"}}
    for body in story:
        assert council.post(body, token="council-resp", source="council-resp"
                            ).status_code == 202
    response = council.post(event("o-1", "s117.ended", NHS_C, ending),
                            token="council-other", source="council-other")
    assert response.status_code == 202, response.text
    council.drain()
    record = council.person(NHS_C)
    assert record["entitlement"]["status"] == "active"
    assert record["entitlement"]["responsible_council"] == "E10000034"
    assert "one-sided-ending" in {e["kind"] for e in record["open_exceptions"]}

    assert council.post(event("r-4", "s117.ended", NHS_C, ending), token="council-resp",
                        source="council-resp").status_code == 202
    council.drain()
    assert council.person(NHS_C)["entitlement"]["status"] == "ended"
