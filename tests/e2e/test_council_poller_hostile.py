"""The council change-feed poller against a hostile or broken feed on 127.0.0.1 (audit of the
pull side): a NUL in an event or in the cursor, an oversized page, a Retry-After given as a
date, a poll that crashes. The feed must go on (or back off), never stall or be hammered.

Synthetic data only: NHS numbers from the 999 test range, invented names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from sqlalchemy import select

import connectors.council.poller as council_poller
from connectors.council.poller import Backoff, PollerLoop, PollResult, poll_once
from connectors.intake import Intake
from register_core.adapters.sources import PollSettings, SourceDefinition
from register_core.adapters.tables import inbox_messages, poll_cursors
from register_core.domain.nhs_number import make_synthetic
from s117hub.bootstrap import Hub
from tests.http_serving import serving_http

TOKEN = "synthetic-feed-secret"
SOURCE = "council-h"


def event(event_id: str, n: int) -> dict[str, Any]:
    return {"event_id": event_id, "type": "s117.confirmed", "occurred_at": "2026-03-01T09:30:00Z",
            "person": {"nhs_number": make_synthetic(800 + n), "family_name": "Feedperson",
                       "given_name": "Lee"}, "data": {"start": "2026-02-01"}}


@dataclass
class Feed:
    """Answers ``status`` with ``body`` (JSON-encoded unless bytes) and ``headers``."""

    body: Any = field(default_factory=lambda: {"events": [], "next_cursor": None})
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed"


@pytest.fixture
def feed() -> Iterator[Feed]:
    state = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.calls += 1
            data = state.body if isinstance(state.body, bytes) else json.dumps(
                state.body).encode()
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    with serving_http(Handler) as port:
        state.port = port
        yield state


@pytest.fixture
def source(hub: Hub, feed: Feed) -> SourceDefinition:
    definition = SourceDefinition(source_id=SOURCE, kind="council-poll", poll=PollSettings(
        url=feed.url, interval_seconds=60, bearer_token=TOKEN))
    hub.sources.save(definition, hub.clock.now())
    return definition


def poll(hub: Hub, source: SourceDefinition) -> PollResult:
    return poll_once(source, engine=hub.engine, notify=hub.notify, clock=hub.clock,
                     rand=lambda: 0.0, backoff=Backoff(base_seconds=10, max_seconds=300))


def inbox(hub: Hub) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))


def saved_cursor(hub: Hub) -> str | None:
    with hub.engine.connect() as conn:
        return conn.scalar(select(poll_cursors.c.cursor))


def test_an_event_with_a_nul_is_rejected_and_the_feed_goes_on(
        hub: Hub, feed: Feed, source: SourceDefinition) -> None:
    """On PostgreSQL the NUL in the event id failed the insert: the poll crashed at that event
    on every pass, the cursor never moved, and every later event waited for ever."""
    feed.body = {"events": [event("ev\x00-1", 1), event("ev-2", 2)], "next_cursor": "c1"}
    result = poll(hub, source)
    assert (result.status, result.stored, result.invalid) == ("ok", 1, 1)
    refused, taken = inbox(hub)
    assert refused.status == "rejected" and refused.message_id.startswith("sha256:")
    assert refused.error["location"] == "event_id"
    assert "\x00" not in refused.payload and "\\u0000" in refused.payload  # kept exactly
    assert (taken.message_id, taken.status) == ("ev-2", "received")
    assert saved_cursor(hub) == "c1"
    assert poll(hub, source).invalid == 1  # the same event again: the first answer stands
    assert len(inbox(hub)) == 2


def test_a_next_cursor_with_a_nul_is_a_failure_with_backoff(
        hub: Hub, feed: Feed, source: SourceDefinition) -> None:
    feed.body = {"events": [event("ev-3", 3)], "next_cursor": "c\x001"}
    result = poll(hub, source)
    assert (result.status, result.error) == ("failed", "next_cursor holds a NUL character")
    assert result.next_attempt_at == hub.clock.now() + timedelta(seconds=5)
    assert saved_cursor(hub) is None and inbox(hub) == []


def test_a_retry_after_date_is_honoured(hub: Hub, feed: Feed,
                                        source: SourceDefinition) -> None:
    feed.status = 503
    feed.headers = {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=200),
                                                   usegmt=True)}
    result = poll(hub, source)
    assert result.status == "failed"
    assert result.next_attempt_at is not None
    wait = (result.next_attempt_at - hub.clock.now()).total_seconds()
    assert 190 <= wait <= 201  # not the 5 s of the first backoff step


def test_an_oversized_page_is_a_failure_not_a_memory_spike(
        hub: Hub, feed: Feed, source: SourceDefinition,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(council_poller, "MAX_PAGE_BYTES", 2048)
    feed.body = {"events": [event(f"big-{n}", n) for n in range(50)], "next_cursor": "c9"}
    result = poll(hub, source)
    assert (result.status, result.error) == ("failed", "a page is over 2048 bytes")
    assert inbox(hub) == [] and saved_cursor(hub) is None


def test_a_failure_is_logged_with_its_reason_and_never_the_token(
        hub: Hub, feed: Feed, source: SourceDefinition,
        caplog: pytest.LogCaptureFixture) -> None:
    feed.status = 502
    with caplog.at_level(logging.WARNING, logger="connectors.council.poller"):
        poll(hub, source)
    messages = [record.getMessage() for record in caplog.records]
    assert any("HTTP 502" in message for message in messages)
    assert all(TOKEN not in message for message in messages)


def test_a_crashing_poll_waits_its_interval_instead_of_calling_every_tick(
        hub: Hub, feed: Feed, source: SourceDefinition,
        monkeypatch: pytest.MonkeyPatch) -> None:
    feed.body = {"events": [event("ev-5", 5)], "next_cursor": "c1"}

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database refused the row")

    monkeypatch.setattr(Intake, "accept", crash)
    loop = PollerLoop(engine=hub.engine, sources=hub.sources, notify=hub.notify,
                      clock=hub.clock)
    try:
        loop.run_pending()
        loop.run_pending()
        loop.run_pending()
        assert feed.calls == 1
    finally:
        loop.close()
