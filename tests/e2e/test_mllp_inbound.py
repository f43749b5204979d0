"""HL7 v2 over a real MLLP socket: ACK after durable commit, duplicates, errors, register."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import select

from connectors.hl7v2.receiver import Hl7Receiver
from connectors.hl7v2.server import MllpServer
from register_core.adapters.inbox import Inbox
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import inbox_messages
from register_core.domain.nhs_number import make_synthetic
from register_core.views import people_by_nhs_number, person_json
from s117hub.bootstrap import Hub
from s117hub.harness import synthetic_adt
from s117hub.worker import start_worker
from tests.mllp_serving import serving

NHS = "9990000018"


def adt(trigger: str, control_id: str, *, event_time: str = "20260105093000",
        zls: str = "ZLS|03|20260105093000", pv1_45: str = "", nhs: str = NHS,
        msh15: str = "", msh16: str = "") -> str:
    segments = [
        f"MSH|^~\\&|EPR|RX1|S117HUB|HUB|{event_time}||ADT^{trigger}^ADT_A01|{control_id}|P|2.4"
        f"|||{msh15}|{msh16}",
        f"EVN|{trigger}|{event_time}",
        f"PID|1||{nhs}^^^NHS^NH~RX1-000123^^^RX1^MR||Testperson^Alex||19800202|F|||"
        "1 Test Street^^Worcester^^WR1 2AB",
        f"PV1|1|I|WARD1^^^RX1||||||||||||||||V0001|||||||||||||||||||||||||20260105093000|"
        f"{pv1_45}",
    ]
    if zls:
        segments.append(zls)
    return "\r".join(segments) + "\r"


@dataclass
class RunningHub:
    hub: Hub
    port: int
    worker: object

    def send(self, message: str) -> hl7.Message:
        with MLLPClient("127.0.0.1", self.port) as client:
            return hl7.parse(client.send_message(message).decode())

    def wait_processed(self, timeout: float = 10.0) -> None:
        box = Inbox(self.hub.engine)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not box.pending_ids(limit=1):
                return
            time.sleep(0.05)
        raise AssertionError("inbox not drained")


@pytest.fixture(params=["async", "threads"])
def running(hub: Hub, request: pytest.FixtureRequest) -> Iterator[RunningHub]:
    """The listener as ``serve`` runs it (parsing on the loop, commits by the inbox's writer
    thread) and with the blocking receiver in the thread pool."""
    hub.sources.save(SourceDefinition(source_id="trust-a", kind="hl7v2-mllp",
                                      hl7_sending_application="EPR",
                                      hl7_sending_facility="RX1"), hub.clock.now())
    worker = start_worker(hub.broker, threads=2)
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, hub.notify)
    server = MllpServer(receiver.handle, port=0, handle_async=(
        receiver.handle_async if request.param == "async" else None))
    with serving(server):
        yield RunningHub(hub, server.port, worker)
    worker.stop()  # type: ignore[attr-defined]


def msa(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])


def test_admit_and_discharge_reach_the_register(running: RunningHub) -> None:
    ack = running.send(adt("A01", "MSG0001"))
    assert msa(ack) == ("AA", "MSG0001")
    ack = running.send(adt("A03", "MSG0002", event_time="20260301100000",
                           zls="ZLS|03|20260105093000|20260301100000", pv1_45="20260301100000"))
    assert msa(ack) == ("AA", "MSG0002")
    running.wait_processed()
    with running.hub.engine.connect() as conn:
        [person_id] = people_by_nhs_number(conn, NHS)
        record = person_json(conn, person_id, running.hub.clock.today())
    assert record is not None
    assert record["entitlement"]["status"] == "active"
    assert record["entitlement"]["start"] == date(2026, 3, 1).isoformat()
    assert record["detentions"][0]["section"] == "03"
    assert {"source": "trust-a", "value": "RX1-000123"} in record["identifiers"]


def test_duplicate_is_acknowledged_again_and_applied_once(running: RunningHub) -> None:
    first = running.send(adt("A01", "DUP1"))
    second = running.send(adt("A01", "DUP1"))
    assert msa(first) == msa(second) == ("AA", "DUP1")
    running.wait_processed()
    with running.hub.engine.connect() as conn:
        rows = conn.execute(select(inbox_messages.c.status, inbox_messages.c.resent)).all()
    assert [(r.status, r.resent) for r in rows] == [("applied", 1)]


def test_unknown_code_is_stored_and_answered_ae_with_err(running: RunningHub) -> None:
    ack = running.send(adt("A01", "BAD1", zls="ZLS|XX|20260105"))
    assert msa(ack) == ("AE", "BAD1")
    err = ack.segment("ERR")
    assert "103" in str(err)  # table value not found
    assert "ZLS" in str(err)
    with running.hub.engine.connect() as conn:
        row = conn.execute(select(inbox_messages)).one()
    assert row.status == "failed" and "ZLS|XX" in row.payload


def test_unknown_sender_and_garbage_are_rejected_but_kept(running: RunningHub) -> None:
    stranger = adt("A01", "S1").replace("|EPR|RX1|", "|OTHER|ZZZ|")
    assert msa(running.send(stranger))[0] == "AR"
    assert msa(running.send("this is not HL7"))[0] == "AR"
    with running.hub.engine.connect() as conn:
        rows = conn.execute(select(inbox_messages.c.status, inbox_messages.c.payload)).all()
    assert sorted(r.status for r in rows) == ["rejected", "rejected"]
    assert any(r.payload == "this is not HL7" for r in rows)


def test_enhanced_mode_sends_commit_then_application_ack(running: RunningHub) -> None:
    import socket

    from connectors.hl7v2.framing import FrameReader, frame

    message = adt("A01", "ENH1", msh15="AL", msh16="AL")
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(frame(message.encode()))
        reader = FrameReader()
        acks: list[bytes] = []
        while len(acks) < 2:
            acks.extend(reader.feed(sock.recv(65536)))
    codes = [msa(hl7.parse(a.decode()))[0] for a in acks]
    assert codes == ["CA", "AA"]


def test_a_register_refusal_is_an_application_ae_at_the_field_it_concerns(
        running: RunningHub) -> None:
    """Enhanced mode: an A40 across two different NHS numbers is stored (CA), then refused by
    the register's rules; the application ACK is AE with ERR-3 207 (the application's rule,
    named in ERR-8) at MRG-1 — it was 102 "data type error" with no location."""
    import socket

    from connectors.hl7v2.framing import FrameReader, frame

    other = make_synthetic(4242)
    merge = "\r".join([
        "MSH|^~\\&|EPR|RX1|S117HUB|HUB|20260105093000||ADT^A40^ADT_A39|MRG1|P|2.5|||AL|AL",
        "EVN|A40|20260105093000",
        f"PID|1||{NHS}^^^NHS^NH~RX1-000123^^^RX1^MR||Testperson^Alex||19800202|F",
        f"MRG|{other}^^^NHS^NH~RX1-000999^^^RX1^MR"]) + "\r"
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(frame(merge.encode()))
        reader = FrameReader()
        acks: list[bytes] = []
        while len(acks) < 2:
            acks.extend(reader.feed(sock.recv(65536)))
    commit, application = (hl7.parse(a.decode()) for a in acks)
    assert msa(commit) == ("CA", "MRG1") and msa(application) == ("AE", "MRG1")
    err = application.segment("ERR")
    assert str(err[2]).startswith("MRG^1^1") and str(err[3][0][0]) == "207"
    assert "never-link-different-nhs-numbers" in application.unescape(str(err[8]))


def test_concurrent_connections_each_get_their_own_ack_once_stored(
        running: RunningHub) -> None:
    """Frames from several connections share group commits; every ACK echoes its own
    control id, comes after its row is committed, and a duplicate is re-acknowledged."""
    results: dict[str, tuple[str, str]] = {}

    def send(prefix: str) -> None:
        with MLLPClient("127.0.0.1", running.port) as client:
            for n in range(10):
                nhs = make_synthetic(1000 + int(prefix[1:]) * 10 + n)
                control = f"{prefix}-{n}"
                message = synthetic_adt("A01", control, nhs, f"L-{control}", "20260105093000")
                ack = hl7.parse(client.send_message(message.decode()).decode())
                results[control] = msa(ack)
                with running.hub.engine.connect() as conn:
                    assert conn.execute(select(inbox_messages.c.id).where(
                        inbox_messages.c.message_id == control)).first() is not None

    threads = [threading.Thread(target=send, args=(f"C{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {f"C{i}-{n}": ("AA", f"C{i}-{n}") for i in range(4) for n in range(10)}
    again = synthetic_adt("A01", "C0-0", make_synthetic(1000), "L-C0-0", "20260105093000")
    assert msa(running.send(again.decode())) == ("AA", "C0-0")
    running.wait_processed()
    with running.hub.engine.connect() as conn:
        statuses = conn.execute(select(inbox_messages.c.status)).scalars().all()
    assert sorted(set(statuses)) == ["applied"] and len(statuses) == 40

