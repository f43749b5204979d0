"""Background work on dramatiq: the broker from settings, actors declared against it
explicitly (never dramatiq's implicit global broker), and the in-process worker of the
embedded default.

Dramatiq messages are only hints: the inbox rows are the truth, and the sweeper re-issues a
hint for every partition that still has unprocessed rows (after a crash or a lost message).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, text

from register_core.adapters.inbox import PARTITIONS, Inbox
from register_core.domain.position import Policy
from register_core.ports import Clock
from register_core.services.inbound import Mapper, drain

log = logging.getLogger(__name__)


def build_broker(url: str) -> dramatiq.Broker:
    if url.startswith("stub"):
        return StubBroker()
    if url.startswith("amqp"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    if url.startswith("redis"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url)
    raise ValueError(f"S117HUB_BROKER_URL: no broker for {url!r} (stub://, amqp://, redis://)")


class PartitionLocks:
    """One drainer per partition at a time: a thread lock in this process and, on
    PostgreSQL, an advisory lock so worker processes on other hosts agree too."""

    _LOCK_BASE = 117_000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = [threading.Lock() for _ in range(PARTITIONS)]

    @contextlib.contextmanager
    def hold(self, partition: int) -> Iterator[bool]:
        local = self._local[partition]
        if not local.acquire(blocking=False):
            yield False
            return
        try:
            if self.engine.dialect.name != "postgresql":
                yield True
                return
            with self.engine.connect() as conn:
                key = self._LOCK_BASE + partition
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                conn.commit()
                try:
                    yield bool(got)
                finally:
                    if got:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
        finally:
            local.release()


@dataclass
class Tasks:
    broker: dramatiq.Broker
    process_partition: dramatiq.Actor  # type: ignore[type-arg]
    sweep: dramatiq.Actor  # type: ignore[type-arg]

    def notify(self, partition: int) -> None:
        self.process_partition.send(partition)


def register_actors(broker: dramatiq.Broker, engine: Engine, clock: Clock, policy: Policy,
                    mapper: Mapper) -> Tasks:
    locks = PartitionLocks(engine)
    inbox = Inbox(engine)

    def process_partition(partition: int) -> None:
        # Drain, release, then look again: a message stored while we held the lock had its
        # hint dropped, and must not wait for the sweeper.
        while True:
            with locks.hold(partition) as mine:
                if not mine:
                    return
                drain(engine, mapper, clock, policy, partition=partition)
            if not inbox.pending_ids(partition=partition, limit=1):
                return

    def sweep() -> None:
        for partition in inbox.pending_partitions():
            process_partition_actor.send(partition)

    process_partition_actor = dramatiq.actor(
        process_partition, broker=broker, actor_name="process_partition", queue_name="inbound",
        max_retries=20, min_backoff=200, max_backoff=30_000)
    sweep_actor = dramatiq.actor(sweep, broker=broker, actor_name="sweep_inbox",
                                 queue_name="inbound", max_retries=0)
    return Tasks(broker=broker, process_partition=process_partition_actor, sweep=sweep_actor)


def start_worker(broker: dramatiq.Broker, threads: int = 2) -> dramatiq.Worker:
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


class Sweeper(threading.Thread):
    """Re-issues hints for unprocessed inbox rows at start and every ``interval`` seconds."""

    def __init__(self, tasks: Tasks, interval: float = 30.0) -> None:
        super().__init__(name="inbox-sweeper", daemon=True)
        self.tasks = tasks
        self.interval = interval
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tasks.sweep.send()
            except Exception:
                log.exception("sweeper could not enqueue")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
