"""The FHIR poller against a real HTTP server on 127.0.0.1: paged searchsets with next links,
a persisted cursor, duplicates recognised, backoff after a 503, and the register at the end.

Synthetic data only: NHS numbers from the 999 test range, invented names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import delete, select

from connectors.fhir.cursors import PollCursors
from connectors.fhir.poller import FhirPollRunner, poll_once
from connectors.inbound_mapper import make_mapper
from register_core.adapters.sources import PollSettings, SourceDefinition
from register_core.adapters.tables import inbox_messages, poll_cursors
from register_core.domain.nhs_number import make_synthetic
from register_core.ports import FixedClock
from register_core.services.inbound import drain
from register_core.views import people_by_nhs_number, person_json
from s117hub.bootstrap import Hub
from tests.http_serving import serving_http

NHS = [make_synthetic(n) for n in (21, 22, 23)]
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
LEGAL_STATUS_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-LegalStatus"
ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland"
TOKEN = "synthetic-trust-token"
SOURCE = "trust-p"


def stamp(minutes: int) -> str:
    return (datetime.fromisoformat("2026-05-31T08:00:00+00:00")
            + timedelta(minutes=minutes)).isoformat()


def meta(minutes: int, version: str = "1") -> dict[str, str]:
    return {"versionId": version, "lastUpdated": stamp(minutes)}


def legal_status(context: str, code: str) -> dict[str, Any]:
    return {"url": LEGAL_STATUS_URL, "extension": [
        {"url": "legalStatusContext", "valueCodeableConcept": {"coding": [{
            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext",
            "code": context}]}},
        {"url": "legalStatusClassification",
         "valueCodeableConcept": {"coding": [{"system": ENGLAND, "code": code}]}}]}


def dataset() -> dict[str, list[dict[str, Any]]]:
    """Three people; the first two patients share an instant (the page boundary case)."""
    patients = [{
        "resourceType": "Patient", "id": f"pat-{i}", "meta": meta(m),
        # An MRN beside the NHS number, as a FHIR server's Patients carry: the Encounters
        # name Patient/pat-<i>, and must still land on these people.
        "identifier": [{"system": NHS_SYSTEM, "value": NHS[i - 1]},
                       {"system": "https://trust-p.example/Id/mrn", "value": f"MRN-{i}"}],
        "name": [{"use": "official", "family": f"Testvale{i}", "given": ["Sam"]}],
        "birthDate": "1985-07-0" + str(i),
    } for i, m in ((1, 1), (2, 2), (3, 2))]
    encounters = [{
        "resourceType": "Encounter", "id": f"enc-{i}", "meta": meta(10 + i),
        "status": "finished" if i != 3 else "in-progress", "class": {"code": "IMP"},
        "identifier": [{"value": f"V-{i}"}],
        "subject": {"reference": f"Patient/pat-{i}"},
        "period": ({"start": "2026-01-05T09:30:00+00:00", "end": "2026-03-01T11:00:00+00:00"}
                   if i != 3 else {"start": "2026-05-20T09:30:00+00:00"}),
        "extension": [legal_status("admission", "03")]
                     + ([legal_status("discharge", "03")] if i != 3 else []),
    } for i in (1, 2, 3)]
    episodes = [{
        "resourceType": "EpisodeOfCare", "id": "eoc-2", "meta": meta(20), "status": "active",
        "type": [{"coding": [{"system": "urn:s117hub:episode-type",
                              "code": "s117-aftercare"}]}],
        "patient": {"reference": "Patient/pat-2"}, "period": {"start": "2026-03-01"},
    }]
    return {"Patient": patients, "Encounter": encounters, "EpisodeOfCare": episodes}


@dataclass
class FakeFhirServer:
    """A FHIR search endpoint: ``_lastUpdated=ge``/``gt``, ``_sort``, ``_count``, next links."""

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dataset)
    fail_next: int = 0  # answer this many requests 503
    fail_offsets: set[int] = field(default_factory=set)  # 503 for pages at these offsets
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def answer(self, path: str, query: dict[str, list[str]], auth: str | None
               ) -> tuple[int, dict[str, Any]]:
        self.requests.append({"path": path, "query": query, "auth": auth})
        if auth != f"Bearer {TOKEN}":
            return 401, {"resourceType": "OperationOutcome", "issue": []}
        offset = int(query.get("_offset", ["0"])[0])
        if self.fail_next or offset in self.fail_offsets:
            self.fail_next = max(0, self.fail_next - 1)
            self.fail_offsets.discard(offset)
            return 503, {"resourceType": "OperationOutcome", "issue": []}
        kind = path.rsplit("/", 1)[-1]
        found = list(self.resources.get(kind, []))
        since = query.get("_lastUpdated", [""])[0]
        if since[:2] in ("gt", "ge"):
            floor = datetime.fromisoformat(since[2:])
            found = [r for r in found
                     if datetime.fromisoformat(r["meta"]["lastUpdated"]) > floor
                     or (since[:2] == "ge"
                         and datetime.fromisoformat(r["meta"]["lastUpdated"]) == floor)]
        found.sort(key=lambda r: datetime.fromisoformat(r["meta"]["lastUpdated"]))
        count = int(query.get("_count", ["100"])[0])
        page = found[offset:offset + count]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle", "type": "searchset", "total": len(found),
            # R4: the self link carries the parameters the server used (here _sort too).
            "link": [{"relation": "self", "url": f"{self.base()}/{kind}?"
                      + urlencode({k: v[0] for k, v in query.items()})}],
            "entry": [{"fullUrl": f"{self.base()}/{kind}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in page]}
        if offset + count < len(found):
            more = {k: v[0] for k, v in query.items()} | {"_offset": str(offset + count)}
            bundle["link"].append({"relation": "next",
                                   "url": f"{self.base()}/{kind}?{urlencode(more)}"})
        return 200, bundle


@pytest.fixture
def server() -> Iterator[FakeFhirServer]:
    fake = FakeFhirServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, body = fake.answer(parts.path, parse_qs(parts.query),
                                       self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    with serving_http(Handler) as port:
        fake.port = port
        yield fake


@pytest.fixture
def source(hub: Hub, server: FakeFhirServer) -> SourceDefinition:
    definition = SourceDefinition(
        source_id=SOURCE, kind="fhir-r4", display_name="Synthetic polled trust",
        default_provider_ods="RX2",
        poll=PollSettings(url=server.base(), interval_seconds=60, bearer_token=TOKEN))
    hub.sources.save(definition, hub.clock.now())
    return definition


def stored(hub: Hub) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))


def test_poll_stores_once_keeps_its_cursor_and_reaches_the_register(
        hub: Hub, server: FakeFhirServer, source: SourceDefinition) -> None:
    first = poll_once(hub, source, page_size=2)
    assert first.error is None
    assert (first.fetched, first.stored, first.duplicates, first.failed) == (7, 7, 0, 0)
    assert first.pages == 5  # 2 + 2 + 1 pages of at most two
    assert first.cursor == {"Patient": stamp(2), "Encounter": stamp(13),
                            "EpisodeOfCare": stamp(20)}
    rows = stored(hub)
    assert [r.message_id for r in rows] == [
        "Patient/pat-1/_history/1", "Patient/pat-2/_history/1", "Patient/pat-3/_history/1",
        "Encounter/enc-1/_history/1", "Encounter/enc-2/_history/1",
        "Encounter/enc-3/_history/1", "EpisodeOfCare/eoc-2/_history/1"]
    assert {(r.channel, r.source, r.status) for r in rows} == {("fhir-poll", SOURCE,
                                                                 "received")}
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in server.requests)
    first_query = server.requests[0]["query"]
    assert first_query["_sort"] == ["_lastUpdated"] and "_lastUpdated" not in first_query
    state = PollCursors(hub.engine).load(SOURCE)
    assert state.cursor == first.cursor and state.failures == 0
    assert state.next_attempt_at == hub.clock.now() + timedelta(seconds=60)

    server.requests.clear()
    second = poll_once(hub, source, page_size=2)
    # From each cursor's own instant (ge): what sits on it comes again, as duplicates.
    assert (second.fetched, second.stored, second.duplicates) == (4, 0, 4)
    assert [r["query"]["_lastUpdated"] for r in server.requests] == [
        [f"ge{stamp(2)}"], [f"ge{stamp(13)}"], [f"ge{stamp(20)}"]]
    assert len(stored(hub)) == 7

    drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)
    assert {r.status for r in stored(hub)} == {"applied"}
    with hub.engine.connect() as conn:
        records = {}
        for nhs in NHS:
            [person_id] = people_by_nhs_number(conn, nhs)
            records[nhs] = person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert records[NHS[0]]["entitlement"]["status"] == "active"
    assert records[NHS[0]]["entitlement"]["start"] == "2026-03-01"
    assert records[NHS[0]]["detentions"][0]["provider_ods"] == "RX2"
    assert records[NHS[1]]["entitlement"]["status"] == "active"
    assert records[NHS[2]]["entitlement"]["status"] == "pending"
    assert records[NHS[2]]["family_name"] == "Testvale3"


def test_a_new_version_is_fetched_and_a_lost_cursor_only_finds_duplicates(
        hub: Hub, server: FakeFhirServer, source: SourceDefinition) -> None:
    poll_once(hub, source)
    updated = dict(server.resources["Patient"][0], meta=meta(30, version="2"),
                   name=[{"use": "official", "family": "Testvale-Moved", "given": ["Sam"]}])
    server.resources["Patient"][0] = updated
    result = poll_once(hub, source)
    assert (result.fetched, result.stored, result.duplicates) == (5, 1, 4)
    assert stored(hub)[-1].message_id == "Patient/pat-1/_history/2"
    assert result.cursor["Patient"] == stamp(30)

    with hub.engine.begin() as conn:  # as if the cursor had never been written
        conn.execute(delete(poll_cursors))
    again = poll_once(hub, source)
    assert (again.fetched, again.stored, again.duplicates) == (7, 0, 7)
    assert len(stored(hub)) == 8


def test_a_503_backs_off_and_stores_nothing(hub: Hub, server: FakeFhirServer,
                                            source: SourceDefinition) -> None:
    server.fail_next = 2
    failed = poll_once(hub, source, page_size=2)
    assert failed.error == "Patient search answered HTTP 503"
    assert (failed.fetched, failed.stored, failed.failures) == (0, 0, 1)
    state = PollCursors(hub.engine).load(SOURCE)
    assert state.failures == 1 and state.cursor == {}
    assert state.next_attempt_at == hub.clock.now() + timedelta(seconds=120)
    assert stored(hub) == []

    failed_again = poll_once(hub, source, page_size=2)
    assert failed_again.failures == 2
    later = PollCursors(hub.engine).load(SOURCE).next_attempt_at
    assert later == hub.clock.now() + timedelta(seconds=240)

    recovered = poll_once(hub, source, page_size=2)
    assert recovered.error is None and recovered.stored == 7
    state = PollCursors(hub.engine).load(SOURCE)
    assert state.failures == 0
    assert state.next_attempt_at == hub.clock.now() + timedelta(seconds=60)


def test_a_failure_mid_search_keeps_the_stored_pages_and_refetches_the_boundary(
        hub: Hub, server: FakeFhirServer, source: SourceDefinition) -> None:
    server.fail_offsets = {2}  # the second page of Patients fails
    failed = poll_once(hub, source, page_size=2)
    assert failed.error is not None and failed.stored == 2
    # pat-2 and pat-3 share an instant: the search from it (ge) finds pat-3 after pat-2
    assert PollCursors(hub.engine).load(SOURCE).cursor == {"Patient": stamp(2)}
    recovered = poll_once(hub, source, page_size=2)
    assert recovered.error is None
    assert (recovered.stored, recovered.duplicates) == (5, 1)  # pat-2 came again
    assert len(stored(hub)) == 7


def test_the_runner_polls_only_due_sources(hub: Hub, server: FakeFhirServer,
                                           source: SourceDefinition) -> None:
    assert isinstance(hub.clock, FixedClock)
    server.fail_next = 1
    runner = FhirPollRunner(hub, hub.sources)
    [failed] = runner.run_due()
    assert failed.error is not None
    assert runner.run_due() == []  # backing off for 120 s
    hub.clock.at += timedelta(seconds=121)
    [done] = runner.run_due()
    assert done.stored == 7
    assert runner.run_due() == []  # next due after the interval
    hub.clock.at += timedelta(seconds=61)
    [quiet] = runner.run_due()
    assert quiet.stored == 0 and quiet.duplicates == quiet.fetched


def test_a_resource_stamped_later_with_the_cursors_instant_is_found(
        hub: Hub, server: FakeFhirServer, source: SourceDefinition) -> None:
    """Instants are not unique: a Patient the server adds after our search, stamped with the
    very instant the cursor holds, must not be skipped (a ``gt`` search skipped it)."""
    poll_once(hub, source)
    cursor = PollCursors(hub.engine).load(SOURCE).cursor["Patient"]
    late = dict(server.resources["Patient"][0], id="pat-late",
                meta={"versionId": "1", "lastUpdated": cursor})
    server.resources["Patient"].append(late)
    again = poll_once(hub, source)
    assert again.stored == 1
    assert stored(hub)[-1].message_id == "Patient/pat-late/_history/1"
