"""Fake partner systems for ``s117hub demo``: small HTTP receivers on free loopback ports that
record what the hub delivers and answer as a partner would, so deliveries really go out.

Each can be told to misbehave, so the demo shows what the outbox does about it: be down for
a while (503 with Retry-After: the hub retries with backoff), or refuse a person's first
document (422, "not on our case list yet": a permanent error the hub keeps as ``failed``
until an engineer retries it). ``GET /`` on a receiver lists what it holds, newest first.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DOWN_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True)
class Received:
    at: datetime
    method: str
    path: str
    idempotency_key: str | None
    body: Any


def nhs_number_of(body: Any) -> str | None:
    """The person a council status document or an EpisodeOfCare is about."""
    if not isinstance(body, dict):
        return None
    person = body.get("person")
    if isinstance(person, dict):
        return person.get("nhs_number")
    ident = (body.get("patient") or {}).get("identifier") or {}
    return ident.get("value") if isinstance(ident, dict) else None


class PartnerReceiver:
    """One partner's inbound endpoint (a council's REST API or a trust's FHIR server)."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.received: list[Received] = []
        self.refusals = 0
        self.outages = 0
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._refuse_first_for: set[str] = set()
        self._episodes: set[str] = set()  # FHIR conditional PUT: created once, then updated
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name=f"demo-partner-{name}", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def start(self) -> PartnerReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def go_down(self, seconds: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def refuse_first_document_for(self, nhs_number: str) -> None:
        with self._lock:
            self._refuse_first_for.add(nhs_number)

    def delivered(self) -> int:
        with self._lock:
            return len(self.received)

    def _answer(self, method: str, path: str, key: str | None, body: Any
                ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            if time.monotonic() < self._down_until:
                self.outages += 1
                return 503, {"Retry-After": str(DOWN_RETRY_AFTER_SECONDS)}, {
                    "error": "unavailable", "message": f"{self.name} is down for maintenance"}
            nhs = nhs_number_of(body)
            if nhs in self._refuse_first_for:
                self._refuse_first_for.discard(nhs)
                self.refusals += 1
                return 422, {}, {"error": "unknown-person",
                                 "message": "not on our case list yet: ask us, then retry"}
            self.received.append(Received(datetime.now(UTC), method, path, key, body))
            if method == "PUT":
                created = path not in self._episodes
                self._episodes.add(path)
                return (201 if created else 200), {}, body if isinstance(body, dict) else {}
            return 200, {}, {"received": True, "idempotency_key": key}

    def _listing(self) -> dict[str, Any]:
        with self._lock:
            items = [{"at": r.at.isoformat(), "method": r.method, "path": r.path,
                      "idempotency_key": r.idempotency_key, "body": r.body}
                     for r in reversed(self.received[-200:])]
        return {"partner": self.name, "received": len(self.received), "items": items}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _take(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    self._reply(400, {}, {"error": "not JSON"})
                    return
                self._reply(*partner._answer(self.command, self.path,
                                             self.headers.get("Idempotency-Key"), body))

            do_POST = do_PUT = _take

            def do_GET(self) -> None:
                self._reply(200, {}, partner._listing())

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line holds register ids; the hub's own logs suffice

        return Handler


@dataclass
class DemoPartners:
    """The partners that receive: each council's REST endpoint and a trust's FHIR server."""

    council_west: PartnerReceiver
    council_east: PartnerReceiver
    trust_fhir: PartnerReceiver

    @classmethod
    def start(cls) -> DemoPartners:
        return cls(PartnerReceiver("Westmere County Council", "/s117/status").start(),
                   PartnerReceiver("Eastbrook City Council", "/api/s117-notices").start(),
                   PartnerReceiver("Riverside trust FHIR server", "/fhir").start())

    def all(self) -> tuple[PartnerReceiver, ...]:
        return (self.council_west, self.council_east, self.trust_fhir)

    def stop(self) -> None:
        for partner in self.all():
            partner.stop()
