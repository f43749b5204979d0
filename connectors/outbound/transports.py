"""Sending one delivery to a partner, with every library error mapped to an ``Attempt``.

    Attempt.kind   what it means for the row                what produces it
    delivered      done                                       HTTP 2xx; ACK AA / CA
    transient      try again later (backoff, Retry-After)     timeouts; connection refused,
                                                              reset or dropped; HTTP 408, 425,
                                                              429, 5xx; ACK AE / CE; a reply
                                                              that is no ACK or echoes another
                                                              MSH-10
    permanent      straight to failed, response kept          any other HTTP 4xx or 3xx; ACK
                                                              AR / CR; an endpoint httpx cannot
                                                              use (bad URL, unknown scheme)

``HTTP_ERRORS`` is the one table from httpx's exception tree to our kinds; a test checks
every httpx error class is covered, so a new one in a later httpx cannot slip through as a
crash of the worker. Each request carries the delivery's idempotency key: header
``Idempotency-Key`` for HTTP, MSH-10 for HL7 (partners de-duplicate on it).
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from connectors.hl7v2.framing import FrameReader, frame
from mapping.errors import MappingError
from mapping.outbound import (
    StatusChange,
    adt_a08,
    adt_a40,
    council_document,
    episode_identifier,
    episode_of_care,
    merge_bundle,
    read_ack,
)
from register_core.adapters.outbox import Claimed
from register_core.adapters.subscriptions import SubscriptionDefinition
from register_core.services.outbound import Attempt

RETRYABLE_STATUS = frozenset({408, 425, 429})
BODY_LIMIT = 4000
MAX_RETRY_AFTER = 86_400.0

# Most specific first: the first class an error is an instance of decides.
HTTP_ERRORS: tuple[tuple[type[Exception], str, bool], ...] = (
    (httpx.TimeoutException, "timeout", True),
    (httpx.NetworkError, "network", True),
    (httpx.RemoteProtocolError, "protocol", True),  # e.g. the peer hung up mid-response
    (httpx.ProxyError, "proxy", True),
    (httpx.LocalProtocolError, "request", False),
    (httpx.UnsupportedProtocol, "endpoint", False),
    (httpx.DecodingError, "decoding", True),
    (httpx.TooManyRedirects, "redirects", False),
    (httpx.TransportError, "transport", True),
    (httpx.HTTPStatusError, "http", True),  # not raised by us (no raise_for_status)
    (httpx.InvalidURL, "endpoint", False),
    (httpx.CookieConflict, "request", False),
    (httpx.StreamError, "request", False),
    (httpx.HTTPError, "http", True),
)


class Transport(Protocol):
    def send(self, sub: SubscriptionDefinition, claimed: Claimed, change: StatusChange
             ) -> Attempt: ...

    def close(self) -> None: ...


def map_http_error(exc: Exception) -> Attempt:
    for cls, kind, transient in HTTP_ERRORS:
        if isinstance(exc, cls):
            return Attempt(kind="transient" if transient else "permanent",
                           error={"kind": kind, "message": f"{type(exc).__name__}: {exc}"[:500]})
    raise exc


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify_response(response: httpx.Response) -> Attempt:
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(kind="delivered", status_code=code)
    body = response.text[:BODY_LIMIT]
    if code in RETRYABLE_STATUS or code >= 500:
        return Attempt(kind="transient", status_code=code, body=body,
                       error={"kind": "http", "message": f"HTTP {code}"},
                       retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    return Attempt(kind="permanent", status_code=code, body=body,
                   error={"kind": "http", "message": f"HTTP {code}: will not succeed as sent"})


class HttpTransport:
    """FHIR conditional PUT (a transaction Bundle POSTed to the base when a merge touches
    the person) and council POST over httpx, one pooled client per subscriber."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self._transport = transport  # tests may inject httpx.MockTransport
        self._clients: dict[tuple[str, float], httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, sub: SubscriptionDefinition) -> httpx.Client:
        key = (sub.subscription_id, sub.retry.timeout_seconds)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                timeout = httpx.Timeout(sub.retry.timeout_seconds,
                                        connect=min(5.0, sub.retry.timeout_seconds))
                client = httpx.Client(timeout=timeout, transport=self._transport,
                                      limits=httpx.Limits(max_connections=sub.concurrency * 2),
                                      follow_redirects=False)
                self._clients[key] = client
            return client

    def send(self, sub: SubscriptionDefinition, claimed: Claimed, change: StatusChange
             ) -> Attempt:
        headers = {"Idempotency-Key": claimed.idempotency_key,
                   "X-S117-Delivery": str(claimed.id), "User-Agent": "s117hub"}
        if sub.credentials.bearer_token:
            headers["Authorization"] = f"Bearer {sub.credentials.bearer_token}"
        try:
            if sub.kind == "fhir-r4" and (change.links_changed
                                          or change.merged_into is not None):
                # A merge or un-merge: the Patient's active flag and links with the episode,
                # in one transaction at the FHIR base.
                headers["Content-Type"] = "application/fhir+json"
                headers["Accept"] = "application/fhir+json"
                response = self._client(sub).post(
                    sub.endpoint.rstrip("/"),
                    json=merge_bundle(change, sub.fhir_identifier_system), headers=headers)
            elif sub.kind == "fhir-r4":
                headers["Content-Type"] = "application/fhir+json"
                headers["Accept"] = "application/fhir+json"
                response = self._client(sub).put(
                    f"{sub.endpoint.rstrip('/')}/EpisodeOfCare",
                    params={"identifier": episode_identifier(change,
                                                             sub.fhir_identifier_system)},
                    json=episode_of_care(change, sub.fhir_identifier_system), headers=headers)
            else:
                response = self._client(sub).post(
                    sub.endpoint, json=council_document(change, claimed.idempotency_key),
                    headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict,
                httpx.StreamError) as exc:
            return map_http_error(exc)
        return classify_response(response)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


class MllpTransport:
    """ADT^A08 over MLLP (ADT^A40 for a person merged into another: the partner merges its
    record of them into the survivor's): one connection per message, the ACK read before we
    call it sent."""

    def send(self, sub: SubscriptionDefinition, claimed: Claimed, change: StatusChange
             ) -> Attempt:
        header = sub.hl7
        render = adt_a40 if change.merged_into is not None else adt_a08
        message = render(change, claimed.idempotency_key, now=datetime.now(UTC),
                          sending_application=header.sending_application,
                          sending_facility=header.sending_facility,
                          receiving_application=header.receiving_application,
                          receiving_facility=header.receiving_facility, version=header.version)
        try:
            raw = self._exchange(sub, message.encode("utf-8"))
        except TimeoutError as exc:
            return Attempt(kind="transient", error={"kind": "timeout", "message": str(exc)})
        except OSError as exc:
            return Attempt(kind="transient", error={"kind": "network",
                                                    "message": f"{type(exc).__name__}: {exc}"})
        return classify_ack(raw.decode("utf-8", errors="replace"), claimed.idempotency_key)

    def _exchange(self, sub: SubscriptionDefinition, payload: bytes) -> bytes:
        host, port = sub.mllp_address
        deadline = time.monotonic() + sub.retry.timeout_seconds
        with socket.create_connection((host, port),
                                      timeout=min(5.0, sub.retry.timeout_seconds)) as sock:
            sock.sendall(frame(payload))
            reader = FrameReader()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no ACK within the timeout")
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("the partner closed the connection before "
                                               "acknowledging")
                frames = reader.feed(data)
                if frames:
                    return frames[0]

    def close(self) -> None:
        return None


def classify_ack(raw: str, control_id: str) -> Attempt:
    try:
        ack = read_ack(raw)
    except MappingError as exc:
        return Attempt(kind="transient", body=raw[:BODY_LIMIT],
                       error={"kind": "ack", "message": exc.message})
    detail: dict[str, Any] = {"kind": "ack", "code": ack.code,
                              "message": ack.error or ack.text or ack.code}
    if ack.control_id != control_id:
        detail["message"] = f"the ACK echoes {ack.control_id!r}, not our {control_id!r}"
        return Attempt(kind="transient", body=raw[:BODY_LIMIT], error=detail)
    if ack.code in ("AA", "CA"):
        return Attempt(kind="delivered")
    if ack.code in ("AR", "CR"):
        return Attempt(kind="permanent", body=raw[:BODY_LIMIT], error=detail)
    return Attempt(kind="transient", body=raw[:BODY_LIMIT], error=detail)


class PartnerTransport:
    """Chooses the transport by subscriber kind."""

    def __init__(self, http: HttpTransport | None = None,
                 mllp: MllpTransport | None = None) -> None:
        self.http = http or HttpTransport()
        self.mllp = mllp or MllpTransport()

    def send(self, sub: SubscriptionDefinition, claimed: Claimed, change: StatusChange
             ) -> Attempt:
        if sub.kind == "hl7v2-mllp":
            return self.mllp.send(sub, claimed, change)
        return self.http.send(sub, claimed, change)

    def close(self) -> None:
        self.http.close()
        self.mllp.close()
