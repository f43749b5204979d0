"""The operations API on the real databases: sources, message store, replay, queues.

Messages enter the way they do in production, as HL7 v2 text through ``Hl7Receiver.handle``;
a worker's work is done here by ``drain``. Synthetic data only: 999-range NHS numbers with
valid check digits, invented names.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.inbound_mapper import make_mapper
from register_core.adapters.security import ROLES, Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import audit_log, inbox_messages
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.inbound import drain
from register_core.views import people_by_nhs_number, person_json
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from tests.e2e.test_mllp_inbound import adt

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS_A, NHS_B, NHS_C = make_synthetic(11), make_synthetic(12), make_synthetic(13)
TRUST_A: dict[str, Any] = {"source_id": "trust-a", "kind": "hl7v2-mllp",
                           "display_name": "Trust A EPR", "organisation_code": "RX1",
                           "hl7_sending_application": "EPR", "hl7_sending_facility": "RX1"}
COUNCIL: dict[str, Any] = {
    "source_id": "council-x", "kind": "council-poll", "display_name": "Council X",
    "organisation_code": "E10000034",
    "poll": {"url": "https://council-x.example/changes", "interval_seconds": 300,
             "bearer_token": "poll-secret-made-up-0001"}}


@dataclass
class Ops:
    client: TestClient
    hub: Hub
    clock: FixedClock
    tokens: dict[str, str]
    token_ids: dict[str, str]

    def auth(self, role: str = "integration-engineer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "integration-engineer", **params: Any) -> Any:
        return self.client.get(path, headers=self.auth(role), params=params)

    def receive(self, message: str) -> None:
        Hl7Receiver(self.hub.engine, self.hub.sources, self.clock,
                    self.hub.notify).handle(message.encode())

    def drain(self) -> None:
        drain(self.hub.engine, make_mapper(self.hub.sources), self.clock, self.hub.policy)

    def items(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/api/v1/messages", **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] >= len(body["items"])
        return body["items"]  # type: ignore[no-any-return]


@pytest.fixture
def ops(hub: Hub, clock: FixedClock) -> Iterator[Ops]:
    store = TokenStore(hub.engine, clock)
    tokens, token_ids = {}, {}
    for role in ROLES:
        source = "trust-a" if role == Role.SOURCE_SYSTEM else None
        token_ids[role], tokens[role] = store.create(role, source=source)
    with TestClient(create_app(hub)) as client:
        yield Ops(client, hub, clock, tokens, token_ids)


def _audit(hub: Hub) -> list[dict[str, Any]]:
    with hub.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
                .mappings()]


def _other_person(message: str, local_id: str, name: str) -> str:
    """``adt()`` always says RX1-000123 / Testperson^Alex: make it someone else."""
    return message.replace("RX1-000123", local_id).replace("Testperson^Alex", name)


# -- sources -------------------------------------------------------------------------------


def test_source_crud_round_trip(ops: Ops) -> None:
    created = ops.client.post("/api/v1/sources", json=TRUST_A, headers=ops.auth())
    assert created.status_code == 201, created.text
    assert created.json() | TRUST_A == created.json()
    assert created.json()["legal_status_location"]["segment"] == "ZLS"  # defaults filled in
    assert ops.get("/api/v1/sources/trust-a").json() == created.json()
    listing = ops.get("/api/v1/sources").json()
    assert listing["total"] == 1 and listing["items"] == [created.json()]

    changed = TRUST_A | {"display_name": "Trust A (new EPR)", "code_map": {"S3": "3"}}
    replaced = ops.client.put("/api/v1/sources/trust-a", json=changed, headers=ops.auth())
    assert replaced.status_code == 200
    assert replaced.json()["code_map"] == {"S3": "03"}
    assert ops.hub.sources.get("trust-a").display_name == "Trust A (new EPR)"  # type: ignore[union-attr]

    new = ops.client.put("/api/v1/sources/council-x", json=COUNCIL, headers=ops.auth())
    assert new.status_code == 201
    assert [s["source_id"] for s in ops.get("/api/v1/sources").json()["items"]] == [
        "council-x", "trust-a"]

    assert ops.client.delete("/api/v1/sources/trust-a", headers=ops.auth()).status_code == 204
    gone = ops.get("/api/v1/sources/trust-a")
    assert gone.status_code == 404 and gone.json()["field"] == "source_id"
    again = ops.client.delete("/api/v1/sources/trust-a", headers=ops.auth())
    assert again.status_code == 404


def test_posting_an_existing_id_is_409(ops: Ops) -> None:
    assert ops.client.post("/api/v1/sources", json=TRUST_A,
                           headers=ops.auth()).status_code == 201
    response = ops.client.post("/api/v1/sources", json=TRUST_A | {"display_name": "Other"},
                               headers=ops.auth())
    assert response.status_code == 409 and response.json()["error"] == "conflict"
    assert ops.hub.sources.get("trust-a").display_name == "Trust A EPR"  # type: ignore[union-attr]


@pytest.mark.parametrize("body, field", [
    (TRUST_A | {"kind": "carrier-pigeon"}, "kind"),
    (TRUST_A | {"code_map": {"S3": "Q7"}}, "code_map"),
    (TRUST_A | {"source_id": ""}, "source_id"),
    ({k: v for k, v in TRUST_A.items() if k != "source_id"}, "source_id"),
    (TRUST_A | {"legal_status_location": {"segment": "Z"}}, "legal_status_location.segment"),
    (COUNCIL | {"poll": {"url": "https://x.example", "interval_seconds": 0}},
     "poll.interval_seconds"),
    (TRUST_A | {"favourite_colour": "teal"}, "favourite_colour"),
    (TRUST_A | {"source_id": "unknown-sender"}, "source_id"),
    (TRUST_A | {"source_id": "x" * 65}, "source_id"),
])
def test_invalid_source_is_422_naming_the_field(ops: Ops, body: dict[str, Any],
                                                field: str) -> None:
    response = ops.client.post("/api/v1/sources", json=body, headers=ops.auth())
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert ops.get("/api/v1/sources").json()["total"] == 0


def test_a_source_without_display_name_is_shown_by_its_id(ops: Ops) -> None:
    bare = {"source_id": "council-z", "kind": "council-csv"}
    created = ops.client.post("/api/v1/sources", json=bare, headers=ops.auth()).json()
    assert created == ops.get("/api/v1/sources/council-z").json()
    assert created["display_name"] == "council-z" and created["enabled"] is True


def test_put_with_another_id_in_the_body_is_422(ops: Ops) -> None:
    response = ops.client.put("/api/v1/sources/trust-b", json=TRUST_A, headers=ops.auth())
    assert response.status_code == 422
    assert response.json()["field"] == "source_id"
    assert response.json()["rule"] == "id-matches-path"
    assert ops.hub.sources.get("trust-b") is None and ops.hub.sources.get("trust-a") is None


def test_poll_bearer_token_is_never_returned(ops: Ops) -> None:
    secret = COUNCIL["poll"]["bearer_token"]
    responses = [ops.client.post("/api/v1/sources", json=COUNCIL, headers=ops.auth()),
                 ops.get("/api/v1/sources/council-x"), ops.get("/api/v1/sources"),
                 ops.get("/api/v1/sources/council-x", role="auditor")]
    for response in responses:
        assert response.status_code in (200, 201)
        assert secret not in response.text and '"***"' in response.text
    stored = ops.hub.sources.get("council-x")
    assert stored is not None and stored.poll is not None
    assert stored.poll.bearer_token == secret

    # GET, edit, PUT back: the masked token keeps the stored one.
    edited = ops.get("/api/v1/sources/council-x").json() | {"display_name": "Council X (2)"}
    put = ops.client.put("/api/v1/sources/council-x", json=edited, headers=ops.auth())
    assert put.status_code == 200 and secret not in put.text
    assert ops.hub.sources.get("council-x").poll.bearer_token == secret  # type: ignore[union-attr]

    masked_new = COUNCIL | {"source_id": "council-y",
                            "poll": COUNCIL["poll"] | {"bearer_token": "***"}}
    refused = ops.client.post("/api/v1/sources", json=masked_new, headers=ops.auth())
    assert refused.status_code == 422 and refused.json()["field"] == "poll.bearer_token"


def test_source_changes_are_audited_without_a_person(ops: Ops) -> None:
    ops.client.post("/api/v1/sources", json=TRUST_A, headers=ops.auth())
    ops.client.put("/api/v1/sources/trust-a", json=TRUST_A, headers=ops.auth())
    ops.client.delete("/api/v1/sources/trust-a", headers=ops.auth())
    ops.client.delete("/api/v1/sources/trust-a", headers=ops.auth())  # 404: not audited
    ops.get("/api/v1/sources")  # configuration reads are not personal data
    rows = _audit(ops.hub)
    assert [(r["action"], r["resource"], r["resource_id"], r["person_id"], r["actor"])
            for r in rows] == [("write", "source", "trust-a", None,
                                ops.token_ids["integration-engineer"])] * 3
    assert [r["request"] for r in rows] == ["POST /api/v1/sources",
                                            "PUT /api/v1/sources/trust-a",
                                            "DELETE /api/v1/sources/trust-a"]


READS = ["/api/v1/sources", "/api/v1/sources/trust-a", "/api/v1/messages",
         "/api/v1/messages/{id}", "/api/v1/queues"]
WRITES = [("PUT", "/api/v1/sources/trust-a"), ("DELETE", "/api/v1/sources/trust-a"),
          ("POST", "/api/v1/sources"), ("POST", "/api/v1/messages/{id}/replay")]


@pytest.mark.parametrize("role", ROLES)
def test_who_may_call_the_operations_api(ops: Ops, role: str) -> None:
    ops.hub.sources.save(SourceDefinition.model_validate(TRUST_A), ops.clock.now())
    ops.receive(adt("A01", "ROLE1", zls="ZLS|XX|20260105"))
    [message] = ops.items()
    for path in READS:
        response = ops.get(path.format(id=message["id"]), role=role)
        expected = 200 if role in ("integration-engineer", "auditor") else 403
        assert response.status_code == expected, (role, path, response.text)
    for method, path in WRITES:
        response = ops.client.request(method, path.format(id=message["id"]), json=TRUST_A,
                                      headers=ops.auth(role))
        if role == "integration-engineer":
            assert response.status_code in (200, 201, 202, 204), (method, path,
                                                                  response.text)
        else:
            assert response.status_code == 403, (role, method, path)
            assert response.json()["error"] == "forbidden"
    for method, path in WRITES:  # and without a token at all
        assert ops.client.request(method, path.format(id=1)).status_code == 401


# -- message store -------------------------------------------------------------------------


@dataclass
class Stored:
    applied_a: int
    applied_b: int
    failed: int
    rejected: int
    council: int
    person_a: str
    person_b: str


@pytest.fixture
def stored(ops: Ops) -> Stored:
    return _fill(ops)


def _fill(ops: Ops) -> Stored:
    """Two applied admissions, one failed (unknown code XX), one rejected (unknown sender),
    one council event waiting; ten minutes apart from 09:00, drained at 09:10."""
    ops.hub.sources.save(SourceDefinition.model_validate(TRUST_A), ops.clock.now())
    start = ops.clock.now()
    ops.receive(adt("A01", "MSG-A1", nhs=NHS_A))
    ops.clock.at = start + timedelta(minutes=10)
    ops.receive(_other_person(adt("A01", "MSG-B1", nhs=NHS_B), "RX1-000456", "Madeup^Jordan"))
    ops.drain()
    ops.clock.at = start + timedelta(minutes=20)
    ops.receive(_other_person(adt("A01", "MSG-BAD", zls="ZLS|XX|20260105", nhs=NHS_C),
                              "RX1-000789", "Invented^Casey"))
    ops.clock.at = start + timedelta(minutes=30)
    ops.receive(adt("A01", "S1").replace("|EPR|RX1|", "|OTHER|ZZZ|"))
    ops.clock.at = start + timedelta(minutes=40)
    ops.hub.inbox.store(source="council-x", message_id="evt-0001", channel="council-rest",
                        message_type="s117.confirmed", payload='{"event_id": "evt-0001"}',
                        received_at=ops.clock.now())
    by_id = {m["message_id"]: m for m in ops.items(limit=100)}
    with ops.hub.engine.connect() as conn:
        [person_a] = people_by_nhs_number(conn, NHS_A)
        [person_b] = people_by_nhs_number(conn, NHS_B)
    rejected = next(m for m in by_id.values() if m["status"] == "rejected")
    return Stored(by_id["MSG-A1"]["id"], by_id["MSG-B1"]["id"], by_id["MSG-BAD"]["id"],
                  rejected["id"], by_id["evt-0001"]["id"], person_a, person_b)


def _ids(ops: Ops, **params: Any) -> list[int]:
    return [m["id"] for m in ops.items(**params)]


def test_messages_list_newest_first_with_the_summary_fields(ops: Ops, stored: Stored) -> None:
    response = ops.get("/api/v1/messages")
    body = response.json()
    assert body["total"] == 5
    assert [m["id"] for m in body["items"]] == [stored.council, stored.rejected,
                                                stored.failed, stored.applied_b,
                                                stored.applied_a]
    first = body["items"][-1]
    assert set(first) == {"id", "source", "message_id", "channel", "message_type", "status",
                          "received_at", "processed_at", "attempts", "resent", "error",
                          "person_ids"}
    assert (first["source"], first["message_id"], first["channel"], first["message_type"],
            first["status"], first["attempts"], first["person_ids"]) == (
        "trust-a", "MSG-A1", "hl7v2-mllp", "ADT^A01", "applied", 1, [stored.person_a])
    assert "payload" not in response.text and NHS_A not in response.text
    failed = next(m for m in body["items"] if m["id"] == stored.failed)
    # Intake stores MappingError.as_dict() ("error"); a worker stores "kind" and "code".
    assert failed["error"]["code"] == "unknown-code" and failed["error"]["location"]
    assert failed["person_ids"] == []


def test_listing_messages_audits_those_whose_error_is_shown(ops: Ops, stored: Stored) -> None:
    """An error may quote a value of the message (a birth date, a code typed into the wrong
    field): listing it is a read of that message, as its detail is."""
    before = len(_audit(ops.hub))
    assert ops.get("/api/v1/messages", role="auditor").status_code == 200
    rows = _audit(ops.hub)[before:]
    assert sorted((r["action"], r["resource"], r["resource_id"]) for r in rows) == sorted(
        ("read", "inbound-message", str(message_id))
        for message_id in (stored.failed, stored.rejected))


def test_messages_filter_by_each_field(ops: Ops, stored: Stored) -> None:
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert _ids(ops, source="trust-a") == [stored.failed, stored.applied_b, stored.applied_a]
    assert _ids(ops, source="unknown-sender") == [stored.rejected]
    assert _ids(ops, status="applied") == [stored.applied_b, stored.applied_a]
    assert _ids(ops, status="failed") == [stored.failed]
    assert _ids(ops, status="rejected") == [stored.rejected]
    assert _ids(ops, status="received") == [stored.council]
    assert _ids(ops, channel="council-rest") == [stored.council]
    assert _ids(ops, since=(start + timedelta(minutes=20)).isoformat(),
                until=(start + timedelta(minutes=40)).isoformat()) == [stored.rejected,
                                                                        stored.failed]
    assert _ids(ops, until="2026-06-01T10:10:00+01:00") == [stored.applied_a]  # exclusive
    assert _ids(ops, control_id="MSG-B1") == [stored.applied_b]
    assert _ids(ops, person_id=stored.person_a) == [stored.applied_a]
    assert _ids(ops, person_id=stored.person_b) == [stored.applied_b]
    assert _ids(ops, person_id="00000000-0000-0000-0000-000000000000") == []
    assert _ids(ops, source="trust-a", status="applied", person_id=stored.person_b) == [
        stored.applied_b]
    page = ops.get("/api/v1/messages", limit=2, offset=1).json()
    assert page["total"] == 5 and [m["id"] for m in page["items"]] == [stored.rejected,
                                                                       stored.failed]


@pytest.mark.parametrize("params, field", [({"status": "lost"}, "status"),
                                           ({"since": "last week"}, "since"),
                                           ({"limit": 0}, "limit"),
                                           ({"since": "2026-06-02T00:00:00Z",
                                             "until": "2026-06-01T00:00:00Z"}, "until")])
def test_bad_message_filters_are_422(ops: Ops, params: dict[str, Any], field: str) -> None:
    response = ops.get("/api/v1/messages", **params)
    assert response.status_code == 422 and response.json()["field"] == field


def test_message_detail_has_the_payload_and_the_read_is_audited(ops: Ops,
                                                                stored: Stored) -> None:
    before = len(_audit(ops.hub))  # the fixture's listing audited its failed and rejected
    response = ops.get(f"/api/v1/messages/{stored.applied_a}", role="auditor")
    assert response.status_code == 200
    message = response.json()
    assert message["payload"].startswith("MSH|^~\\&|EPR|RX1|") and NHS_A in message["payload"]
    assert "|MSA|AA|MSG-A1" in message["ack"].replace("\r", "|")
    assert message["person_ids"] == [stored.person_a] and message["status"] == "applied"
    failed = ops.get(f"/api/v1/messages/{stored.failed}").json()
    assert "ZLS|XX" in failed["payload"] and "MSA|AE" in failed["ack"]
    assert [(r["action"], r["resource"], r["resource_id"], r["person_id"], r["role"])
            for r in _audit(ops.hub)[before:]] == [
        ("read", "inbound-message", str(stored.applied_a), stored.person_a, "auditor"),
        ("read", "inbound-message", str(stored.failed), None, "integration-engineer")]
    assert ops.get("/api/v1/messages/999999").status_code == 404
    assert len(_audit(ops.hub)) == before + 2


def test_reading_a_message_that_linked_no_one_is_audited_against_the_people_it_names(
        ops: Ops, stored: Stored) -> None:
    """A message not (yet) applied has no person_ids, but its payload still names a patient:
    the read is audited against the registered people its identifiers name (by NHS number
    or the source's own id), so the subject's access history shows it; one naming no one
    registered keeps a row without a person. Replaying it is audited the same way."""
    ops.receive(adt("A08", "MSG-A8", nhs=NHS_A))  # person A's update, waiting for a worker
    ops.receive(_other_person(adt("A01", "MSG-L1", nhs=""), "RX1-000123", "Testperson^Alex"))
    ops.receive(_other_person(adt("A01", "MSG-N1", nhs=make_synthetic(14)), "RX1-000999",
                              "Nobody^Known"))
    by_id = {m["message_id"]: m for m in ops.items(limit=100)}
    waiting, by_local_id, unknown = (by_id[c]["id"] for c in ("MSG-A8", "MSG-L1", "MSG-N1"))
    assert by_id["MSG-A8"]["person_ids"] == [] and by_id["MSG-L1"]["person_ids"] == []
    before = len(_audit(ops.hub))
    for message_id in (waiting, by_local_id, unknown):
        assert ops.get(f"/api/v1/messages/{message_id}", role="auditor").status_code == 200
    assert [(r["action"], r["resource_id"], r["person_id"])
            for r in _audit(ops.hub)[before:]] == [
        ("read", str(waiting), stored.person_a), ("read", str(by_local_id), stored.person_a),
        ("read", str(unknown), None)]

    before = len(_audit(ops.hub))
    assert ops.client.post(f"/api/v1/messages/{waiting}/replay",
                           headers=ops.auth()).status_code == 202
    assert [(r["action"], r["resource_id"], r["person_id"])
            for r in _audit(ops.hub)[before:]] == [("write", str(waiting), stored.person_a)]


def test_replay_after_fixing_the_code_map_applies_the_detention(ops: Ops,
                                                                stored: Stored) -> None:
    path = f"/api/v1/messages/{stored.failed}/replay"
    fixed = TRUST_A | {"code_map": {"XX": "03"}}
    assert ops.client.put("/api/v1/sources/trust-a", json=fixed,
                          headers=ops.auth()).status_code == 200
    response = ops.client.post(path, headers=ops.auth())
    assert response.status_code == 202
    assert response.json() == {"id": stored.failed, "status": "received"}
    assert ops.get(f"/api/v1/messages/{stored.failed}").json()["error"] is None
    ops.drain()
    message = ops.get(f"/api/v1/messages/{stored.failed}").json()
    assert message["status"] == "applied" and message["attempts"] == 1
    with ops.hub.engine.connect() as conn:
        record = person_json(conn, message["person_ids"][0], ops.clock.today())
    assert record is not None and record["nhs_number"] == NHS_C
    assert [d["section"] for d in record["detentions"]] == ["03"]
    writes = [r for r in _audit(ops.hub) if r["action"] == "write"]
    assert [(w["resource"], w["resource_id"]) for w in writes] == [
        ("source", "trust-a"), ("inbound-message", str(stored.failed))]


def test_replay_refuses_rejected_and_unforced_applied(ops: Ops, stored: Stored) -> None:
    rejected = ops.client.post(f"/api/v1/messages/{stored.rejected}/replay",
                               headers=ops.auth())
    assert rejected.status_code == 409 and "rejected" in rejected.json()["message"]
    applied = ops.client.post(f"/api/v1/messages/{stored.applied_a}/replay",
                              headers=ops.auth())
    assert applied.status_code == 409 and "force=true" in applied.json()["message"]
    assert ops.client.post("/api/v1/messages/999999/replay",
                           headers=ops.auth()).status_code == 404
    assert {m["id"]: m["status"] for m in ops.items()}[stored.applied_a] == "applied"

    forced = ops.client.post(f"/api/v1/messages/{stored.applied_a}/replay",
                             params={"force": "true"}, headers=ops.auth())
    assert forced.status_code == 202
    assert _ids(ops, status="received") == [stored.council, stored.applied_a]


def test_replay_is_409_when_a_worker_moved_the_message_after_it_was_read(
        ops: Ops, stored: Stored, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compare-and-set in ``register_core.services.replay``: read as ``failed``, applied
    by a worker before the requeue: refused, not applied twice, and nothing audited."""
    requeue = ops.hub.inbox.requeue

    def worker_first(seen: dict[int, str]) -> list[int]:
        with ops.hub.engine.begin() as conn:
            conn.execute(update(inbox_messages).where(inbox_messages.c.id == stored.failed)
                         .values(status="applied", error=None))
        return requeue(seen)

    monkeypatch.setattr(ops.hub.inbox, "requeue", worker_first)
    response = ops.client.post(f"/api/v1/messages/{stored.failed}/replay", headers=ops.auth())
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict", "message": "the message changed while it was being replayed "
        "(another replay, or a worker applying it): look at it again"}
    assert {m["id"]: m["status"] for m in ops.items()}[stored.failed] == "applied"
    assert not [r for r in _audit(ops.hub) if r["action"] == "write"]


def test_queues_count_per_source_and_channel(ops: Ops) -> None:
    empty = ops.get("/api/v1/queues").json()["inbound"]
    assert empty == {"queues": [], "totals": {"depth": 0, "failed": 0, "rejected": 0,
                                              "applied_last_hour": 0,
                                              "oldest_received_age_seconds": None}}
    _fill(ops)
    ops.clock.at = datetime(2026, 6, 1, 9, 50, tzinfo=UTC)
    body = ops.get("/api/v1/queues").json()
    queues = {(q["source"], q["channel"]): q for q in body["inbound"]["queues"]}
    assert set(queues) == {("council-x", "council-rest"), ("trust-a", "hl7v2-mllp"),
                           ("unknown-sender", "hl7v2-mllp")}
    trust = queues[("trust-a", "hl7v2-mllp")]
    assert (trust["depth"], trust["failed"], trust["rejected"],
            trust["applied_last_hour"], trust["oldest_received_age_seconds"]) == (
        0, 1, 0, 2, None)
    council = queues[("council-x", "council-rest")]
    assert (council["depth"], council["oldest_received_age_seconds"]) == (1, 600.0)
    assert queues[("unknown-sender", "hl7v2-mllp")]["rejected"] == 1
    assert body["inbound"]["totals"] == {"depth": 1, "failed": 1, "rejected": 1,
                                         "applied_last_hour": 2,
                                         "oldest_received_age_seconds": 600.0}
    assert body["outbound"] == {"queues": []}

    ops.clock.at = datetime(2026, 6, 1, 11, 0, tzinfo=UTC)
    later = ops.get("/api/v1/queues", role="auditor").json()["inbound"]["totals"]
    assert later["applied_last_hour"] == 0 and later["oldest_received_age_seconds"] == 4800.0


def test_openapi_documents_the_operations_routes(ops: Ops) -> None:
    schema = ops.get("/openapi.json").json()
    assert {"/api/v1/sources", "/api/v1/sources/{source_id}", "/api/v1/messages",
            "/api/v1/messages/{message_id}", "/api/v1/messages/{message_id}/replay",
            "/api/v1/queues"} <= schema["paths"].keys()
    replay = schema["paths"]["/api/v1/messages/{message_id}/replay"]["post"]
    assert "force=true" in replay["description"] and "409" in replay["responses"]
