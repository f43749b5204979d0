"""Real partner systems on loopback for outbound tests and the benchmark: an HTTP server
(FHIR or council) and an MLLP receiver, each on port 0 in threads, misbehaving on cue.

Both keep what a careful partner keeps: every request (``requests``), and the *effects* —
the first arrival of each idempotency key, in order (``effects``); a repeat key is
acknowledged and not applied again. ``script(n, key)`` decides the n-th request's fate.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hl7

from connectors.hl7v2.framing import FrameReader, frame


@dataclass(frozen=True)
class Act:
    """What to do with one request: answer ``status`` (after ``delay`` seconds), or drop
    the connection. ``apply``: whether the partner stored it before answering."""

    status: int = 200
    delay: float = 0.0
    drop: bool = False
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    apply: bool = True


OK = Act()
Script = Callable[[int, str], Act]


def always(act: Act) -> Script:
    return lambda _n, _key: act


def sequence(*acts: Act, then: Act = OK) -> Script:
    """The first requests get ``acts`` in turn, every later one ``then``."""
    return lambda n, _key: acts[n] if n < len(acts) else then


@dataclass
class Effect:
    key: str
    person: str
    change_id: int
    payload: Any


@dataclass
class Recorder:
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arrive(self, key: str, headers: dict[str, str], payload: Any) -> int:
        with self._lock:
            self.requests.append((key, headers, payload))
            return len(self.requests) - 1

    def apply(self, key: str, person: str, change_id: int, payload: Any) -> None:
        with self._lock:
            if key not in self._keys:
                self._keys.add(key)
                self.effects.append(Effect(key, person, change_id, payload))

    def keys_applied(self) -> list[str]:
        with self._lock:
            return [e.key for e in self.effects]

    def by_person(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        with self._lock:
            for e in self.effects:
                out.setdefault(e.person, []).append(e.change_id)
        return out


class HttpPartner:
    """A FHIR server (conditional PUT) or a council endpoint (POST), per its requests."""

    def __init__(self, script: Script = always(OK)) -> None:
        self.script = script
        self.recorder = Recorder()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                key = self.headers.get("Idempotency-Key", "")
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers["path"] = self.path
                n = partner.recorder.arrive(key, headers, payload)
                act = partner.script(n, key)
                if act.apply and not act.drop and act.status < 300:
                    partner.recorder.apply(key, *_who(payload), payload)
                if act.delay:
                    time.sleep(act.delay)
                if act.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = (act.body or json.dumps({"ok": act.status < 300})).encode()
                self.send_response(act.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in act.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_PUT = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HttpPartner:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _who(payload: Any) -> tuple[str, int]:
    """(register id, change id) from a council document or a FHIR EpisodeOfCare or merge
    Bundle (which carry no change id: 0, and tests look the key up in the outbox)."""
    if payload.get("resourceType") == "Bundle":
        [payload] = [e["resource"] for e in payload["entry"]
                     if e["resource"]["resourceType"] == "EpisodeOfCare"]
    if payload.get("resourceType") == "EpisodeOfCare":
        return payload["identifier"][0]["value"], 0
    if "person" not in payload:  # e.g. an SLA alert
        return str(payload.get("person_id")), 0
    return payload["person"]["register_id"], int(payload["change_id"])


class MllpPartner:
    """An MLLP receiver answering ACKs (AA, AE, AR), slowly, or by hanging up."""

    def __init__(self, script: Script = always(OK)) -> None:
        self.script = script
        self.recorder = Recorder()
        partner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                reader = FrameReader()
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    for raw in reader.feed(data):
                        if not partner._answer(self.request, raw.decode()):
                            return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _answer(self, sock: socket.socket, text: str) -> bool:
        message = hl7.parse(text.replace("\n", "\r"))
        control_id = str(message.segment("MSH")[10])
        # The register id: PID-3's S117HUB repetition (an A40's PID is the survivor: the
        # effect is the merged record's, named in MRG-1). ZSE-11 is the change id (no ZSE
        # in an A40: 0, and tests look the key up in the outbox).
        merge = str(message.segment("MSH")[9][0][1]) == "A40"
        ids = message.segment("MRG" if merge else "PID")[1 if merge else 3]
        person = next(str(rep[0]) for rep in ids if str(rep[3]) == "S117HUB")
        change_id = 0 if merge else int(str(message.segment("ZSE")[11]))
        n = self.recorder.arrive(control_id, {}, text)
        act = self.script(n, control_id)
        code = {200: "AA", 201: "AA", 400: "AR"}.get(act.status, "AE")
        if act.apply and not act.drop and code == "AA":
            self.recorder.apply(control_id, person, change_id, text)
        if act.delay:
            time.sleep(act.delay)
        if act.drop:
            sock.shutdown(socket.SHUT_RDWR)
            return False
        ack = (f"MSH|^~\\&|PAS|RX2|S117HUB|HUB|20260601090000||ACK^A08^ACK|A{n}|P|2.4\r"
               f"MSA|{code}|{control_id}|{act.body}\r")
        sock.sendall(frame(ack.encode()))
        return True

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MllpPartner:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
