"""Kill the hub (SIGKILL) at random points during a 2,000-message MLLP stream and restart it:
every message that got ``AA`` is in the register exactly once (architecture section 1) — in
the embedded shape on both databases, and in the production shape (PostgreSQL, RabbitMQ,
worker processes) with the listener and the workers killed."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import hl7
import pytest
from sqlalchemy import func, select

from connectors.hl7v2.framing import FrameReader, frame
from register_core.adapters.database import make_engine
from register_core.adapters.tables import entitlements, facts, inbox_messages
from s117hub.harness import HubProcess, synthetic_adt_stream

MESSAGES = 2_000
BROKER_URL = os.environ.get("S117HUB_TEST_BROKER_URL")
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


def stream_with_kills(hub: HubProcess, kill_and_restart: list[Callable[[], None]],
                      seed: int = 117) -> dict[str, str]:
    """Send the stream, one message at a time, while each of ``kill_and_restart`` is run
    once at a random moment; the ACK code of every message."""
    rng = random.Random(seed)
    stop = threading.Event()
    kills: list[float] = []

    def killer() -> None:
        for action in kill_and_restart:
            if stop.wait(rng.uniform(0.5, 2.0)):
                return
            action()
            kills.append(time.monotonic())

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
    assert len(kills) == len(kill_and_restart), "the kills did not all fall in the stream"
    assert set(acked.values()) == {"AA"}
    return acked


def assert_each_applied_once(database_url: str, acked: dict[str, str],
                             stop: Callable[[], None]) -> None:
    """Wait until the inbox is drained, ``stop`` the hub, then check the register."""
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
        stop()
        with check.connect() as conn:
            statuses = Counter(conn.execute(select(inbox_messages.c.status)).scalars())
            per_ref = Counter(conn.execute(select(facts.c.source_ref)).scalars())
            active = conn.execute(select(func.count()).select_from(entitlements)
                                  .where(entitlements.c.status == "active")).scalar_one()
    finally:
        check.dispose()
    assert statuses == {"applied": MESSAGES}
    assert set(per_ref) == set(acked), "a fact without an ACKed message, or the reverse"
    assert set(per_ref.values()) == {1}, "some message was applied twice"
    assert active == MESSAGES // 2


def test_sigkill_during_stream_loses_and_duplicates_nothing(database_url: str,
                                                             engine, tmp_path: Path) -> None:
    hub = HubProcess(database_url, tmp_path)
    hub.start()

    def kill_and_restart() -> None:
        hub.kill()
        hub.start()

    try:
        acked = stream_with_kills(hub, [kill_and_restart] * 3)  # three SIGKILLs
        assert_each_applied_once(database_url, acked, hub.stop)
    finally:
        hub.kill()


def test_production_shape_sigkill_of_listener_and_workers(database_url: str, engine,
                                                          tmp_path: Path) -> None:
    """PostgreSQL and RabbitMQ: ``serve`` listens and stores, two ``s117hub worker``
    processes apply, hinted over the broker. The listener and each worker are killed once
    (SIGKILL) mid-stream and restarted: hints lost with them are re-issued by the sweepers."""
    if engine.dialect.name != "postgresql" or not BROKER_URL:
        pytest.skip("needs PostgreSQL and S117HUB_TEST_BROKER_URL")
    hub = HubProcess(database_url, tmp_path, broker_url=BROKER_URL,
                     extra_env={"S117HUB_RECONCILE_EVERY_HOURS": "0"})
    hub.start()
    workers = [start_worker(hub), start_worker(hub)]

    def kill_listener() -> None:
        hub.kill()
        hub.start()

    def kill_worker(n: int) -> Callable[[], None]:
        def action() -> None:
            workers[n].kill()
            workers[n].wait(10)
            workers[n] = start_worker(hub)
        return action

    def stop_all() -> None:
        hub.stop()
        for worker in workers:
            worker.terminate()
            worker.wait(15)

    try:
        acked = stream_with_kills(hub, [kill_worker(0), kill_listener, kill_worker(1)])
        assert_each_applied_once(database_url, acked, stop_all)
    finally:
        hub.kill()
        for worker in workers:
            worker.kill()


def start_worker(hub: HubProcess) -> subprocess.Popen[bytes]:
    with open(hub.workdir / "workers.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "s117hub.cli", "worker", "--threads", "2"], env=hub.env(),
            stdout=log, stderr=log)
