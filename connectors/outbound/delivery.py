"""The delivery loop: claim due deliveries of one subscriber, send them, record outcomes.

Each round claims at most ``concurrency`` deliveries — each the head of its person's queue —
sends them in parallel, and records every outcome in one transaction guarded by the claim
token. Any number of these loops (threads, processes, hosts) may run for one subscriber:
claims never overlap, and a person's next change is claimable only once the previous one
is delivered or failed. A worker that dies mid-send leaves a ``sending`` row whose lease the
sweeper takes back; the partner may then see the same idempotency key twice, never a
change out of order.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from register_core.adapters import outbox
from register_core.adapters.database import writer
from register_core.adapters.subscriptions import SubscriptionDefinition, SubscriptionRegistry
from register_core.ports import Clock
from register_core.services.outbound import (
    Attempt,
    alert_retry_delay,
    check_sla,
    outcome,
    outstanding_alert,
    render_change,
)

from .alerts import AlertHook, OutboundMetrics
from .settings import OutboundSettings
from .transports import PartnerTransport, Transport

log = logging.getLogger(__name__)


@dataclass
class Round:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


class Deliverer:
    def __init__(self, engine: Engine, clock: Clock, registry: SubscriptionRegistry, *,
                 settings: OutboundSettings | None = None, transport: Transport | None = None,
                 metrics: OutboundMetrics | None = None,
                 alerts: AlertHook | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.registry = registry
        self.settings = settings or OutboundSettings()
        self.transport = transport or PartnerTransport()
        self.metrics = metrics or OutboundMetrics()
        self.alerts = alerts or AlertHook(engine, self.settings.alert_webhook_url,
                                          timeout=self.settings.alert_timeout_seconds,
                                          metrics=self.metrics)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._active: dict[str, int] = {}  # drains running in this process, per subscriber

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=64,
                                                thread_name_prefix="outbound-send")
            return self._pool

    def active(self, subscription_id: str) -> int:
        with self._pool_lock:
            return self._active.get(subscription_id, 0)

    def drain(self, subscription_id: str, max_rounds: int | None = None) -> Round:
        """Deliver until nothing of this subscriber is due. Returns what was done."""
        with self._pool_lock:
            self._active[subscription_id] = self._active.get(subscription_id, 0) + 1
        try:
            return self._drain(subscription_id, max_rounds)
        finally:
            with self._pool_lock:
                self._active[subscription_id] -= 1

    def _drain(self, subscription_id: str, max_rounds: int | None) -> Round:
        total = Round()
        rounds = 0
        while max_rounds is None or rounds < max_rounds:
            sub = self.registry.get(subscription_id)
            if sub is None or not sub.enabled:
                return total
            done = self.run_round(sub)
            rounds += 1
            if not done.claimed:
                return total
            for name in ("claimed", "delivered", "retrying", "failed"):
                setattr(total, name, getattr(total, name) + getattr(done, name))
        return total

    def run_round(self, sub: SubscriptionDefinition) -> Round:
        now = self.clock.now()
        lease = max(self.settings.lease_seconds, 2 * sub.retry.timeout_seconds + 10)
        limit = min(self.settings.batch_size, sub.concurrency)
        with writer(self.engine) as conn, conn.begin():
            claimed = outbox.claim(conn, sub.subscription_id, now=now,
                                   lease_until=now + timedelta(seconds=lease), limit=limit)
        if not claimed:
            return Round()
        if len(claimed) == 1:
            attempts = [self._attempt(sub, claimed[0])]
        else:
            attempts = list(self._executor().map(lambda c: self._attempt(sub, c), claimed))
        return self._record(sub, claimed, attempts)

    def _attempt(self, sub: SubscriptionDefinition, claimed: outbox.Claimed) -> Attempt:
        started = time.perf_counter()
        try:
            return self.transport.send(sub, claimed, render_change(claimed))
        except Exception as exc:  # a bug must not strand the claim until its lease ends
            log.exception("delivery attempt crashed", extra={"delivery_id": claimed.id})
            return Attempt(kind="transient", error={"kind": "internal",
                                                    "message": type(exc).__name__})
        finally:
            self.metrics.attempt_seconds.labels(sub.subscription_id).observe(
                time.perf_counter() - started)

    def _record(self, sub: SubscriptionDefinition, claimed: list[outbox.Claimed],
                attempts: list[Attempt]) -> Round:
        now = self.clock.now()
        results = [outcome(c, a, sub.retry, now) for c, a in zip(claimed, attempts, strict=True)]
        late = [c.id for c, r in zip(claimed, results, strict=True)
                if r.status == "delivered" and outbox.aware(c.due_at) < now]
        with writer(self.engine) as conn, conn.begin():
            kept = set(outbox.record(conn, results, now))
            events = (check_sla(conn, now, timedelta(0), self._names(), late_delivered=late,
                                scan=False, alert_retry_in=self._alert_retry_in())
                      if late else None)
        done = Round(claimed=len(claimed))
        for result in results:
            if result.id not in kept:
                continue
            self.metrics.attempts.labels(sub.subscription_id, result.status).inc()
            if result.status == "failed":
                log.warning("delivery failed", extra={"delivery_id": result.id,
                                                      "subscription": sub.subscription_id})
            setattr(done, result.status, getattr(done, result.status) + 1)
        if events:
            self._alert(events.breaches, [], now)
        return done

    def _names(self) -> dict[str, str]:
        return {s.subscription_id: s.display_name or s.subscription_id
                for s in self.registry.list()}

    def sweep(self) -> list[str]:
        """Take back dead claims, raise SLA warnings and breaches, try again alerts the
        webhook did not accept; return the subscribers with work due now (for the caller
        to hint)."""
        now = self.clock.now()
        warn_before = timedelta(hours=self.settings.alert_warning_hours)
        with writer(self.engine) as conn, conn.begin():
            released = outbox.release_expired(conn, now)
            events = check_sla(conn, now, warn_before, self._names(),
                               alert_retry_in=self._alert_retry_in())
        if released:
            log.info("took back expired delivery claims", extra={"count": released})
        self._alert(events.breaches, events.warnings, now)
        self.retry_alerts(now)
        enabled = [s.subscription_id for s in self.registry.list() if s.enabled]
        with self.engine.connect() as conn:
            return outbox.due_subscriptions(conn, now, enabled)

    def next_retry_in(self, subscription_id: str) -> float | None:
        """Seconds until this subscriber's earliest waiting delivery is due (None: none)."""
        with self.engine.connect() as conn:
            when = outbox.next_attempt_at(conn, subscription_id)
        if when is None:
            return None
        return max(0.0, (outbox.aware(when) - self.clock.now()).total_seconds())

    def _alert_retry_least(self) -> float:
        # A try's claim must outlast the call, or a second sweeper could send it as well.
        return max(self.settings.alert_retry_min_seconds,
                   self.settings.alert_timeout_seconds + 1.0)

    def _alert_retry_in(self) -> timedelta | None:
        """How soon an alert raised now is tried again if not accepted (None: no webhook)."""
        if not self.alerts.url:
            return None
        return timedelta(seconds=self._alert_retry_least())

    def retry_alerts(self, now: datetime, limit: int = 50) -> int:
        """Send again the outstanding alerts whose next try is due, longest waiting first;
        the tries of one alert double apart up to ``alert_retry_max_seconds``, and one not
        accepted within ``alert_retry_hours`` is given up. The first try the webhook does
        not accept ends this round (it is down: the rest wait for a later sweep), so a
        webhook that stays down gets at most one call per sweep. Returns alerts accepted."""
        if not self.alerts.url:
            return 0
        give_up = timedelta(hours=self.settings.alert_retry_hours)
        with self.engine.connect() as conn:
            rows = outbox.alerts_due(conn, now, limit)
            exceptions = outbox.breach_exception_ids(
                conn, [int(r["id"]) for r in rows if r["breached_at"] is not None])
        accepted = 0
        for row in rows:
            pending = outstanding_alert(row, now)
            if pending is None or now - pending[1] > give_up:
                with writer(self.engine) as conn, conn.begin():
                    outbox.drop_alert(conn, row["id"], now)
                if pending is not None:
                    log.warning("SLA alert given up: never accepted",
                                extra={"delivery_id": row["id"], "alert": pending[0]})
                continue
            kind, raised_at = pending
            delay = alert_retry_delay(now - raised_at, self._alert_retry_least(),
                                      self.settings.alert_retry_max_seconds)
            with writer(self.engine) as conn, conn.begin():
                if not outbox.claim_alert(conn, row["id"], now, now + delay):
                    continue  # another sweeper is trying it
            if not self.alerts.fire(f"delivery-sla-{kind}", row, now,
                                    exceptions.get(row["id"]) if kind == "breach" else None,
                                    raised_at=raised_at):
                break
            accepted += 1
        return accepted

    def _alert(self, breaches: list[tuple[dict[str, object], str]],
               warnings: list[dict[str, object]], now: datetime) -> None:
        for row in warnings:
            self.metrics.sla_warnings.labels(str(row["subscription_id"])).inc()
            self.alerts.fire("delivery-sla-warning", row, now)
        for row, exception_id in breaches:
            self.metrics.sla_breaches.labels(str(row["subscription_id"])).inc()
            log.warning("delivery SLA breached", extra={"delivery_id": row["id"]})
            self.alerts.fire("delivery-sla-breach", row, now, exception_id)

    def close(self) -> None:
        self.transport.close()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None
