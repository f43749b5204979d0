"""HL7 v2 over a real MLLP socket from senders whose MSH-3..6 are full HD values
(``EPR^1.2.3^ISO``): every message is answered (AA / AE / AR, CA / CR and the application
ACK), MSA-2 echoes MSH-10, the parties come back swapped, and the row is stored first. Also:
an ACK that cannot be built still answers and stores, and the README's PV2 legal-status
location, configured through the API, maps an A01 over MLLP as documented.

SQLite always, PostgreSQL when S117HUB_TEST_DATABASE_URL is set (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import select

from connectors.hl7v2 import receiver as receiver_module
from connectors.hl7v2.framing import FrameReader, frame
from connectors.hl7v2.receiver import Hl7Receiver
from connectors.hl7v2.server import MllpServer
from connectors.inbound_mapper import make_mapper
from register_core.adapters.security import Role, TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import inbox_messages
from register_core.services.inbound import drain
from register_core.views import people_by_nhs_number, person_json
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from tests.e2e.test_mllp_inbound import NHS, adt
from tests.mllp_serving import serving

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PARTIES = "|EPR|RX1|S117HUB|HUB|"
EPR, RX1 = "EPR^1.2.3^ISO", "RX1^2.16.840.1.113883^ISO"
HUB_APP, HUB = "S117HUB^1.2.826.0.1^ISO", "HUB^2.16.840.1.113883.2.1^ISO"
THREE = f"|{EPR}|{RX1}|{HUB_APP}|{HUB}|"
TRUST_A = SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                           hl7_sending_application="EPR", hl7_sending_facility="RX1")
# a sender known by its OID alone (HD-1 empty), configured with that OID
TRUST_OID = SourceDefinition(source_id="trust-oid", kind="hl7v2-mllp",
                             hl7_sending_application="2.16.840.1.113883.19.5")


def three(message: str, parties: str = THREE) -> str:
    assert PARTIES in message
    return message.replace(PARTIES, parties)



def frames_on(sock: socket.socket, count: int, *, timeout: float = 10.0) -> list[bytes]:
    """The next ``count`` frames the hub sends on ``sock`` (an empty frame included)."""
    sock.settimeout(timeout)
    reader = FrameReader()
    frames: list[bytes] = []
    while len(frames) < count:
        data = sock.recv(65536)
        assert data, "connection closed before the replies came"
        frames.extend(reader.feed(data))
    return frames

@dataclass
class Listener:
    hub: Hub
    port: int

    def send(self, message: str) -> hl7.Message:
        with MLLPClient("127.0.0.1", self.port) as client:
            return hl7.parse(client.send_message(message).decode())

    def send_for(self, message: str, replies: int) -> list[hl7.Message]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(frame(message.encode()))
            frames = frames_on(sock, replies)
        return [hl7.parse(f.decode()) for f in frames]

    def rows(self) -> list[Any]:
        with self.hub.engine.connect() as conn:
            return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))

    def drain(self) -> None:
        drain(self.hub.engine, make_mapper(self.hub.sources), self.hub.clock, self.hub.policy)


@pytest.fixture(params=["async", "threads"])
def listener(hub: Hub, request: pytest.FixtureRequest) -> Iterator[Listener]:
    """The listener as ``serve`` runs it (parsing on the loop) and with the blocking receiver
    in the thread pool; no worker: ``drain`` applies when a test wants it."""
    for definition in (TRUST_A, TRUST_OID):
        hub.sources.save(definition, hub.clock.now())
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, lambda _partition: None)
    server = MllpServer(receiver.handle, port=0, threads=2, handle_async=(
        receiver.handle_async if request.param == "async" else None))
    with serving(server):
        yield Listener(hub, server.port)


def msa(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])


def parties(ack: hl7.Message) -> list[str]:
    msh = ack.segment("MSH")
    return [str(msh[n]) for n in (3, 4, 5, 6)]


def test_a28_from_three_component_hds_gets_aa_and_is_stored(listener: Listener) -> None:
    ack = listener.send(three(adt("A28", "HD-A28", zls="")))
    assert msa(ack) == ("AA", "HD-A28")
    assert parties(ack) == [HUB_APP, HUB, EPR, RX1]  # the hub's, then the sender's echoed
    [row] = listener.rows()
    assert (row.source, row.message_id, row.status) == ("trust-a", "HD-A28", "received")
    assert row.ack.replace("\r", "\n").startswith(f"MSH|^~\\&|{HUB_APP}|{HUB}|{EPR}|{RX1}|")
    listener.drain()
    with listener.hub.engine.connect() as conn:
        assert people_by_nhs_number(conn, NHS)
        assert [r.status for r in conn.execute(select(inbox_messages.c.status))] == [
            "applied"]


def test_a01_from_three_component_hds_is_applied(listener: Listener) -> None:
    assert msa(listener.send(three(adt("A01", "HD-A01")))) == ("AA", "HD-A01")
    listener.drain()
    with listener.hub.engine.connect() as conn:
        [person_id] = people_by_nhs_number(conn, NHS)
        record = person_json(conn, person_id, listener.hub.clock.today())
    assert record is not None and record["detentions"][0]["section"] == "03"


def test_ae_with_err_for_three_component_hds(listener: Listener) -> None:
    ack = listener.send(three(adt("A01", "HD-BAD", zls="ZLS|XX|20260105")))
    assert msa(ack) == ("AE", "HD-BAD")
    assert parties(ack) == [HUB_APP, HUB, EPR, RX1]
    assert str(ack.segment("ERR")[3]).startswith("103^")
    [row] = listener.rows()
    assert (row.source, row.status) == ("trust-a", "failed")


def test_an_unknown_three_component_sender_gets_ar_and_is_kept(listener: Listener) -> None:
    stranger = three(adt("A01", "HD-STRANGER"),
                     f"|OTHER^1.2^ISO|ZZZ^3.4^ISO|{HUB_APP}|{HUB}|")
    ack = listener.send(stranger)
    assert msa(ack) == ("AR", "HD-STRANGER")
    assert parties(ack) == [HUB_APP, HUB, "OTHER^1.2^ISO", "ZZZ^3.4^ISO"]
    # 103 table value not found: MSH-3/MSH-4 are values of user tables 0361/0362, here the
    # configured sources; no source has this application, so MSH-3
    assert str(ack.segment("ERR")[2]) == "MSH^1^3"
    assert str(ack.segment("ERR")[3]) == "103^Table value not found^HL70357"
    [row] = listener.rows()
    assert (row.source, row.status, row.payload) == ("unknown-sender", "rejected", stranger)
    assert (row.error["code"], row.error["location"]) == ("unknown-code", "MSH-3")


def test_a_known_application_from_an_unknown_facility_is_err_103_at_msh_4(
        listener: Listener) -> None:
    """EPR is trust-a's application; the facility is what no source has, so ERR-2 points
    there."""
    for control_id, senders in (("HD-FAC1", f"|{EPR}|ZZZ^3.4^ISO|"), ("HD-FAC2", "|EPR|ZZZ|")):
        stranger = three(adt("A01", control_id), f"{senders}{HUB_APP}|{HUB}|")
        ack = listener.send(stranger)
        assert msa(ack) == ("AR", control_id)
        assert str(ack.segment("ERR")[2]) == "MSH^1^4"
        assert str(ack.segment("ERR")[3]).startswith("103^")
    assert [(r.source, r.error["location"]) for r in listener.rows()] == [
        ("unknown-sender", "MSH-4")] * 2


def test_the_namespace_id_must_match_not_just_the_universal_id(listener: Listener) -> None:
    """``EPR`` is trust-a whatever OID follows it; another namespace id with trust-a's OIDs
    is not trust-a."""
    assert msa(listener.send(three(adt("A28", "HD-NS1", zls=""),
                                   f"|EPR^9.9.9^ISO|RX1^8.8^ISO|{HUB_APP}|{HUB}|")))[0] == "AA"
    assert msa(listener.send(three(adt("A28", "HD-NS2", zls=""),
                                   f"|EPX^1.2.3^ISO|{RX1}|{HUB_APP}|{HUB}|")))[0] == "AR"


def test_a_sender_known_by_its_universal_id_alone(listener: Listener) -> None:
    ack = listener.send(three(adt("A28", "HD-OID", zls=""),
                              f"|^2.16.840.1.113883.19.5^ISO|RX9|{HUB_APP}|{HUB}|"))
    assert msa(ack) == ("AA", "HD-OID")
    assert parties(ack)[2] == "^2.16.840.1.113883.19.5^ISO"
    [row] = listener.rows()
    assert (row.source, row.status) == ("trust-oid", "received")


def test_enhanced_mode_commit_and_application_acks(listener: Listener) -> None:
    message = three(adt("A01", "HD-ENH", zls="ZLS|XX|20260105", msh15="AL", msh16="AL"))
    commit, application = listener.send_for(message, 2)
    # Stored, so committed (CA); the application ACK says it could not be mapped (AE).
    assert msa(commit) == ("CA", "HD-ENH") and msa(application) == ("AE", "HD-ENH")
    assert parties(commit) == parties(application) == [HUB_APP, HUB, EPR, RX1]
    message = three(adt("A28", "HD-ENH2", zls="", msh15="AL", msh16="NE"))
    [commit] = listener.send_for(message, 1)
    assert msa(commit) == ("CA", "HD-ENH2") and parties(commit) == [HUB_APP, HUB, EPR, RX1]


def test_an_ack_that_cannot_be_built_still_answers_and_stores(
        listener: Listener, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError(f"cannot write {NHS} Testperson")  # as if quoting the payload

    monkeypatch.setattr(receiver_module, "success_ack", broken)
    monkeypatch.setattr(receiver_module, "build_ack", broken)
    caplog.set_level(logging.ERROR, logger=receiver_module.__name__)
    ack = listener.send(three(adt("A01", "HD-FALLBACK")))
    assert msa(ack) == ("AA", "HD-FALLBACK")
    assert parties(ack) == ["", "", "", ""]  # without the sender's header fields
    assert msa(listener.send(three(adt("A01", "HD-FALLBACK")))) == ("AA", "HD-FALLBACK")
    stranger = three(adt("A01", "HD-FB-AR"), "|OTHER|ZZZ|S117HUB|HUB|")
    rejected = listener.send(stranger)
    assert msa(rejected) == ("AR", "HD-FB-AR") and str(rejected.segment("ERR")[2]) == "MSH^1^3"
    stored, kept = listener.rows()
    assert (stored.message_id, stored.status, stored.resent) == ("HD-FALLBACK", "received", 1)
    assert stored.ack.split("\r")[0].split("|")[2:6] == ["", "", "", ""]  # what was sent
    assert kept.status == "rejected"
    [first, *_] = [r for r in caplog.records if r.name == receiver_module.__name__]
    logged = first.getMessage()
    assert "RuntimeError" in logged and first.message_id == "HD-FALLBACK"  # type: ignore[attr-defined]
    assert NHS not in logged and "Testperson" not in logged


def test_the_readme_pv2_location_posted_to_the_api_maps_over_mllp(
        listener: Listener) -> None:
    hub = listener.hub
    _, token = TokenStore(hub.engine, hub.clock).create(Role.INTEGRATION_ENGINEER)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"source_id": "trust-b", "kind": "hl7v2-mllp", "hl7_sending_application": "EPRB",
            "code_map": {"S3": "03"},
            "legal_status_location": {"segment": "PV2", "code_field": 3}}  # as in the README
    with TestClient(create_app(hub)) as client:
        created = client.post("/api/v1/sources", json=body, headers=auth)
        assert created.status_code == 201, created.text
        assert created.json()["legal_status_location"] == {
            "segment": "PV2", "code_field": 3, "code_component": 1, "start_field": None,
            "end_field": None, "end_reason_field": None}
        clash = client.post("/api/v1/sources", json=body | {
            "source_id": "trust-c", "legal_status_location": {"segment": "ZLS",
                                                              "code_field": 3}}, headers=auth)
        assert clash.status_code == 422
        assert "end_field" in clash.text
    hub.sources.invalidate()
    message = adt("A01", "PV2-S3", zls="PV2|||S3|").replace("|EPR|RX1|", f"|EPRB^1.2^ISO|{RX1}|")
    assert msa(listener.send(message)) == ("AA", "PV2-S3")
    listener.drain()
    with hub.engine.connect() as conn:
        [person_id] = people_by_nhs_number(conn, NHS)
        record = person_json(conn, person_id, hub.clock.today())
    assert record is not None
    [detention] = record["detentions"]
    # the code from PV2-3 through the code map; the start is the admission, PV1-44
    assert (detention["section"], detention["start"], detention["end"]) == (
        "03", "2026-01-05", None)


def test_a_handler_that_fails_gets_no_ack_and_logs_no_payload(
        caplog: pytest.LogCaptureFixture) -> None:
    """Nothing stored, nothing to acknowledge: the connection is closed so that the sender
    resends; the log says where it failed, not what the exception quoted."""
    def failing(payload: bytes) -> Any:
        raise RuntimeError(f"could not store {payload.decode()}")

    async def scenario() -> bytes:
        server = MllpServer(failing, port=0, threads=1)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frame(adt("A01", "HD-LOST").encode()))
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # until the server closes
            writer.close()
            return answer
        finally:
            await server.stop()

    caplog.set_level(logging.ERROR, logger="connectors.hl7v2.server")
    assert asyncio.run(scenario()) == b""
    [record] = [r for r in caplog.records if r.name == "connectors.hl7v2.server"]
    assert "RuntimeError" in record.getMessage() and record.exc_info is None
    assert NHS not in record.getMessage() and "HD-LOST" not in record.getMessage()
