"""Who may call what (architecture section 6), the audit trail, and how tokens are kept."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, select

from register_core.adapters.security import ROLES, Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import api_tokens, audit_log
from register_core.domain.commands import PersonRef, Provenance, RecordDetentionStarted
from register_core.domain.errors import InvalidValue, NotFound
from register_core.domain.nhs_number import make_synthetic
from register_core.services.handlers import apply_command
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS = make_synthetic(7)
FAMILY, GIVEN = "Imaginary", "Quill"

READERS = {"register-owner", "auditor"}
ANYONE = set(ROLES)
# (path, roles allowed). {person_id} and {nhs} are filled in per test.
ENDPOINTS: list[tuple[str, set[str]]] = [
    ("/readyz", ANYONE),
    ("/openapi.json", ANYONE),
    ("/api/v1/people?nhs_number={nhs}", READERS),
    ("/api/v1/people", READERS),
    ("/api/v1/people/{person_id}", READERS),
    ("/api/v1/entitlements", READERS),
    ("/api/v1/entitlements?status=pending&overdue=false", READERS),
    ("/api/v1/audit", {"auditor"}),
]
CALLERS = [*ROLES, "no-token", "bad-token", "revoked-token", "not-bearer"]


@dataclass
class World:
    client: TestClient
    person_id: str
    tokens: dict[str, str]  # role → plaintext
    token_ids: dict[str, str]  # role → token id

    def headers(self, caller: str, purpose: str | None = None) -> dict[str, str]:
        headers = {"X-Purpose-Of-Use": purpose} if purpose else {}
        if caller == "no-token":
            return headers
        if caller == "bad-token":
            return headers | {"Authorization": "Bearer s117_not-a-real-token"}
        if caller == "not-bearer":
            return headers | {"Authorization": f"Basic {self.tokens['auditor']}"}
        return headers | {"Authorization": f"Bearer {self.tokens[caller]}"}

    def path(self, template: str) -> str:
        return template.format(person_id=self.person_id, nhs=NHS)


@pytest.fixture
def world(hub: Hub) -> Iterator[World]:
    with hub.uow() as uow:
        person_id = apply_command(RecordDetentionStarted(
            person=PersonRef(nhs_number=NHS, local_id="RX1-77", family_name=FAMILY,
                             given_name=GIVEN, birth_date=date(1990, 7, 7)),
            provenance=Provenance(source="trust-a", source_ref="adm-77",
                                  received_at=hub.clock.now()),
            section="03", start=date(2026, 5, 1), episode_ref="V77"), uow, hub.clock).person_id
    store = TokenStore(hub.engine, hub.clock)
    tokens, token_ids = {}, {}
    for role in ROLES:
        source = "trust-a" if role == Role.SOURCE_SYSTEM else None
        token_ids[role], tokens[role] = store.create(role, source=source, label=f"test {role}")
    revoked_id, tokens["revoked-token"] = store.create("register-owner", label="leaver")
    store.revoke(revoked_id)
    with TestClient(create_app(hub)) as client:
        yield World(client, person_id, tokens, token_ids)


def _audit_rows(hub: Hub) -> list[dict[str, object]]:
    with hub.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
                .mappings()]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("template, allowed", ENDPOINTS)
def test_authorisation_matrix(world: World, template: str, allowed: set[str],
                              caller: str) -> None:
    response = world.client.get(world.path(template), headers=world.headers(caller))
    if caller in ROLES:
        expected = 200 if caller in allowed else 403
    else:
        expected = 401
    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorised" and response.json()["message"]
    if expected == 403:
        assert response.json()["error"] == "forbidden" and response.json()["message"]


# -- every operation in the OpenAPI schema × every caller ------------------------------------

ENGINEER, OWNER, AUDITOR, SOURCE = ("integration-engineer", "register-owner", "auditor",
                                    "source-system")
OPS_READERS = {ENGINEER, AUDITOR}
PUBLIC: set[str] = set()  # marker: no token needed at all
# The expected roles of every operation (architecture section 6): register owners own the
# register, exceptions, disputes and reports; integration engineers the queues, messages,
# sources, subscriptions and deliveries; auditors read both; source systems only submit.
# A route added without a row here fails test_every_operation_is_in_the_role_table.
OPERATION_ROLES: dict[tuple[str, str], set[str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/api/v1/people"): READERS,
    ("GET", "/api/v1/people/{person_id}"): READERS,
    ("POST", "/api/v1/people/{person_id}/unmerge"): {OWNER},
    ("GET", "/api/v1/entitlements"): READERS,
    ("GET", "/api/v1/audit"): {AUDITOR},
    ("GET", "/fhir/r4/metadata"): ANYONE,
    ("POST", "/fhir/r4"): {SOURCE},
    ("POST", "/fhir/r4/{resource_type}"): {SOURCE},
    ("PUT", "/fhir/r4/{resource_type}/{resource_id}"): {SOURCE},
    ("GET", "/fhir/r4/EpisodeOfCare"): READERS,
    ("GET", "/fhir/r4/EpisodeOfCare/{resource_id}"): READERS,
    ("POST", "/api/v1/sources/{source}/events"): {SOURCE},
    ("POST", "/api/v1/sources/{source}/csv"): {SOURCE},
    ("GET", "/api/v1/sources"): OPS_READERS,
    ("POST", "/api/v1/sources"): {ENGINEER},
    ("GET", "/api/v1/sources/{source_id}"): OPS_READERS,
    ("PUT", "/api/v1/sources/{source_id}"): {ENGINEER},
    ("DELETE", "/api/v1/sources/{source_id}"): {ENGINEER},
    ("GET", "/api/v1/messages"): OPS_READERS,
    ("GET", "/api/v1/messages/{message_id}"): OPS_READERS,
    ("GET", "/api/v1/messages/{message_id}/raw"): OPS_READERS,
    ("POST", "/api/v1/messages/{message_id}/replay"): {ENGINEER},
    ("GET", "/api/v1/queues"): OPS_READERS,
    ("GET", "/api/v1/exceptions"): READERS,
    ("GET", "/api/v1/exceptions/{exception_id}"): READERS,
    ("POST", "/api/v1/exceptions/{exception_id}/assign"): {OWNER},
    ("POST", "/api/v1/exceptions/{exception_id}/resolve"): {OWNER},
    ("POST", "/api/v1/exceptions/{exception_id}/dismiss"): {OWNER},
    ("POST", "/api/v1/exceptions/{exception_id}/reopen"): {OWNER},
    ("GET", "/api/v1/disputes"): READERS,
    ("POST", "/api/v1/disputes"): {OWNER},
    ("GET", "/api/v1/disputes/{dispute_id}"): READERS,
    ("POST", "/api/v1/disputes/{dispute_id}/escalate"): {OWNER},
    ("POST", "/api/v1/disputes/{dispute_id}/resolve"): {OWNER},
    ("GET", "/api/v1/subscriptions"): OPS_READERS,
    ("POST", "/api/v1/subscriptions"): {ENGINEER},
    ("GET", "/api/v1/subscriptions/{subscription_id}"): OPS_READERS,
    ("PUT", "/api/v1/subscriptions/{subscription_id}"): {ENGINEER},
    ("DELETE", "/api/v1/subscriptions/{subscription_id}"): {ENGINEER},
    ("GET", "/api/v1/deliveries"): OPS_READERS,
    ("GET", "/api/v1/deliveries/{delivery_id}"): OPS_READERS,
    ("POST", "/api/v1/deliveries/{delivery_id}/retry"): {ENGINEER},
    ("POST", "/api/v1/deliveries/{delivery_id}/cancel"): {ENGINEER},
    ("GET", "/api/v1/sla"): OPS_READERS,
    ("GET", "/api/v1/outbound/council-status-document"): OPS_READERS,
    ("GET", "/api/v1/reports/board"): READERS,
    ("GET", "/metrics"): OPS_READERS,
}
# Not in the schema (it is the schema) but behind a token all the same.
UNDOCUMENTED_ROLES: dict[tuple[str, str], set[str]] = {("GET", "/openapi.json"): ANYONE}
# Each source-system token is bound to one source: the one the operation submits as.
SOURCE_FOR = {"fhir": "trust-fhir", "events": "council-x", "csv": "council-csv"}


def _source_kind(path: str) -> str:
    if path.startswith("/fhir/"):
        return "fhir"
    return "csv" if path.endswith("/csv") else "events"


PATH_VALUES: dict[str, str] = {  # a value for every path parameter name in the schema
    "resource_type": "Patient", "resource_id": "p-1", "source_id": "council-x",
    "message_id": "1", "exception_id": "no-such-exception", "dispute_id": "no-such-dispute",
    "subscription_id": "no-such-subscription", "delivery_id": "1",
}


@dataclass
class OperationWorld:
    client: TestClient
    person_id: str
    tokens: dict[str, str]  # role, or "source-system:<source>", or "revoked" → plaintext

    def request(self, method: str, template: str, caller: str) -> tuple[int, str]:
        values = {**PATH_VALUES, "person_id": self.person_id,
                  "source": SOURCE_FOR[_source_kind(template)]}
        path = re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], template)
        headers = self._auth(caller, template)
        kwargs: dict[str, object] = {}
        if method in ("POST", "PUT"):
            if template.endswith("/csv"):
                headers["Content-Type"] = "text/csv"
                kwargs["content"] = b"type,nhs_number\r\n"
            elif template.startswith("/fhir/"):
                headers["Content-Type"] = "application/fhir+json"
                kwargs["content"] = b'{"resourceType": "Patient"}'
            else:
                kwargs["json"] = {}
        response = self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        return response.status_code, response.text

    def _auth(self, caller: str, template: str) -> dict[str, str]:
        if caller == "no-token":
            return {}
        if caller == "bad-token":
            return {"Authorization": "Bearer s117_not-a-real-token"}
        if caller == "revoked-token":
            return {"Authorization": f"Bearer {self.tokens['revoked']}"}
        if caller == SOURCE:
            key = f"{SOURCE}:{SOURCE_FOR[_source_kind(template)]}"
            return {"Authorization": f"Bearer {self.tokens[key]}"}
        return {"Authorization": f"Bearer {self.tokens[caller]}"}


@pytest.fixture
def operation_world(hub: Hub) -> Iterator[OperationWorld]:
    now = hub.clock.now()
    for source_id, kind in (("trust-fhir", "fhir-r4"), ("council-x", "council-rest"),
                            ("council-csv", "council-csv")):
        hub.sources.save(SourceDefinition(source_id=source_id, kind=kind), now)  # type: ignore[arg-type]
    with hub.uow() as uow:
        person_id = apply_command(RecordDetentionStarted(
            person=PersonRef(nhs_number=NHS, local_id="RX1-77"),
            provenance=Provenance(source="trust-a", source_ref="adm-77", received_at=now),
            section="03", start=date(2026, 5, 1), episode_ref="V77"), uow, hub.clock).person_id
    store = TokenStore(hub.engine, hub.clock)
    tokens = {role: store.create(role)[1] for role in ROLES if role != SOURCE}
    for source_id in SOURCE_FOR.values():
        tokens[f"{SOURCE}:{source_id}"] = store.create(SOURCE, source=source_id)[1]
    revoked_id, tokens["revoked"] = store.create(list(set(ROLES) - {SOURCE}))
    store.revoke(revoked_id)
    with TestClient(create_app(hub)) as client:
        yield OperationWorld(client, person_id, tokens)


def _schema_operations(app: object) -> set[tuple[str, str]]:
    paths = app.openapi()["paths"]  # type: ignore[attr-defined]
    return {(method.upper(), path) for path, item in paths.items() for method in item
            if method in ("get", "put", "post", "delete", "patch")}


def test_every_operation_is_in_the_role_table(operation_world: OperationWorld) -> None:
    """A new route must say who may call it: add it to OPERATION_ROLES."""
    documented = _schema_operations(operation_world.client.app)
    assert documented - OPERATION_ROLES.keys() == set(), "operations missing from the table"
    assert OPERATION_ROLES.keys() - documented == set(), "table rows with no operation"


MATRIX_CALLERS = ["no-token", "bad-token", "revoked-token", *ROLES]


@pytest.mark.parametrize("operation", sorted({**OPERATION_ROLES, **UNDOCUMENTED_ROLES}),
                         ids=lambda op: f"{op[0]} {op[1]}")
def test_every_operation_for_every_caller(operation_world: OperationWorld,
                                          operation: tuple[str, str]) -> None:
    """401 without a valid token, 403 for a role not in the table, neither for one in it."""
    method, template = operation
    allowed = {**OPERATION_ROLES, **UNDOCUMENTED_ROLES}[operation]
    wrong: list[str] = []
    for caller in MATRIX_CALLERS:  # refused callers first: they must change nothing
        status, body = operation_world.request(method, template, caller)
        if allowed is PUBLIC:
            ok = status not in (401, 403)
        elif caller not in ROLES:
            ok = status == 401
        elif caller in allowed:
            ok = status not in (401, 403)
        else:
            ok = status == 403
        if not ok:
            wrong.append(f"{caller}: {status} {body[:200]}")
    assert wrong == [], f"{method} {template} (allowed: {sorted(allowed) or 'anyone'})"


def test_a_source_system_may_submit_only_as_its_own_source(
        operation_world: OperationWorld) -> None:
    council = {"Authorization": f"Bearer {operation_world.tokens[SOURCE + ':council-x']}"}
    csv_token = operation_world.tokens[SOURCE + ":council-csv"]
    client = operation_world.client
    assert client.post("/api/v1/sources/council-csv/events", json={},
                       headers=council).status_code == 403
    assert client.post("/api/v1/sources/council-x/csv", content=b"type\r\n",
                       headers={"Authorization": f"Bearer {csv_token}",
                                "Content-Type": "text/csv"}).status_code == 403
    fhir = client.post("/fhir/r4/Patient", content=b'{"resourceType": "Patient"}',
                       headers={**council, "Content-Type": "application/fhir+json"})
    assert fhir.status_code == 403


@pytest.mark.parametrize("caller", CALLERS)
def test_healthz_needs_no_token(world: World, caller: str) -> None:
    response = world.client.get("/healthz", headers=world.headers(caller))
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_every_route_but_healthz_refuses_a_missing_token(world: World) -> None:
    """Future routes too: every documented operation, and the schema itself, is 401."""
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    operations = [(method.upper(), path) for path, item in paths.items() for method in item]
    assert {p for _, p in operations} >= {"/healthz", "/readyz", "/api/v1/people",
                                          "/api/v1/people/{person_id}", "/api/v1/audit"}
    for method, template in [*operations, ("GET", "/openapi.json")]:
        path = re.sub(r"\{[^}]+\}", "x", template)
        response = world.client.request(method, path)
        expected = 200 if template == "/healthz" else 401
        assert response.status_code == expected, (method, template)


def test_a_source_system_token_cannot_read_people(world: World) -> None:
    for path in (f"/api/v1/people?nhs_number={NHS}", f"/api/v1/people/{world.person_id}"):
        response = world.client.get(path, headers=world.headers("source-system"))
        assert response.status_code == 403
        assert NHS not in response.text and FAMILY not in response.text


def test_each_person_read_is_audited_with_purpose(world: World, hub: Hub) -> None:
    owner = world.headers("register-owner", purpose="direct care: review planning")
    assert world.client.get(f"/api/v1/people?nhs_number={NHS}", headers=owner).status_code == 200
    auditor = world.headers("auditor")
    assert world.client.get(f"/api/v1/people/{world.person_id}",
                            headers=auditor).status_code == 200
    rows = _audit_rows(hub)
    assert [(r["actor"], r["role"], r["action"], r["resource"], r["resource_id"],
             r["person_id"], r["purpose"], r["request"]) for r in rows] == [
        (world.token_ids["register-owner"], "register-owner", "read", "person",
         world.person_id, world.person_id, "direct care: review planning",
         "GET /api/v1/people"),
        (world.token_ids["auditor"], "auditor", "read", "person", world.person_id,
         world.person_id, None, f"GET /api/v1/people/{world.person_id}"),
    ]
    assert all(r["at"] is not None for r in rows)


def test_refused_and_missing_reads_are_not_audited_as_reads(world: World, hub: Hub) -> None:
    world.client.get(f"/api/v1/people/{world.person_id}", headers=world.headers("no-token"))
    world.client.get(f"/api/v1/people/{world.person_id}",
                     headers=world.headers("integration-engineer"))
    world.client.get("/api/v1/people/00000000-0000-0000-0000-000000000000",
                     headers=world.headers("register-owner"))
    assert _audit_rows(hub) == []


def test_entitlement_listing_is_audited_per_person(world: World, hub: Hub) -> None:
    world.client.get("/api/v1/entitlements", headers=world.headers("register-owner"))
    rows = _audit_rows(hub)
    assert [(r["resource"], r["person_id"]) for r in rows] == [("entitlement",
                                                                 world.person_id)]


def test_no_nhs_number_or_name_reaches_the_audit_log(world: World, hub: Hub) -> None:
    spaced = f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}"
    for caller in ("register-owner", "auditor"):
        for purpose in (f"checking {NHS}", f"checking {spaced}", "safeguarding"):
            world.client.get(f"/api/v1/people?nhs_number={spaced}",
                             headers=world.headers(caller, purpose))
            world.client.get(f"/api/v1/people/{world.person_id}",
                             headers=world.headers(caller, purpose))
        world.client.get("/api/v1/entitlements", headers=world.headers(caller))
    rows = _audit_rows(hub)
    assert len(rows) == 2 * (3 * 2 + 1)
    dump = repr(rows)
    for secret in (NHS, spaced, NHS[:3] + " " + NHS[3:6], FAMILY, GIVEN):
        assert secret not in dump
    assert "checking [redacted]" in dump


def test_auditor_queries_the_audit_log(world: World, hub: Hub) -> None:
    owner = world.headers("register-owner", purpose="care planning")
    world.client.get(f"/api/v1/people/{world.person_id}", headers=owner)
    world.client.get("/api/v1/entitlements", headers=world.headers("auditor"))
    auditor = world.headers("auditor")

    everything = world.client.get("/api/v1/audit", headers=auditor).json()
    assert everything["total"] == 2
    newest_first = [item["resource"] for item in everything["items"]]
    assert newest_first == ["entitlement", "person"]

    mine = world.client.get("/api/v1/audit", headers=auditor,
                            params={"actor": world.token_ids["register-owner"]}).json()
    assert [i["purpose"] for i in mine["items"]] == ["care planning"]
    assert mine["items"][0]["request"] == f"GET /api/v1/people/{world.person_id}"

    about = world.client.get("/api/v1/audit", headers=auditor,
                             params={"person_id": world.person_id, "limit": 1}).json()
    assert about["total"] == 2 and len(about["items"]) == 1
    later = (hub.clock.now() + timedelta(minutes=1)).isoformat()
    assert world.client.get("/api/v1/audit", headers=auditor,
                            params={"since": later}).json()["total"] == 0
    earlier = (hub.clock.now() - timedelta(minutes=1)).isoformat()
    assert world.client.get("/api/v1/audit", headers=auditor,
                            params={"since": earlier}).json()["total"] == 2
    bad = world.client.get("/api/v1/audit", headers=auditor, params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"


def test_tokens_are_stored_hashed_only(world: World, hub: Hub) -> None:
    with hub.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(api_tokens)).mappings()]
    assert len(rows) == len(ROLES) + 1
    dump = repr(rows)
    for plaintext in world.tokens.values():
        assert plaintext.startswith("s117_")
        assert plaintext not in dump and plaintext.removeprefix("s117_") not in dump
        digest = hashlib.sha256(plaintext.encode()).hexdigest()
        assert digest in {r["token_hash"] for r in rows}
    listed = TokenStore(hub.engine).list()
    assert all(not hasattr(t, "token_hash") for t in listed)
    assert {t.role for t in listed} == set(ROLES)
    assert sum(1 for t in listed if t.revoked_at is not None) == 1


def test_token_store_rules(hub: Hub) -> None:
    store = TokenStore(hub.engine, hub.clock)
    with pytest.raises(InvalidValue) as caught:
        store.create("source-system")
    assert caught.value.field == "source"
    with pytest.raises(InvalidValue):
        store.create("auditor", source="trust-a")
    with pytest.raises(InvalidValue) as caught:
        store.create("superuser")
    assert caught.value.field == "role"
    token_id, plaintext = store.create("source-system", source="council-x")
    principal = store.verify(plaintext)
    assert principal is not None
    assert (principal.token_id, principal.roles, principal.source) == (
        token_id, {Role.SOURCE_SYSTEM}, "council-x")
    with pytest.raises(InvalidValue) as caught:
        store.create(["source-system", "auditor"], source="council-x")
    assert caught.value.rule == "source-system-alone"
    assert store.principal(token_id) == principal
    store.revoke(token_id)
    assert store.principal(token_id) is None
    assert store.verify(plaintext + "x") is None and store.verify("") is None
    assert store.verify(None) is None
    store.revoke(token_id)
    store.revoke(token_id)  # revoking twice is harmless
    assert store.verify(plaintext) is None
    with pytest.raises(NotFound):
        store.revoke("no-such-token")


def test_database_down_is_503_not_500(hub: Hub) -> None:
    broken = create_engine("sqlite:////nonexistent-s117-dir/none/register.sqlite3")
    app = create_app(dataclasses.replace(hub, engine=broken))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz", headers={"Authorization": "Bearer s117_whatever"})
        assert response.status_code == 503 and response.json()["error"] == "unavailable"
    broken.dispose()


def test_a_token_with_two_roles_may_do_what_either_may_and_no_more(world: World,
                                                                  hub: Hub) -> None:
    token_id, plaintext = TokenStore(hub.engine, hub.clock).create(
        ["register-owner", "integration-engineer"], label="small team operator")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert world.client.get(f"/api/v1/people/{world.person_id}", headers=headers
                            ).status_code == 200
    assert world.client.get("/api/v1/queues", headers=headers).status_code == 200
    refused = world.client.get("/api/v1/audit", headers=headers)
    assert refused.status_code == 403
    assert "integration-engineer,register-owner" in refused.json()["message"]
    read = [r for r in _audit_rows(hub) if r["actor"] == token_id]
    assert [r["role"] for r in read] == ["integration-engineer,register-owner"]


@pytest.mark.parametrize("caller, expected", [("no-token", 401), ("bad-token", 401),
                                              ("auditor", 403), ("register-owner", 422)])
def test_an_unparseable_body_is_still_refused_by_token_and_role_first(
        operation_world: OperationWorld, caller: str, expected: int) -> None:
    """FastAPI reads the body before any dependency: the error handler re-checks the token
    and the route's roles so that 401 and 403 keep precedence over 422."""
    headers = {"Content-Type": "application/json"}
    if caller == "bad-token":
        headers["Authorization"] = "Bearer s117_not-a-real-token"
    elif caller != "no-token":
        headers["Authorization"] = f"Bearer {operation_world.tokens[caller]}"
    for body in (b"{not json", b"\xff\xfe{"):
        response = operation_world.client.post("/api/v1/disputes", content=body,
                                               headers=headers)
        assert response.status_code == expected, response.text
        if expected == 422:
            assert response.json()["field"] == "body"
