"""Three worker processes on PostgreSQL and RabbitMQ, one killed mid-run (SIGKILL): every
change reaches every partner once (by idempotency key), in order per person, nothing lost.

Needs S117HUB_TEST_DATABASE_URL (PostgreSQL) and S117HUB_TEST_BROKER_URL (amqp://…).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.tables import outbound_deliveries
from register_core.ports import SystemClock
from s117hub.bootstrap import Hub
from tests.unit.outbound.partners import Act, HttpPartner, MllpPartner
from tests.unit.outbound.support import apply, key_to_change, story, sub

BROKER_URL = os.environ.get("S117HUB_TEST_BROKER_URL")
ROOT = Path(__file__).resolve().parents[2]
RETRY = {"max_attempts": 50, "min_backoff_seconds": 0.05, "max_backoff_seconds": 0.5,
         "timeout_seconds": 0.5}

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _spawn(database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "S117HUB_OUTBOUND_SWEEP_INTERVAL_SECONDS": "0.3",
           "S117HUB_OUTBOUND_LEASE_SECONDS": "2", "S117HUB_OUTBOUND_BATCH_SIZE": "4",
           "PYTHONPATH": str(ROOT)}
    assert BROKER_URL is not None
    return subprocess.Popen([sys.executable, "-m", "tests.unit.outbound.worker_main",
                             database_url, BROKER_URL], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _delivered(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbound_deliveries).where(
            outbound_deliveries.c.status == "delivered")).scalar_one()


def test_three_workers_one_killed_nothing_lost_nothing_doubled(hub: Hub,
                                                               database_url: str) -> None:
    if hub.engine.dialect.name != "postgresql" or not BROKER_URL:
        pytest.skip("needs PostgreSQL and S117HUB_TEST_BROKER_URL")
    clock = SystemClock()
    slow_council = HttpPartner(lambda n, k: Act(status=503) if n % 9 == 8 else Act(delay=0.03))
    pas = MllpPartner(lambda n, k: Act(status=500) if n % 7 == 6 else Act(delay=0.01))
    with slow_council, pas:
        registry = SubscriptionRegistry(hub.engine)
        registry.save(sub("council-x", "council-rest", slow_council.url, retry=RETRY,
                          concurrency=4), clock.now())
        registry.save(sub("trust-pas", "hl7v2-mllp", pas.endpoint, retry=RETRY,
                          concurrency=4), clock.now())
        workers = [_spawn(database_url) for _ in range(3)]
        try:
            for w in workers:
                assert w.stdout is not None and w.stdout.readline().strip() == b"ready"
            people = [story(n) for n in range(1, 31)]
            for step in range(4):
                for person in people:
                    apply(hub.engine, clock, person[step])
            expected = 30 * (4 + 4)  # four status changes per person, to each partner
            deadline = time.monotonic() + 60
            while _delivered(hub) < expected // 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)  # mid-run: it may hold claims
            workers[0].wait(10)
            deadline = time.monotonic() + 120
            while _delivered(hub) < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _delivered(hub) == expected
        finally:
            for w in workers[1:]:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    w.wait(20)
                except subprocess.TimeoutExpired:
                    w.kill()
        changes = key_to_change(hub.engine)
        with hub.engine.connect() as conn:
            rows = conn.execute(select(outbound_deliveries.c.subscription_id,
                                       outbound_deliveries.c.idempotency_key,
                                       outbound_deliveries.c.person_id,
                                       outbound_deliveries.c.change_id)).all()
        for name, partner in (("council-x", slow_council), ("trust-pas", pas)):
            mine = sorted((r for r in rows if r.subscription_id == name),
                          key=lambda r: r.change_id)
            effects = partner.recorder.effects
            assert sorted(e.key for e in effects) == sorted(r.idempotency_key for r in mine)
            seen: dict[str, list[int]] = {}
            for e in effects:
                seen.setdefault(e.person, []).append(changes[e.key])
            wanted: dict[str, list[int]] = {}
            for r in mine:
                wanted.setdefault(r.person_id, []).append(r.change_id)
            assert seen == wanted, f"{name}: a person's changes arrived out of order"
