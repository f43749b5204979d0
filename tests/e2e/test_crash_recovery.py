"""Kill the hub (SIGKILL) at random points during a 2,000-message MLLP stream and restart it:
every message that got ``AA`` is in the register exactly once (architecture section 1)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import hl7
import pytest
from sqlalchemy import func, select

from connectors.hl7v2.framing import FrameReader, frame
from register_core.adapters.database import make_engine
from register_core.adapters.tables import entitlements, facts, inbox_messages
from s117hub.harness import HubProcess, synthetic_adt_stream

MESSAGES = 2_000
pytestmark = pytest.mark.slow


class Sender:
    """A sender as real EPRs behave: wait for each ACK, resend on a broken connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.reader = FrameReader()

    def send(self, payload: bytes, deadline: float) -> str:
        while time.monotonic() < deadline:
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    self.reader = FrameReader()
                self.sock.sendall(frame(payload))
                while True:
                    data = self.sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed")
                    acks = self.reader.feed(data)
                    if acks:
                        return str(hl7.parse(acks[0].decode()).segment("MSA")[1])
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None
                time.sleep(0.05)
        raise AssertionError("could not deliver a message before the deadline")


def test_sigkill_during_stream_loses_and_duplicates_nothing(database_url: str,
                                                             engine, tmp_path: Path) -> None:
    hub = HubProcess(database_url, tmp_path)
    hub.start()
    rng = random.Random(117)
    stop = threading.Event()
    kills: list[float] = []

    def killer() -> None:
        # Three SIGKILLs at random moments, each followed by a restart.
        for _ in range(3):
            if stop.wait(rng.uniform(0.5, 2.0)):
                return
            hub.kill()
            kills.append(time.monotonic())
            hub.start()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sender = Sender(hub.mllp_port)
    acked: dict[str, str] = {}
    deadline = time.monotonic() + 240
    try:
        for _person, control_id, payload in synthetic_adt_stream(MESSAGES):
            acked[control_id] = sender.send(payload, deadline)
    finally:
        stop.set()
        thread.join(30)
    assert len(kills) == 3, "the hub was not killed three times during the stream"
    assert set(acked.values()) == {"AA"}
    # Let the restarted hub drain what the killed ones left unprocessed.
    check = make_engine(database_url)
    try:
        drain_deadline = time.monotonic() + 120
        while time.monotonic() < drain_deadline:
            with check.connect() as conn:
                left = conn.execute(select(func.count()).select_from(inbox_messages)
                                    .where(inbox_messages.c.status == "received")).scalar_one()
            if left == 0:
                break
            time.sleep(0.25)
        hub.stop()
        with check.connect() as conn:
            statuses = Counter(conn.execute(select(inbox_messages.c.status)).scalars())
            per_ref = Counter(conn.execute(select(facts.c.source_ref)).scalars())
            active = conn.execute(select(func.count()).select_from(entitlements)
                                  .where(entitlements.c.status == "active")).scalar_one()
    finally:
        check.dispose()
        hub.kill()
    assert statuses == {"applied": MESSAGES}
    assert set(per_ref) == set(acked), "a fact without an ACKed message, or the reverse"
    assert set(per_ref.values()) == {1}, "some message was applied twice"
    assert active == MESSAGES // 2
