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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine, text

from register_core.adapters.inbox import PARTITIONS, Inbox
from register_core.domain.position import Policy
from register_core.ports import Clock
from register_core.services.inbound import Mapper, drain

log = logging.getLogger(__name__)

# The drainer waits this long after a hint before it drains, so a batch gathers what arrives
# meanwhile: the commit is the costly part of a batch (SQLite writes each touched page to
# the WAL, PostgreSQL flushes its WAL), and a drainer that kept up message by message spent
# the CPU the MLLP listener needed. It delays the register by at most this, never the ACK.
# A per-partition drainer sleeps in one of the worker's few threads, so its wait is short;
# SQLite's one drainer of every partition waits longer (the MLLP listener stores freely
# meanwhile): batches of ~40 instead of ~10, about a fifth less hub CPU per message.
LINGER_SECONDS = 0.02
ONE_DRAINER_LINGER_SECONDS = 0.1


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


class Hints:
    """Drops a hint for a partition that already has one queued and not yet taken.

    Only for the in-process broker, where the actor runs here and says when it takes a
    partition; with RabbitMQ or Redis the actor runs elsewhere and every hint is sent. A
    message stored before the actor took the partition is seen by its drain, one stored
    after gets a hint of its own: none waits for the sweeper. Without this, a listener
    faster than the worker queued one dramatiq message per inbox row.
    """

    def __init__(self, coalesce: bool) -> None:
        self.coalesce = coalesce
        self._queued: set[int] = set()
        self._lock = threading.Lock()

    def should_send(self, key: int) -> bool:
        if not self.coalesce:
            return True
        with self._lock:
            if key in self._queued:
                return False
            self._queued.add(key)
            return True

    def taken(self, key: int) -> None:
        with self._lock:
            self._queued.discard(key)


class HintPump:
    """Sends a remote broker's hints from a thread of its own, one per partition for all
    the rows stored in the same ``window``.

    With RabbitMQ or Redis a hint per inbox row was a publish on the MLLP listener's event
    loop (about a quarter of the listener's time) and a dramatiq message per row for the
    workers to take, lock the partition for and mostly find already drained. Gathered, a
    partition gets one hint per window (the drainer lingers as long anyway), sent off the
    loop. A hint is never dropped, only delayed by the window; one that fails to send is
    left to the sweeper, as before. Started on first use; ``close`` sends what is pending.
    """

    def __init__(self, send: Callable[[int], object], window: float) -> None:
        self._send = send
        self.window = window
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, key: int) -> None:
        with self._lock:
            self._pending.add(key)
            if self._thread is None and not self._closing.is_set():
                self._thread = threading.Thread(target=self._run, name="hint-pump",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            self._closing.wait(self.window)  # gather what else is stored meanwhile
            self._wake.clear()  # before taking the pending set: a later key wakes us again
            self.flush()

    def flush(self) -> None:
        with self._lock:
            keys, self._pending = self._pending, set()
        for key in sorted(keys):
            try:
                self._send(key)
            except Exception:  # the broker may be down: the sweeper re-issues the hint
                log.exception("inbox hint not sent")

    def close(self) -> None:
        with self._lock:
            self._closing.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(5)
        self.flush()


@dataclass
class Tasks:
    broker: dramatiq.Broker
    process_partition: dramatiq.Actor  # type: ignore[type-arg]
    sweep: dramatiq.Actor  # type: ignore[type-arg]
    hints: Hints = field(default_factory=lambda: Hints(coalesce=False))
    one_drainer: bool = False  # SQLite: every partition drained by one drainer (key 0)
    pump: HintPump | None = None  # a remote broker's hints, gathered per window

    def notify(self, partition: int) -> None:
        key = 0 if self.one_drainer else partition
        if self.pump is not None:
            self.pump.notify(key)
        elif self.hints.should_send(key):
            self.process_partition.send(key)

    def close(self) -> None:
        if self.pump is not None:
            self.pump.close()


def register_actors(broker: dramatiq.Broker, engine: Engine, clock: Clock, policy: Policy,
                    mapper: Mapper, *, queue_prefix: str = "") -> Tasks:
    locks = PartitionLocks(engine)
    inbox = Inbox(engine)
    hints = Hints(coalesce=isinstance(broker, StubBroker))
    # SQLite takes one writer at a time, so drainers of different partitions only queue for
    # its lock; one drainer of all partitions (in id order, so each person's messages stay
    # in order) batches whatever is waiting, where per-partition batches were mostly of one.
    # (On PostgreSQL per-partition drainers already batch 15-20 messages in the benchmark,
    # and two of them overlap one's round trips with the other's work; one drainer of all
    # partitions, tried, was no cheaper per message and applied more slowly.)
    one_drainer = engine.dialect.name == "sqlite"
    linger = ONE_DRAINER_LINGER_SECONDS if one_drainer else LINGER_SECONDS

    def process_partition(partition: int) -> None:
        try:
            _drain_partition(partition)
        except BaseException:
            hints.taken(partition)  # so that the next message hints again, not only a retry
            raise

    def _drain_partition(partition: int) -> None:
        target = None if one_drainer else partition
        # Drain, release, then look again: a message stored while we held the lock had its
        # hint dropped, and must not wait for the sweeper.
        while True:
            with locks.hold(partition) as mine:
                if mine and linger:
                    time.sleep(linger)
                hints.taken(partition)  # from here on, a new message sends a new hint
                if not mine:
                    return
                drain(engine, mapper, clock, policy, partition=target)
            if not inbox.pending_ids(partition=target, limit=1):
                return

    def sweep() -> None:
        for partition in ([0] if one_drainer else inbox.pending_partitions()):
            process_partition_actor.send(partition)

    process_partition_actor = dramatiq.actor(
        process_partition, broker=broker, actor_name="process_partition",
        queue_name=f"{queue_prefix}inbound",
        max_retries=20, min_backoff=200, max_backoff=30_000)
    sweep_actor = dramatiq.actor(sweep, broker=broker, actor_name="sweep_inbox",
                                 queue_name=f"{queue_prefix}inbound", max_retries=0)
    remote = not isinstance(broker, StubBroker)
    return Tasks(broker=broker, process_partition=process_partition_actor, sweep=sweep_actor,
                 hints=hints, one_drainer=one_drainer,
                 pump=HintPump(process_partition_actor.send, LINGER_SECONDS) if remote else None)


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
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tasks.sweep.send()
            except Exception:
                log.exception("sweeper could not enqueue")
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()

