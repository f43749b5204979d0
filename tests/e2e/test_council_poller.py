"""The council change-feed poller against a REAL HTTP server on 127.0.0.1: pages and cursors,
a council that answers 503, drops the connection or is too slow, backoff with the state in
``poll_cursors``, every event stored once and drained into the register. Synthetic data."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import select

from connectors.council.poller import Backoff, PollerLoop, PollResult, poll_once
from connectors.inbound_mapper import make_mapper
from register_core import views
from register_core.adapters.sources import PollSettings, SourceDefinition
from register_core.adapters.tables import inbox_messages, poll_cursors
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.inbound import drain
from s117hub.bootstrap import Hub

NHS_A, NHS_B = make_synthetic(31), make_synthetic(32)
TOKEN = "synthetic-feed-token"


def event(event_id: str, kind: str, nhs: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "occurred_at": "2026-03-01T09:30:00Z",
            "person": {"nhs_number": nhs, "family_name": "Testperson", "given_name": "Jo"},
            "data": data}


RESIDENCE = event("p-1", "ordinary-residence.changed", NHS_A,
                  {"council_code": "E10000034", "date": "2020-01-01"})
DETENTION = event("p-2", "detention.notified", NHS_A,
                  {"section": "03", "start": "2026-01-05", "end": "2026-03-01"})
CONFIRMED = event("p-3", "s117.confirmed", NHS_B, {"start": "2026-02-01"})
INVALID = event("p-4", "s117.confirmed", NHS_B, {"start": "2026-02-30"})
REVIEW = event("p-5", "review.completed", NHS_A, {"date": "2026-05-01"})
PAGES: dict[str | None, dict[str, Any]] = {
    None: {"events": [RESIDENCE, DETENTION], "next_cursor": "c1", "has_more": True},
    "c1": {"events": [CONFIRMED, INVALID], "next_cursor": "c2", "has_more": False},
    "c2": {"events": [CONFIRMED, REVIEW], "next_cursor": "c3", "has_more": False},
    "c3": {"events": [], "next_cursor": None, "has_more": False},
}


@dataclass
class Feed:
    """What the fake council does: ``script`` holds the next requests' misbehaviour."""

    port: int = 0
    script: list[str] = field(default_factory=list)
    requests: list[dict[str, str | None]] = field(default_factory=list)
    retry_after: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the dropped connection is the point of the test


def _handler(feed: Feed) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cursor = parse_qs(urlparse(self.path).query).get("cursor", [None])[0]
            feed.requests.append({"cursor": cursor,
                                  "auth": self.headers.get("Authorization")})
            action = feed.script.pop(0) if feed.script else "page"
            if action == "503":
                self.send_response(503)
                if feed.retry_after:
                    self.send_header("Retry-After", feed.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if action == "slow":
                time.sleep(1.0)
            body = b"<html>maintenance</html>" if action == "garbage" else json.dumps(
                PAGES[cursor]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def feed() -> Iterator[Feed]:
    state = Feed()
    server = _Server(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class Poller:
    hub: Hub
    clock: FixedClock
    source: SourceDefinition
    client: httpx.Client

    def poll(self, **kwargs: Any) -> PollResult:
        return poll_once(self.source, engine=self.hub.engine, notify=self.hub.notify,
                         clock=self.clock, client=self.client, rand=lambda: 0.0,
                         backoff=Backoff(base_seconds=10, max_seconds=300), **kwargs)

    def later(self, seconds: float) -> None:
        self.clock.at += timedelta(seconds=seconds)

    def cursor_row(self) -> Any:
        with self.hub.engine.connect() as conn:
            return conn.execute(select(poll_cursors)).one()

    def inbox(self) -> list[Any]:
        with self.hub.engine.connect() as conn:
            return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))


@pytest.fixture
def poller(hub: Hub, clock: FixedClock, feed: Feed) -> Iterator[Poller]:
    source = SourceDefinition(source_id="council-p", kind="council-poll", poll=PollSettings(
        url=feed.url, interval_seconds=60, bearer_token=TOKEN))
    hub.sources.save(source, clock.now())
    with httpx.Client(timeout=httpx.Timeout(0.5)) as client:
        yield Poller(hub, clock, source, client)


def _entitlement(hub: Hub, nhs: str) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        [person_id] = views.people_by_nhs_number(conn, nhs)
        record = views.person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert record is not None
    return record["entitlement"]  # type: ignore[no-any-return]


def test_backs_off_while_the_council_is_down_then_stores_every_event_once(
        poller: Poller, feed: Feed) -> None:
    feed.script = ["503", "drop"]
    start = poller.clock.now()
    first = poller.poll()
    assert (first.status, first.failures, first.error) == ("failed", 1, "HTTP 503")
    assert first.next_attempt_at == start + timedelta(seconds=5)  # 10·2⁰, half as jitter
    row = poller.cursor_row()
    assert (row.cursor, row.failures) == (None, 1)

    assert poller.poll().status == "not-due"  # refuses to call before next_attempt_at
    assert len(feed.requests) == 1

    poller.later(6)
    second = poller.poll()
    assert (second.status, second.failures) == ("failed", 2)
    assert second.error is not None and second.error.startswith("unreachable")
    assert second.next_attempt_at == poller.clock.now() + timedelta(seconds=10)
    assert poller.inbox() == []

    poller.later(11)
    third = poller.poll()
    assert (third.status, third.pages, third.stored, third.invalid) == ("ok", 2, 3, 1)
    assert (third.cursor, third.failures, third.next_attempt_at) == ("c2", 0, None)
    row = poller.cursor_row()
    assert (row.cursor, row.failures, row.next_attempt_at) == ("c2", 0, None)
    assert [r["cursor"] for r in feed.requests] == [None, None, None, "c1"]
    assert {r["auth"] for r in feed.requests} == {f"Bearer {TOKEN}"}
    rows = poller.inbox()
    assert [(r.message_id, r.channel, r.status) for r in rows] == [
        ("p-1", "council-poll", "received"), ("p-2", "council-poll", "received"),
        ("p-3", "council-poll", "received"), ("p-4", "council-poll", "failed")]
    assert rows[3].error["location"] == "data.start"

    fourth = poller.poll()  # the council re-sends p-3 with the next page
    assert (fourth.stored, fourth.duplicates, fourth.cursor) == (1, 1, "c3")
    assert len(poller.inbox()) == 5

    hub = poller.hub
    assert drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy) == 4
    a = _entitlement(hub, NHS_A)
    assert (a["status"], a["start"], a["responsible_council"]) == ("active", "2026-03-01",
                                                                   "E10000034")
    assert a["last_review"] == "2026-05-01"
    assert _entitlement(hub, NHS_B)["status"] == "active"


def test_the_cursor_moves_only_past_pages_that_were_stored(
        poller: Poller, feed: Feed) -> None:
    feed.script = ["page", "503"]  # the first page arrives, the second fails
    result = poller.poll()
    assert (result.status, result.pages, result.stored, result.cursor) == ("failed", 1, 2,
                                                                           "c1")
    row = poller.cursor_row()
    assert (row.cursor, row.failures) == ("c1", 1)
    poller.later(60)
    again = poller.poll()
    assert (again.status, again.stored, again.cursor) == ("ok", 1, "c2")
    assert feed.requests[-1]["cursor"] == "c1"  # resumed where it stopped
    assert [r.message_id for r in poller.inbox()] == ["p-1", "p-2", "p-3", "p-4"]


def test_timeouts_garbage_and_retry_after_are_failures_with_backoff(
        poller: Poller, feed: Feed) -> None:
    feed.script = ["slow", "garbage", "503"]
    feed.retry_after = "120"
    slow = poller.poll()
    assert slow.status == "failed" and slow.error is not None
    assert slow.error.startswith("timeout")
    poller.later(10)
    garbage = poller.poll()
    assert (garbage.failures, garbage.error) == (2, "the feed did not answer JSON")
    poller.later(20)
    busy = poller.poll()
    assert busy.failures == 3
    assert busy.next_attempt_at == poller.clock.now() + timedelta(seconds=120)
    assert poller.inbox() == []
    assert poller.cursor_row().failures == 3


def test_the_loop_polls_due_council_poll_sources_on_their_interval(
        poller: Poller, feed: Feed) -> None:
    hub = poller.hub
    hub.sources.save(SourceDefinition(source_id="council-r", kind="council-rest"),
                     poller.clock.now())
    loop = PollerLoop(engine=hub.engine, sources=hub.sources, notify=hub.notify,
                      clock=poller.clock, client=poller.client)
    [result] = loop.run_pending()
    assert (result.source, result.status, result.cursor) == ("council-p", "ok", "c2")
    assert loop.run_pending() == []  # not due again before its interval
    poller.later(61)
    [again] = loop.run_pending()
    assert again.cursor == "c3"
    stop = threading.Event()
    stop.set()
    loop.run(stop)  # returns at once when asked to stop
