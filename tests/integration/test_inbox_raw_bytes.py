"""The inbox keeps every message byte for byte (issue 3: "the inbox keeps the raw bytes").

The stored ``payload`` is the text the hub read; where that text, encoded UTF-8, is not what
arrived — an HL7 message in Latin-1 (named in MSH-18 or not), one with a NUL or bytes invalid
in its charset, a council or FHIR body that is not UTF-8 — the bytes are kept beside it
(``inbox_messages.raw``), and ``GET /api/v1/messages/{id}/raw`` gives them back exactly, as
an audited read. A plain UTF-8 message keeps nothing extra. Synthetic data only.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from connectors.hl7v2.receiver import Hl7Receiver
from register_core.adapters.security import TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import inbox_messages
from tests.e2e.test_mllp_inbound import adt

from .test_operations_api import NHS_A, TRUST_A, Ops, _audit, ops

__all__ = ["ops"]  # the operations API tests' fixture: a client with a token per role


def _receive(ops: Ops, payload: bytes) -> None:
    Hl7Receiver(ops.hub.engine, ops.hub.sources, ops.clock, ops.hub.notify).handle(payload)


def _row(ops: Ops, **where: Any) -> Any:
    with ops.hub.engine.connect() as conn:
        query = select(inbox_messages)
        for column, value in where.items():
            query = query.where(inbox_messages.c[column] == value)
        return conn.execute(query).one()


def _raw(ops: Ops, message_id: int) -> bytes:
    response = ops.get(f"/api/v1/messages/{message_id}/raw", role="auditor")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    return response.content


@pytest.fixture
def trust(ops: Ops) -> Ops:
    ops.hub.sources.save(SourceDefinition.model_validate(TRUST_A), ops.clock.now())
    return ops


def _latin1_adt(control_id: str, msh_18: str = "") -> bytes:
    text = adt("A01", control_id, nhs=NHS_A).replace("Testperson^Alex", "Lefèvre^Zoé")
    if msh_18:
        msh, rest = text.split("\r", 1)
        text = f"{msh}||{msh_18}\r{rest}"
    return text.encode("latin-1")


@pytest.mark.parametrize("msh_18", ["", "8859/1"])
def test_a_latin_1_message_is_kept_as_its_bytes(trust: Ops, msh_18: str) -> None:
    sent = _latin1_adt("MSG-L1", msh_18)
    _receive(trust, sent)
    row = _row(trust, message_id="MSG-L1")
    assert row.status == "received" and "Lefèvre^Zoé" in row.payload
    assert row.payload.encode("utf-8") != sent and row.raw == sent
    before = len(_audit(trust.hub))
    assert _raw(trust, row.id) == sent
    [audited] = _audit(trust.hub)[before:]
    assert (audited["action"], audited["resource"], audited["resource_id"]) == (
        "read", "inbound-message", str(row.id))


def test_a_utf_8_message_keeps_no_second_copy(trust: Ops) -> None:
    sent = adt("A01", "MSG-U1", nhs=NHS_A).replace("Testperson^Alex", "Lefèvre^Zoé").encode()
    _receive(trust, sent)
    row = _row(trust, message_id="MSG-U1")
    assert row.raw is None
    assert _raw(trust, row.id) == sent


def test_a_refused_message_with_a_nul_or_bad_bytes_is_kept_exactly(trust: Ops) -> None:
    with_nul = adt("A01", "MSG-N1", nhs=NHS_A).replace("Testperson", "Test\x00person").encode()
    bad_utf8 = _latin1_adt("MSG-B1", "UNICODE UTF-8")  # says UTF-8, sends Latin-1
    for sent in (with_nul, bad_utf8):
        _receive(trust, sent)
    with trust.hub.engine.connect() as conn:
        rows = conn.execute(select(inbox_messages.c.id, inbox_messages.c.status,
                                   inbox_messages.c.payload)
                            .order_by(inbox_messages.c.id)).all()
    assert [r.status for r in rows] == ["rejected", "rejected"]
    assert "\x00" not in rows[0].payload  # PostgreSQL text cannot hold it
    assert [_raw(trust, r.id) for r in rows] == [with_nul, bad_utf8]


def test_a_council_body_that_is_not_utf_8_is_kept_exactly(ops: Ops) -> None:
    ops.hub.sources.save(SourceDefinition(source_id="council-x", kind="council-rest"),
                         ops.clock.now())
    token = TokenStore(ops.hub.engine, ops.clock).create("source-system", source="council-x")[1]
    sent = b'{"event_id": "e-1", "type": "s117.confirmed", "family_name": "Lef\xe8vre"'
    response = ops.client.post("/api/v1/sources/council-x/events", content=sent, headers={
        "Authorization": f"Bearer {token}", "content-type": "application/json"})
    assert response.status_code == 422
    row = _row(ops, source="council-x")
    assert row.status == "rejected" and row.raw == sent
    assert _raw(ops, row.id) == sent


def test_an_unknown_message_is_404(ops: Ops) -> None:
    response = ops.get("/api/v1/messages/999999/raw")
    assert response.status_code == 404 and response.json()["field"] == "message_id"
