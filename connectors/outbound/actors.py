"""Outbound work on dramatiq, declared against the broker it is given (never the global one).

    outbound_deliver(subscription_id)   drain one subscriber's due deliveries; hinted after
                                        a status change commits, by the sweeper, and (delayed)
                                        for the next retry
    outbound_sweep()                    take back dead claims, SLA warnings and breaches,
                                        hint every subscriber with work due (on demand;
                                        OutboundSweeper runs the same in its own thread)

The partner retry policy (backoff with jitter, Retry-After, attempts, dead letter) lives on
the outbox row, not in dramatiq: a broker restart (the embedded StubBroker keeps nothing)
must not lose a schedule. The actors' own dramatiq retries only cover the hub's troubles
(database unavailable) and end in nothing lost: the row is still due, the sweeper re-hints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import dramatiq
from sqlalchemy import Engine

from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.ports import Clock

from .alerts import AlertHook, OutboundMetrics
from .delivery import Deliverer
from .settings import OutboundSettings
from .transports import Transport

log = logging.getLogger(__name__)
QUEUE = "outbound"


@dataclass
class OutboundTasks:
    broker: dramatiq.Broker
    deliver: dramatiq.Actor  # type: ignore[type-arg]
    sweep: dramatiq.Actor  # type: ignore[type-arg]
    deliverer: Deliverer
    registry: SubscriptionRegistry
    metrics: OutboundMetrics

    def hint(self, subscription_ids: Iterable[str] | None = None) -> None:
        """After a commit that queued deliveries: wake a worker per subscriber (all enabled
        ones when not told which). Only a hint — the sweeper would find them anyway."""
        ids = (set(subscription_ids) if subscription_ids is not None
               else {s.subscription_id for s in self.registry.list() if s.enabled})
        for subscription_id in sorted(ids):
            self.deliver.send(subscription_id)

    def sweep_now(self) -> list[str]:
        """Sweep in this thread and hint each subscriber with work due that no drain of
        this process is already working through."""
        due = self.deliverer.sweep()
        hinted = [sid for sid in due if not self.deliverer.active(sid)]
        for subscription_id in hinted:
            self.deliver.send(subscription_id)
        return hinted

    def close(self) -> None:
        self.deliverer.close()


def register_outbound_actors(broker: dramatiq.Broker, engine: Engine, clock: Clock, *,
                             registry: SubscriptionRegistry | None = None,
                             settings: OutboundSettings | None = None,
                             transport: Transport | None = None,
                             metrics: OutboundMetrics | None = None,
                             alerts: AlertHook | None = None,
                             queue_prefix: str = "") -> OutboundTasks:
    settings = settings or OutboundSettings()
    registry = registry or SubscriptionRegistry(engine)
    metrics = metrics or OutboundMetrics()
    deliverer = Deliverer(engine, clock, registry, settings=settings, transport=transport,
                          metrics=metrics, alerts=alerts)

    def deliver(subscription_id: str) -> None:
        done = deliverer.drain(subscription_id)
        if not done.claimed:
            return  # a duplicate hint: do not breed more
        wait = deliverer.next_retry_in(subscription_id)
        if wait is not None and wait <= settings.max_delay_hint_seconds:
            deliver_actor.send_with_options(args=(subscription_id,),
                                            delay=int(wait * 1000) + 1)

    def sweep() -> None:
        for subscription_id in deliverer.sweep():
            deliver_actor.send(subscription_id)

    deliver_actor = dramatiq.actor(
        deliver, broker=broker, actor_name="outbound_deliver", queue_name=queue_prefix + QUEUE,
        max_retries=10, min_backoff=500, max_backoff=30_000)
    sweep_actor = dramatiq.actor(sweep, broker=broker, actor_name="outbound_sweep",
                                 queue_name=queue_prefix + QUEUE, max_retries=0)
    return OutboundTasks(broker=broker, deliver=deliver_actor, sweep=sweep_actor,
                         deliverer=deliverer, registry=registry, metrics=metrics)


class OutboundSweeper(threading.Thread):
    """Sweeps at start and every ``interval`` seconds, in its own thread rather than via the
    broker, so sweeps never queue up behind deliveries (or each other). One per process is
    plenty; several are harmless: each warning and breach is recorded once."""

    def __init__(self, tasks: OutboundTasks, interval: float | None = None) -> None:
        super().__init__(name="outbound-sweeper", daemon=True)
        self.tasks = tasks
        self.interval = interval or tasks.deliverer.settings.sweep_interval_seconds
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tasks.sweep_now()
            except Exception:  # the database may be down: try again next time
                log.exception("outbound sweep failed")
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()
