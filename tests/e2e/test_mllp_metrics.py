"""``s117hub mllp --metrics``: the standalone listener (the compose file's ``mllp`` service)
serves /healthz and /metrics with its own counters, and no other endpoint. Its counters live
in its process: the API process cannot report them."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from connectors.hl7v2.framing import FrameReader, frame
from register_core.adapters.database import make_engine
from register_core.adapters.security import Role, TokenStore
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import SystemClock
from s117hub.harness import HubProcess, synthetic_adt

pytestmark = pytest.mark.slow


def _send(port: int, payload: bytes) -> bytes:
    reader = FrameReader()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(frame(payload))
        while True:
            chunk = conn.recv(65536)
            assert chunk, "connection closed before the ACK"
            frames = reader.feed(chunk)
            if frames:
                return frames[0]


def test_the_standalone_listener_serves_its_counters(database_url: str,
                                                     tmp_path: Path) -> None:
    hub = HubProcess(database_url, tmp_path, command="mllp", args=("--metrics",))
    hub.start()
    try:
        ack = _send(hub.mllp_port, synthetic_adt("A01", "MET-1", make_synthetic(41), "L41",
                                                 "20260105093000"))
        assert b"MSA|AA|MET-1" in ack
        engine = make_engine(database_url)
        try:
            _, token = TokenStore(engine, SystemClock()).create(Role.INTEGRATION_ENGINEER)
        finally:
            engine.dispose()
        base = f"http://127.0.0.1:{hub.http_port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/metrics").status_code == 401  # a token, as on the API
            scraped = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert scraped.status_code == 200
            figures = dict(line.rsplit(" ", 1) for line in scraped.text.splitlines()
                           if line.startswith("s117hub_mllp_"))
            assert float(figures["s117hub_mllp_frames_received_total"]) == 1
            # The harness's own probe of the port is a connection too.
            assert float(figures["s117hub_mllp_connections_accepted_total"]) >= 1
            assert float(figures["s117hub_mllp_open_connections"]) == 0
            # Only those two: the register is the API process's to serve.
            people = client.get("/api/v1/people", headers={"Authorization": f"Bearer {token}"})
            assert people.status_code == 404
    finally:
        hub.stop()
