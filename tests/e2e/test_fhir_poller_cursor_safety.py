"""The FHIR poller against hostile or careless servers on 127.0.0.1 (audit of the pull side):
a server that ignores ``_sort``, one that says it sorts and does not, a resource stamped in
the future, a NUL in a resource id, a page too large, and a poll that crashes. In each, no
record may be lost and the trust's server may not be hammered.

Synthetic data only: NHS numbers from the 999 test range, invented names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

import connectors.fhir.poller as poller
from connectors.fhir.cursors import PollCursors
from connectors.fhir.poller import FhirPollRunner, poll_once
from register_core.adapters.sources import PollSettings, SourceDefinition
from register_core.adapters.tables import inbox_messages
from register_core.domain.nhs_number import make_synthetic
from s117hub.bootstrap import Hub
from tests.http_serving import serving_http

SOURCE = "trust-s"
TOKEN = "synthetic-poll-token"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
EPOCH = datetime(2026, 5, 31, 8, 0, tzinfo=UTC)


def at(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).isoformat()


def patient(n: int, seconds: int, *, stamp: str | None = None) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"pat-{n}",
            "meta": {"versionId": "1", "lastUpdated": stamp or at(seconds)},
            "identifier": [{"system": NHS_SYSTEM, "value": make_synthetic(700 + n)}],
            "name": [{"family": f"Cursorson{n}", "given": ["Robin"]}],
            "birthDate": "1979-03-04"}


@dataclass
class PagedServer:
    """Patients in the order given (``sort``: by lastUpdated, as asked), two to a page, with
    ``_offset`` next links. ``says_sorted``: the self link echoes ``_sort`` (R4: the
    parameters the server used). ``fail_offsets``: 503 once for these pages. ``now``: the
    Date header."""

    patients: list[dict[str, Any]] = field(default_factory=list)
    sort: bool = True
    says_sorted: bool = True
    fail_offsets: set[int] = field(default_factory=set)
    now: datetime = EPOCH + timedelta(hours=1)
    raw: Callable[[], bytes] | None = None  # answer these bytes instead
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    port: int = 0

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        self.requests.append(query)
        if self.raw is not None:
            return 200, self.raw()
        offset = int(query.get("_offset", ["0"])[0])
        if offset in self.fail_offsets:
            self.fail_offsets.discard(offset)
            return 503, b'{"resourceType": "OperationOutcome", "issue": []}'
        kind = path.rsplit("/", 1)[-1]
        found = list(self.patients) if kind == "Patient" else []
        since = query.get("_lastUpdated", [""])[0]
        if since.startswith("ge"):
            floor = datetime.fromisoformat(since[2:])
            found = [r for r in found if datetime.fromisoformat(r["meta"]["lastUpdated"]) >= floor]
        if self.sort:
            found.sort(key=lambda r: datetime.fromisoformat(r["meta"]["lastUpdated"]))
        used = {k: v[0] for k, v in query.items() if self.says_sorted or k != "_sort"}
        bundle: dict[str, Any] = {
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "self", "url": f"{self.base()}/{kind}?{urlencode(used)}"}],
            "entry": [{"resource": r, "search": {"mode": "match"}}
                      for r in found[offset:offset + 2]]}
        if offset + 2 < len(found):
            more = {k: v[0] for k, v in query.items()} | {"_offset": str(offset + 2)}
            bundle["link"].append({"relation": "next",
                                   "url": f"{self.base()}/{kind}?{urlencode(more)}"})
        return 200, json.dumps(bundle).encode()


@pytest.fixture
def server() -> Iterator[PagedServer]:
    fake = PagedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, data = fake.answer(parts.path, parse_qs(parts.query))
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def date_time_string(self, timestamp: float | None = None) -> str:
            return format_datetime(fake.now, usegmt=True)

        def log_message(self, *args: Any) -> None:
            pass

    with serving_http(Handler) as port:
        fake.port = port
        yield fake


@pytest.fixture
def source(hub: Hub, server: PagedServer) -> SourceDefinition:
    definition = SourceDefinition(
        source_id=SOURCE, kind="fhir-r4", display_name="Synthetic polled trust",
        poll=PollSettings(url=server.base(), interval_seconds=60, bearer_token=TOKEN))
    hub.sources.save(definition, hub.clock.now())
    return definition


def message_ids(hub: Hub) -> list[str]:
    with hub.engine.connect() as conn:
        return list(conn.scalars(select(inbox_messages.c.message_id)
                                 .order_by(inbox_messages.c.id)))


def cursor(hub: Hub) -> dict[str, str]:
    return PollCursors(hub.engine).load(SOURCE).cursor


def test_a_server_that_ignores_sort_loses_nothing_when_a_later_page_fails(
        hub: Hub, server: PagedServer, source: SourceDefinition) -> None:
    """Newest first on page 1, older on page 2, which fails: the cursor must not move past
    the older ones (it did, to page 1's latest, and they were never fetched)."""
    server.patients = [patient(1, 30), patient(2, 31), patient(3, 10), patient(4, 11)]
    server.sort, server.says_sorted, server.fail_offsets = False, False, {2}
    failed = poll_once(hub, source)
    assert failed.error == "Patient search answered HTTP 503" and failed.stored == 2
    assert cursor(hub) == {}  # the search did not end: nothing is known to be complete
    recovered = poll_once(hub, source)
    assert recovered.error is None
    assert sorted(message_ids(hub)) == [f"Patient/pat-{n}/_history/1" for n in (1, 2, 3, 4)]
    assert cursor(hub) == {"Patient": at(31)}  # once complete, the latest stamp


def test_a_server_that_says_it_sorts_but_does_not_is_caught_and_rewound(
        hub: Hub, server: PagedServer, source: SourceDefinition) -> None:
    server.patients = [patient(1, 30), patient(2, 31), patient(3, 10), patient(4, 11),
                       patient(5, 12), patient(6, 13)]
    server.sort, server.says_sorted, server.fail_offsets = False, True, {4}
    failed = poll_once(hub, source)
    assert failed.error is not None and failed.stored == 4
    # Page 1 moved the cursor to 31; page 2 went back to 10: rewound to where it began.
    assert cursor(hub) == {}
    poll_once(hub, source)
    assert len(message_ids(hub)) == 6


def test_a_sorting_server_moves_the_cursor_page_by_page(
        hub: Hub, server: PagedServer, source: SourceDefinition) -> None:
    server.patients = [patient(1, 10), patient(2, 11), patient(3, 12), patient(4, 13)]
    server.fail_offsets = {2}
    poll_once(hub, source)
    assert cursor(hub) == {"Patient": at(11)}  # page 1 is stored: a restart goes on from it
    poll_once(hub, source)
    assert len(message_ids(hub)) == 4 and cursor(hub) == {"Patient": at(13)}


def test_a_resource_stamped_in_the_future_does_not_hide_later_changes(
        hub: Hub, server: PagedServer, source: SourceDefinition) -> None:
    server.now = EPOCH + timedelta(minutes=5)
    server.patients = [patient(1, 60), patient(2, 0, stamp="9999-12-31T23:59:59+00:00")]
    poll_once(hub, source)
    assert cursor(hub) == {"Patient": server.now.isoformat()}  # the server's own time
    server.now = EPOCH + timedelta(minutes=10)
    server.patients.append(patient(3, 7 * 60))  # changed after that poll
    later = poll_once(hub, source)
    assert later.stored == 1
    assert message_ids(hub)[-1] == "Patient/pat-3/_history/1"


def test_a_nul_in_a_resource_id_is_stored_failed_and_the_feed_goes_on(
        hub: Hub, server: PagedServer, source: SourceDefinition) -> None:
    """PostgreSQL cannot hold a NUL: the insert failed, the poll crashed at that resource on
    every pass and nothing after it was ever stored."""
    poisoned = patient(1, 10)
    poisoned["id"] = "pat\x00-1"
    server.patients = [poisoned, patient(2, 11)]
    result = poll_once(hub, source)
    assert result.error is None and (result.stored, result.failed) == (2, 1)
    first, second = message_ids(hub)
    assert first.startswith("Patient/sha256:") and "\x00" not in first
    assert second == "Patient/pat-2/_history/1"
    assert cursor(hub) == {"Patient": at(11)}


def test_a_page_over_the_size_limit_is_a_failure_not_a_memory_spike(
        hub: Hub, server: PagedServer, source: SourceDefinition,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller, "MAX_PAGE_BYTES", 4096)
    server.raw = lambda: json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": patient(n, n)} for n in range(100)]}).encode()
    result = poll_once(hub, source)
    assert result.error == "Patient search: a page is over 4096 bytes"
    assert result.stored == 0 and result.failures == 1
    assert message_ids(hub) == []


def test_a_failure_is_logged_with_its_reason(
        hub: Hub, server: PagedServer, source: SourceDefinition,
        caplog: pytest.LogCaptureFixture) -> None:
    """The JSON log line keeps the message text and a few named extras: the reason must be
    in the text, or an operator reads "FHIR poll failed" and nothing else."""
    server.fail_offsets = {0}
    with caplog.at_level(logging.WARNING, logger="connectors.fhir.poller"):
        poll_once(hub, source)
    assert any("HTTP 503" in record.getMessage() for record in caplog.records)
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_a_crashing_poll_backs_off_instead_of_calling_every_tick(
        hub: Hub, server: PagedServer, source: SourceDefinition,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server.patients = [patient(1, 10)]

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database refused the row")

    monkeypatch.setattr(poller, "_store", crash)
    runner = FhirPollRunner(hub, hub.sources)
    assert runner.run_due() == []
    calls = len(server.requests)
    assert calls == 1
    runner.run_due()
    runner.run_due()
    assert len(server.requests) == calls  # not due again until the backoff has passed
    assert PollCursors(hub.engine).load(SOURCE).failures == 1
