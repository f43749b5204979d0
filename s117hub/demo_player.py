"""Plays the demo scenario through the hub's real inbound paths, over real sockets.

HL7 v2 goes over MLLP (framed 0x0B … 0x1C 0x0D, one connection, each ACK read and checked),
FHIR Bundles and council events and CSV exports over HTTP with each source's own token,
disputes through the API with the operator's token. Nothing is written to the database here.

Why the hub's clock travels: the hub dates what it receives by its own clock, and the rules
that make a register worth watching count from those dates (a discharge the council has not
confirmed 5 working days after the hub heard of it; a delivery's 5-working-day SLA). Sent
all at once "now", sixteen weeks of messages could show nothing overdue. So the player sets
the hub's clock (``TravellingClock``, given to ``bootstrap``) to each step's moment before
sending it, waits for the worker and the outbox to settle, and only then moves on; the last
day is played at the real time, and the nightly reconcile sweep then runs as of today.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Any

import httpx
from sqlalchemy import func, select

from connectors.hl7v2.framing import FrameReader, frame
from register_core.adapters.inbox import Inbox
from register_core.adapters.tables import outbound_deliveries
from register_core.domain.calendar import england_date
from register_core.services.outbound import enqueue_on_change
from register_core.services.reconcile import sweep

from .bootstrap import Hub
from .demo_people import COUNCIL_CSV, COUNCIL_REST, PEOPLE, TRUST_FHIR
from .demo_scenario import (
    CouncilEvents,
    CsvExport,
    FhirBundle,
    Hl7Message,
    OpenDispute,
    Step,
)

log = logging.getLogger(__name__)
SETTLE_TIMEOUT_SECONDS = 30.0
READ_ATTEMPTS = 8


class DemoError(RuntimeError):
    """The hub answered a scenario message otherwise than a correct hub would."""


class TravellingClock:
    """The system clock, optionally set back to a moment in the story. Once in the story it
    never runs backwards: time goes on from wherever it was last set."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._in_story = False
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) - self._offset

    def today(self) -> date:
        return england_date(self.now())

    def travel_to(self, moment: datetime) -> None:
        with self._lock:
            if not self._in_story or moment > self.now():
                self._offset = datetime.now(UTC) - moment
                self._in_story = True

    def back_to_present(self) -> None:
        with self._lock:
            self._offset = timedelta(0)
            self._in_story = False


class MllpSender:
    """A trust EPR's outbound interface: one MLLP connection, one message at a time."""

    def __init__(self, host: str, port: int, timeout: float = 15.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._reader = FrameReader()

    def send(self, message: str) -> str:
        self._sock.sendall(frame(message.encode()))
        while True:
            data = self._sock.recv(65536)
            if not data:
                raise DemoError("the MLLP listener closed the connection before the ACK")
            acks = self._reader.feed(data)
            if acks:
                return acks[0].decode()

    def close(self) -> None:
        self._sock.close()


def ack_code(ack: str) -> tuple[str, str]:
    """(MSA-1, the ERR segment or "") of an ACK."""
    segments = [s for s in ack.replace("\n", "\r").split("\r") if s]
    msa = next((s.split("|") for s in segments if s.startswith("MSA|")), ["MSA", "?"])
    err = next((s for s in segments if s.startswith("ERR|")), "")
    return msa[1], err


@dataclass(frozen=True)
class Tokens:
    operator: str  # register-owner + integration-engineer
    auditor: str
    sources: dict[str, str]  # source id -> its source-system token


class ScenarioPlayer:
    def __init__(self, hub: Hub, clock: TravellingClock, api: str,
                 mllp: tuple[str, int], tokens: Tokens, say: Callable[[str], None],
                 stop: threading.Event) -> None:
        self.hub, self.clock, self.tokens, self.say, self.stop = hub, clock, tokens, say, stop
        self.mllp_address = mllp
        self.http = httpx.Client(base_url=api, timeout=30.0)
        self.register_ids: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    # -- reading back through the API -------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        """GET with the operator's token. A 503 means "busy, try again" in the hub's
        contract: SQLite answers it when an audited read meets a writer, so retry a little."""
        for attempt in range(READ_ATTEMPTS):
            answer = self.http.get(path, params=params,
                                   headers=self._auth(self.tokens.operator))
            if answer.status_code != 503 or attempt == READ_ATTEMPTS - 1:
                break
            time.sleep(0.1 * (attempt + 1))
        if answer.status_code != 200:  # the query may hold an NHS number: path only
            raise DemoError(f"GET {path}: HTTP {answer.status_code} {answer.text[:300]}")
        return answer.json()

    def register_id(self, key: str) -> str | None:
        if key not in self.register_ids:
            found = self.get("/api/v1/people", nhs_number=PEOPLE[key].nhs_number)["items"]
            if not found:
                return None
            self.register_ids[key] = found[0]["id"]
        return self.register_ids[key]

    # -- playing ----------------------------------------------------------------------------

    def wait_until_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                if self.http.get("/healthz").status_code == 200:
                    with socket.create_connection(self.mllp_address, timeout=1):
                        return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.05)
        raise DemoError("the hub did not start listening")

    def play(self, steps: Iterable[Step], before_today: Callable[[], None]) -> int:
        """Send every step, a day at a time; returns the number of steps sent."""
        sent = 0
        mllp = MllpSender(*self.mllp_address)
        try:
            for days_ago, day_steps in groupby(steps, key=lambda s: s.days_ago):
                if days_ago <= 0:
                    self.clock.back_to_present()
                    before_today()
                for step in day_steps:
                    if self.stop.is_set():
                        return sent
                    if days_ago > 0:
                        self.clock.travel_to(step.at)
                    self._send(step, mllp)
                    sent += 1
                self.settle()
        finally:
            mllp.close()
            self.clock.back_to_present()
        return sent

    def nightly_sweep(self) -> None:
        """What ``s117hub reconcile`` does every night: positions and exceptions as of today
        (a review falls due, a discharge stays unconfirmed), status changes queued."""
        sweep(self.hub.engine, self.hub.clock, self.hub.policy,
              on_change=enqueue_on_change(self.hub.clock.now))
        self.hub.outbound.hint()

    def settle(self) -> None:
        """Wait until the worker has applied everything received and the outbox has sent
        what is due, so the next day's clock starts from a quiet hub."""
        inbox = Inbox(self.hub.engine)
        self._wait(lambda: not inbox.pending_ids(limit=1), "the inbox to drain")
        self.hub.outbound.hint()
        self._wait(lambda: self._deliveries_due() == 0, "due deliveries to go out")

    def _deliveries_due(self) -> int:
        waiting = outbound_deliveries.c.status.in_(("pending", "sending"))
        with self.hub.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbound_deliveries)
                                    .where(waiting)).scalar_one())

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        while not done():
            if self.stop.is_set():
                return
            if time.monotonic() > deadline:
                raise DemoError(f"gave up waiting for {what}")
            time.sleep(0.02)

    # -- one step on the wire ---------------------------------------------------------------

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _send(self, step: Step, mllp: MllpSender) -> None:
        action = step.action
        self.say(f"  {step.at:%a %d %b}  {step.what}")
        if isinstance(action, Hl7Message):
            code, err = ack_code(mllp.send(action.text))
            if code != action.expect_ack:
                raise DemoError(f"HL7 {action.control_id}: ACK {code}, expected "
                                f"{action.expect_ack} {err}")
        elif isinstance(action, FhirBundle):
            self._expect(self.http.post(
                "/fhir/r4", json=action.bundle,
                headers={**self._auth(self.tokens.sources[TRUST_FHIR]),
                         "Content-Type": "application/fhir+json"}), {200, 201}, step)
        elif isinstance(action, CouncilEvents):
            self._expect(self.http.post(
                f"/api/v1/sources/{COUNCIL_REST}/events", json=action.events,
                headers=self._auth(self.tokens.sources[COUNCIL_REST])), {202}, step)
        elif isinstance(action, CsvExport):
            self._expect(self.http.post(
                f"/api/v1/sources/{COUNCIL_CSV}/csv", params={"file_name": action.file_name},
                content=action.text.encode(),
                headers={**self._auth(self.tokens.sources[COUNCIL_CSV]),
                         "Content-Type": "text/csv"}), {202}, step)
        elif isinstance(action, OpenDispute):
            self.settle()  # the person must be on the register before a dispute names them
            person_id = self.register_id(action.person)
            if person_id is None:
                raise DemoError(f"no register record for the dispute ({action.person})")
            self._expect(self.http.post("/api/v1/disputes", json={
                "person_id": person_id, "kind": action.kind, "summary": action.summary,
                "opened": action.opened.isoformat()}, headers=self._auth(
                    self.tokens.operator)), {201}, step)

    @staticmethod
    def _expect(answer: httpx.Response, statuses: set[int], step: Step) -> None:
        if answer.status_code not in statuses:
            raise DemoError(f"{step.what}: HTTP {answer.status_code} {answer.text[:500]}")
