"""SLA alerts (a webhook, best effort, every try recorded) and the outbound metrics.

The webhook receives ``POST {url}`` with JSON::

    {"kind": "delivery-sla-warning" | "delivery-sla-breach", "delivery_id": 17,
     "subscription_id": "council-x", "person_id": "…", "status": "retrying",
     "attempts": 4, "received_at": "…", "due_at": "…", "exception_id": "…" | null,
     "raised_at": "…"}

Ids only: never an NHS number or a name; times are UTC with an offset. A webhook that is
down does not stop delivery; each try is kept in ``delivery_alerts``. An alert the webhook
did not accept (connection error, timeout, non-2xx) is marked outstanding and tried again by
later sweeps (the same ``raised_at``) until accepted or given up; only an accepted one is
marked alerted (``warning_alerted_at`` / ``breach_alerted_at``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Engine, insert

from register_core.adapters import outbox
from register_core.adapters.tables import delivery_alerts

log = logging.getLogger(__name__)


class OutboundMetrics:
    """Counters on a registry of our own (nothing registered globally at import)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.attempts = Counter(
            "s117hub_outbound_attempts", "Delivery attempts by subscriber and outcome",
            ["subscription", "outcome"], registry=self.registry)
        self.sla_breaches = Counter(
            "s117hub_outbound_sla_breaches", "Deliveries that missed the 5-working-day SLA",
            ["subscription"], registry=self.registry)
        self.sla_warnings = Counter(
            "s117hub_outbound_sla_warnings", "Deliveries close to the SLA deadline",
            ["subscription"], registry=self.registry)
        self.alerts = Counter(
            "s117hub_outbound_alerts", "SLA alert webhook calls by kind and result",
            ["kind", "result"], registry=self.registry)
        self.attempt_seconds = Histogram(
            "s117hub_outbound_attempt_seconds", "Time one delivery attempt took",
            ["subscription"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def _iso(value: Any) -> Any:
    return outbox.utc(value).isoformat() if isinstance(value, datetime) else value


class AlertHook:
    def __init__(self, engine: Engine, url: str | None, *, timeout: float = 5.0,
                 metrics: OutboundMetrics | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.engine = engine
        self.url = url
        self.timeout = timeout
        self.metrics = metrics
        self._transport = transport

    def fire(self, kind: str, delivery: dict[str, Any], now: datetime,
             exception_id: str | None = None, raised_at: datetime | None = None) -> bool:
        """POST the alert (when a URL is configured) and record it; True when accepted, and
        then the delivery is marked alerted in the same transaction as the record.
        ``raised_at``: when the warning or breach was raised (a retry); default ``now``."""
        short = kind.rsplit("-", 1)[-1]  # warning | breach
        payload = {"kind": kind, "delivery_id": delivery["id"],
                   "subscription_id": delivery["subscription_id"],
                   "person_id": delivery["person_id"], "status": delivery["status"],
                   "attempts": delivery["attempts"],
                   "received_at": _iso(delivery["received_at"]),
                   "due_at": _iso(delivery["due_at"]), "exception_id": exception_id,
                   "raised_at": _iso(raised_at or now)}
        status_code: int | None = None
        error: str | None = None
        if self.url:
            try:
                with httpx.Client(timeout=self.timeout, transport=self._transport) as client:
                    status_code = client.post(self.url, json=payload).status_code
                if status_code >= 300:
                    error = f"HTTP {status_code}"
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        else:
            error = "no alert webhook configured"
        ok = error is None
        if self.metrics:
            self.metrics.alerts.labels(kind, "sent" if ok else "failed").inc()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(delivery_alerts).values(
                    delivery_id=delivery["id"], kind=short, url=self.url,
                    at=now, status_code=status_code, error=error, payload=payload))
                if ok:
                    outbox.alert_accepted(conn, delivery["id"], short, now)
        except Exception:  # best effort: a lost alert record must not stop delivery
            log.exception("could not record an SLA alert")
        if not ok and self.url:  # ids and the failure only: the payload names a person
            log.warning("SLA alert not accepted; a later sweep tries again",
                        extra={"delivery_id": delivery["id"], "alert": short,
                               "status_code": status_code})
        return ok
