"""The MLLP listener's connection limit and its counters on ``GET /metrics``, over real TCP.

- at most ``max_connections`` (``S117HUB_MLLP_MAX_CONNECTIONS``) connections are served at
  once: one more is closed at once, counted, and logged without personal data; once one
  closes, a new connection is served again;
- ``/metrics`` (scraped and parsed with prometheus_client's parser) shows the listener's open
  connections, refused connections and oversized frames, from the listener this process runs.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import hl7
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from connectors.hl7v2 import server as server_module
from connectors.hl7v2.framing import frame
from connectors.hl7v2.receiver import Hl7Receiver
from connectors.hl7v2.server import MllpServer
from register_core.adapters.security import TokenStore
from register_core.adapters.tables import inbox_messages
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from s117hub.config import Settings
from s117hub.serve import mllp_server
from tests.e2e.test_mllp_inbound import NHS, adt
from tests.mllp_serving import serving

from .test_mllp_hd_headers import TRUST_A, frames_on, msa

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

LIMIT = 2
FRAME_LIMIT = 4096


@pytest.fixture
def limited(hub: Hub) -> Iterator[MllpServer]:
    """The hub's listener as ``serve`` wires it (its counters are the hub's), with a limit of
    two connections and a small frame limit."""
    hub.sources.save(TRUST_A, hub.clock.now())
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, lambda _partition: None)
    server = MllpServer(receiver.handle, port=0, handle_async=receiver.handle_async,
                        max_connections=LIMIT, max_frame_bytes=FRAME_LIMIT,
                        stats=hub.mllp_stats)
    with serving(server):
        yield server


def connect(server: MllpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def exchange(sock: socket.socket, message: str) -> hl7.Message:
    sock.sendall(frame(message.encode()))
    [answer] = frames_on(sock, 1)
    return hl7.parse(answer.decode())


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the hub closed the connection (EOF or reset) without a byte sent."""
    sock.settimeout(5)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_a_connection_over_the_limit_is_closed_at_once_counted_and_logged(
        hub: Hub, limited: MllpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=server_module.__name__)
    with ExitStack() as stack:
        held = [stack.enter_context(connect(limited)) for _ in range(LIMIT)]
        for n, sock in enumerate(held):  # each served: an ACK for its message
            assert msa(exchange(sock, adt("A01", f"LIM-{n}")))[0] == "AA"
        assert limited.open_connections == LIMIT
        with connect(limited) as extra:
            with contextlib.suppress(OSError):  # the hub may have closed it already
                extra.sendall(frame(adt("A01", "LIM-X").encode()))
            assert closed_by_peer(extra)  # no ACK: closed before anything was read
        assert limited.refused_connections == 1
        # the held connections go on as before
        assert msa(exchange(held[0], adt("A01", "LIM-AGAIN")))[0] == "AA"
        held[1].close()
        wait_for(lambda: limited.open_connections == LIMIT - 1)
        with connect(limited) as later:  # room again
            assert msa(exchange(later, adt("A01", "LIM-LATER")))[0] == "AA"
    assert limited.refused_connections == 1
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"{LIMIT} connections open" in line and "127.0.0.1:" in line
    assert NHS not in line and "Testperson" not in line
    with hub.engine.connect() as conn:  # nothing of the refused connection was stored
        ids = set(conn.execute(select(inbox_messages.c.message_id)).scalars())
    assert ids == {"LIM-0", "LIM-1", "LIM-AGAIN", "LIM-LATER"}


def _samples(hub: Hub) -> dict[str, float]:
    _id, token = TokenStore(hub.engine).create("integration-engineer")
    with TestClient(create_app(hub), headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {s.name: s.value for family in text_string_to_metric_families(response.text)
            for s in family.samples if s.name.startswith("s117hub_mllp_")}


def test_metrics_show_open_and_refused_connections_and_oversized_frames(
        hub: Hub, limited: MllpServer) -> None:
    with ExitStack() as stack:
        held = [stack.enter_context(connect(limited)) for _ in range(LIMIT)]
        assert msa(exchange(held[0], adt("A01", "MET-1")))[0] == "AA"
        big = adt("A01", "MET-BIG") + "ZZZ|" + "x" * (2 * FRAME_LIMIT) + "\r"
        assert msa(exchange(held[1], big)) == ("AR", "MET-BIG")
        with connect(limited) as extra:
            assert closed_by_peer(extra)
        wait_for(lambda: limited.refused_connections == 1)
        samples = _samples(hub)
    assert samples["s117hub_mllp_open_connections"] == LIMIT
    assert samples["s117hub_mllp_max_connections"] == LIMIT
    assert samples["s117hub_mllp_connections_refused_total"] == 1
    assert samples["s117hub_mllp_connections_accepted_total"] == LIMIT
    assert samples["s117hub_mllp_oversized_frames_total"] == 1
    assert samples["s117hub_mllp_frames_received_total"] == 2
    wait_for(lambda: limited.open_connections == 0)
    assert _samples(hub)["s117hub_mllp_open_connections"] == 0


def test_metrics_have_no_listener_figures_where_no_listener_runs(hub: Hub) -> None:
    assert _samples(hub) == {}


def test_the_limit_comes_from_s117hub_mllp_max_connections(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S117HUB_MLLP_MAX_CONNECTIONS", raising=False)
    assert Settings().mllp_max_connections == 256
    monkeypatch.setenv("S117HUB_MLLP_MAX_CONNECTIONS", "3")
    monkeypatch.setattr(hub, "settings", Settings(database_url=hub.settings.database_url))
    server = mllp_server(hub, port=0)
    assert server.max_connections == 3 and server.stats is hub.mllp_stats
    monkeypatch.setenv("S117HUB_MLLP_MAX_CONNECTIONS", "0")
    with pytest.raises(ValueError):
        Settings()
