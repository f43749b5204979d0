"""Outbound delivery throughput and latency: N status changes to 3 subscribers (one slow,
one flaky, one fast) with 1 and with 4 worker processes on PostgreSQL.

    # throughput: queue all changes first, then start the workers
    python benchmarks/outbound.py --changes 50000 --workers 1 4 --backlog
    # latency: queue at a steady rate below capacity while the workers run
    python benchmarks/outbound.py --changes 10000 --workers 1 4 --rate 50
        [--pg-url postgresql+psycopg://root@127.0.0.1:5432/test] \
        [--broker stub:// | amqp://guest:guest@127.0.0.1:5672/] [--hl7]

Each run gets a fresh database. The partners are real servers on loopback in this process
(threads): ``slow`` answers after ``--slow-ms``, ``flaky`` answers 503 (with Retry-After: 0)
to one request in ``--flaky-every`` and hangs up on one in ten of those; ``fast`` answers at
once (``--hl7``: an MLLP receiver instead, ADT^A08 built with hl7apy). A producer queues the
changes through ``enqueue_status_changes`` (``--batch`` per transaction) while the workers
deliver; each worker process runs the dramatiq worker, the outbound actors and a sweeper
(``stub://``: a broker per process, woken by its sweeper; ``amqp://``: one shared queue and
a hint after every producer batch).

Reported per run: deliveries per second (first change queued, or the workers' start with
``--backlog``, → last delivered), p50/p95/max change-to-delivered latency (``delivered_at -
outbound_changes.created_at``; from the workers' start with ``--backlog``), requests on
the wire vs effects, and the checks: nothing lost, one effect per idempotency key, each
partner saw every person's changes in order.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.outbound.actors import (
    OutboundSweeper,
    register_outbound_actors,
)
from connectors.outbound.settings import OutboundSettings
from register_core.adapters.database import make_engine
from register_core.adapters.subscriptions import SubscriptionDefinition, SubscriptionRegistry
from register_core.adapters.tables import (
    outbound_changes,
    outbound_deliveries,
    persons,
)
from register_core.domain.nhs_number import make_synthetic
from register_core.domain.position import Entitlement, Position
from register_core.ports import SystemClock
from register_core.services.handlers import Applied
from register_core.services.outbound import enqueue_status_changes
from s117hub.worker import build_broker, start_worker
from tests.unit.outbound.partners import Act, HttpPartner, MllpPartner

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from register_apply import postgres_database

DEFAULT_PG_URL = os.environ.get("S117HUB_BENCH_PG_URL",
                                "postgresql+psycopg://root@127.0.0.1:5432/test")
STATUSES = ("pending", "active", "ended", "active")
RETRY = {"max_attempts": 50, "min_backoff_seconds": 0.05, "max_backoff_seconds": 1.0,
         "timeout_seconds": 5.0}


def worker_process(url: str, broker_url: str, threads: int, stop: Any) -> None:
    engine = make_engine(url)
    broker = build_broker(broker_url)
    settings = OutboundSettings(sweep_interval_seconds=0.2, batch_size=16, lease_seconds=30)
    tasks = register_outbound_actors(broker, engine, SystemClock(), settings=settings)
    worker = start_worker(broker, threads=threads)
    sweeper = OutboundSweeper(tasks)
    sweeper.start()
    stop.wait()
    sweeper.stop()
    worker.stop()
    tasks.close()
    broker.close()
    engine.dispose()


def flaky_script(every: int) -> Any:
    def script(n: int, _key: str) -> Act:
        if n % every != every - 1:
            return Act()
        if n % (every * 10) == every * 10 - 1:
            return Act(drop=True, apply=False)
        return Act(status=503, headers=(("Retry-After", "0"),))
    return script


def position(status: str, n: int) -> Position:
    return Position(as_of=date(2026, 6, 1), detentions=[], legal_status_events=[],
                    entitlement=Entitlement(status=status,  # type: ignore[arg-type]
                                            start=date(2026, 3, 1),
                                            responsible_council="E10000034",
                                            responsible_icb="QGH", trigger_section="03"),
                    on_cto=False, conditionally_discharged=False, in_hospital=False,
                    reviews=[], charges_under_s117=[], refused_endings=[],
                    child_notified=None, explain={})


def produce(engine: sqlalchemy.Engine, subs: list[SubscriptionDefinition], changes: int,
            people: int, batch: int, hint: Any, threads: int = 4, rate: float = 0.0
            ) -> float:
    """Queue ``changes`` status changes from ``threads`` producers (each owns a share of
    the people, so a person's changes are queued in order); returns the seconds taken."""
    clock = SystemClock()
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(insert(persons), [
            {"id": f"p-{i:06d}", "nhs_number": make_synthetic(i), "family_name": "Bench",
             "given_name": "Robin", "birth_date": date(1980, 2, 2), "version": 1,
             "created_at": now, "updated_at": now} for i in range(people)])

    def producer(share: int) -> None:
        mine = [i for i in range(changes) if (i % people) % threads == share]
        began = time.perf_counter()
        for first in range(0, len(mine), batch):
            if rate:  # paced: this producer's share of ``rate`` changes per second
                ahead = first / (rate / threads) - (time.perf_counter() - began)
                if ahead > 0:
                    time.sleep(ahead)
            with engine.begin() as conn:
                for i in mine[first:first + batch]:
                    person, round_no = i % people, i // people
                    old = STATUSES[(round_no - 1) % 4] if round_no else None
                    new = STATUSES[round_no % 4]
                    applied = Applied(person_id=f"p-{person:06d}", fact_seq=round_no + 1,
                                      created=False, changes=[("entitlement.status", old, new)],
                                      position=position(new, i))
                    at = clock.now()
                    enqueue_status_changes(conn, applied, at, at, subscriptions=subs)
            if hint is not None:
                hint()

    started = time.perf_counter()
    pool = [threading.Thread(target=producer, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started


def run(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    slow = HttpPartner(lambda n, k: Act(delay=args.slow_ms / 1000))
    flaky = HttpPartner(flaky_script(args.flaky_every))
    fast: HttpPartner | MllpPartner = MllpPartner() if args.hl7 else HttpPartner()
    with slow, flaky, fast, postgres_database(args.pg_url) as url:
        third = (("fast", "hl7v2-mllp", fast.endpoint) if isinstance(fast, MllpPartner)
                 else ("fast", "council-rest", f"{fast.url}/s117"))
        subs = [SubscriptionDefinition.model_validate(
                    {"subscription_id": sid, "kind": kind, "endpoint": endpoint,
                     "retry": RETRY, "concurrency": 16})
                for sid, kind, endpoint in (("slow", "fhir-r4", f"{slow.url}/fhir"),
                                            ("flaky", "council-rest", f"{flaky.url}/s117"),
                                            third)]
        engine = make_engine(url)
        registry = SubscriptionRegistry(engine)
        for s in subs:
            registry.save(s, SystemClock().now())
        ctx = multiprocessing.get_context("spawn")
        stop = ctx.Event()
        procs = [ctx.Process(target=worker_process, args=(url, args.broker, args.threads, stop))
                 for _ in range(workers)]
        if not args.backlog:
            for p in procs:
                p.start()
        hint = None
        producer_broker = None
        if not args.broker.startswith("stub"):
            producer_broker = build_broker(args.broker)
            tasks = register_outbound_actors(producer_broker, engine, SystemClock(),
                                             registry=registry)
            hint = tasks.hint
        time.sleep(0 if args.backlog else 2.0)  # let the workers start
        began = time.time()
        produce_seconds = produce(engine, subs, args.changes, args.people, args.batch, hint,
                                  args.producers, args.rate)
        if args.backlog:
            backlog_start = SystemClock().now()
            for p in procs:
                p.start()
        expected = args.changes * len(subs)
        while True:
            with engine.connect() as conn:
                done = conn.execute(select(func.count()).select_from(outbound_deliveries)
                                    .where(outbound_deliveries.c.status == "delivered")
                                    ).scalar_one()
            if done >= expected or time.time() - began > args.timeout:
                break
            time.sleep(0.25)
        stop.set()
        for p in procs:
            p.join(30)
        if producer_broker is not None:
            producer_broker.close()
        figures = measure(engine, subs, {"slow": slow, "flaky": flaky, "fast": fast},
                          backlog_start if args.backlog else None)
        engine.dispose()
    return {"workers": workers, "produce_seconds": produce_seconds, **figures}


def measure(engine: sqlalchemy.Engine, subs: list[SubscriptionDefinition],
            partners: dict[str, Any], since: Any = None) -> dict[str, Any]:
    """Figures from the outbox; ``since`` (backlog mode): when the workers were started,
    the start of both the rate's span and every latency."""
    d, c = outbound_deliveries, outbound_changes
    with engine.connect() as conn:
        rows = conn.execute(select(d.c.subscription_id, d.c.person_id, d.c.change_id,
                                   d.c.idempotency_key, d.c.status, d.c.attempts,
                                   c.c.created_at, d.c.delivered_at)
                            .join(c, c.c.id == d.c.change_id)).all()
    delivered = [r for r in rows if r.status == "delivered"]
    latencies = sorted((r.delivered_at - max(r.created_at, since or r.created_at))
                       .total_seconds() for r in delivered)
    first = since or min(r.created_at for r in rows)
    last = max(r.delivered_at for r in delivered)
    span = (last - first).total_seconds()
    checks: dict[str, Any] = {}
    for s in subs:
        partner = partners[s.subscription_id]
        mine = sorted((r for r in rows if r.subscription_id == s.subscription_id),
                      key=lambda r: r.change_id)
        by_key = {r.idempotency_key: r for r in mine}
        effects = partner.recorder.effects
        order: dict[str, list[int]] = {}
        for e in effects:
            order.setdefault(e.person, []).append(by_key[e.key].change_id)
        expected: dict[str, list[int]] = {}
        for r in mine:
            expected.setdefault(r.person_id, []).append(r.change_id)
        checks[s.subscription_id] = {
            "deliveries": len(mine), "effects": len(effects),
            "requests": len(partner.recorder.requests),
            "lost": len(set(by_key) - {e.key for e in effects}),
            "in_order": order == expected}
    return {"deliveries": len(rows), "delivered": len(delivered), "span_seconds": span,
            "rate": len(delivered) / span if span else 0.0,
            "p50": statistics.median(latencies) if latencies else None,
            "p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
            "max": latencies[-1] if latencies else None, "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=4, help="dramatiq threads per worker")
    parser.add_argument("--batch", type=int, default=None,
                        help="changes per producer commit (default 200; 1 with --rate, as "
                        "a change commits with its message: a paced producer batching 200 "
                        "would hold each change back for up to 200/rate seconds)")
    parser.add_argument("--slow-ms", type=float, default=20.0)
    parser.add_argument("--flaky-every", type=int, default=10)
    parser.add_argument("--hl7", action="store_true", help="the fast partner is MLLP")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--broker", default="stub://")
    parser.add_argument("--producers", type=int, default=4, help="producer threads")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="changes per second to queue (0: as fast as possible)")
    parser.add_argument("--backlog", action="store_true",
                        help="queue every change first, then start the workers")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    if args.batch is None:
        args.batch = 1 if args.rate else 200
    print(f"{args.changes:,} changes x 3 subscribers, {args.people:,} people, broker "
          f"{args.broker.split('@')[-1]}, {os.cpu_count()} CPUs"
          f"{', backlog mode' if args.backlog else ''}", flush=True)
    ok = True
    for workers in args.workers:
        r = run(workers, args)
        print(f"\n{workers} worker(s): {r['delivered']:,}/{r['deliveries']:,} delivered in "
              f"{r['span_seconds']:.1f} s = {r['rate']:,.0f} deliveries/s "
              f"(producer {args.changes / r['produce_seconds']:,.0f} changes/s)")
        print(f"  change-to-delivered latency p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, "
              f"max {r['max']:.2f} s")
        for name, c in r["checks"].items():
            print(f"  {name:6} deliveries {c['deliveries']:,}  effects {c['effects']:,}  "
                  f"requests {c['requests']:,}  lost {c['lost']}  in order {c['in_order']}")
            ok = ok and c["lost"] == 0 and c["in_order"] and c["effects"] == c["deliveries"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
