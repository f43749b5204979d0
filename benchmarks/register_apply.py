"""How fast the register applies detention events, on SQLite and on PostgreSQL.

    python benchmarks/register_apply.py --events 100000 --backend both \
        [--pg-url postgresql+psycopg://root@127.0.0.1:5432/test] [--seed 117] [--profile DIR]

Each event is one ``apply_command`` in its own unit of work (its own transaction), exactly as
the hub's worker applies them. SQLite runs on a fresh file in a temporary folder; PostgreSQL
on a fresh, uniquely named database created from ``--pg-url`` and dropped afterwards. Each
backend runs in a process of its own, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import platform
import pstats
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from register_core.adapters.database import make_engine, migrate
from register_core.adapters.tables import facts, persons
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.position import Policy
from register_core.ports import FixedClock
from register_core.services.handlers import apply_command
from register_core.synthetic import detention_events

DEFAULT_PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
# After the generated window (2024-01-01 .. 2026-11-01), so every fact is already effective.
CLOCK = FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="s117-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'register.sqlite3'}"
        migrate(url)
        yield url


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    base = make_url(base_url)
    name = f"s117_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_size(engine: sqlalchemy.Engine, url: str) -> int:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    path = Path(make_url(url).database or "")
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def run_backend(backend: str, events: int, seed: int, pg_url: str, profile_dir: str | None,
                progress: int) -> dict[str, Any]:
    """Generate the events, then apply them one unit of work each; return the figures."""
    started = time.perf_counter()
    commands = list(detention_events(events, seed))
    generated = time.perf_counter() - started
    rss_after_generation = peak_rss_mb()
    database = sqlite_database() if backend == "sqlite" else postgres_database(pg_url)
    errors: Counter[str] = Counter()
    first_errors: list[str] = []
    policy = Policy()
    with database as url:
        engine = make_engine(url)
        server = engine.dialect.name
        if server == "postgresql":
            with engine.connect() as conn:
                server = conn.execute(text("SHOW server_version")).scalar_one()
                server = f"PostgreSQL {server}"
        else:
            server = f"SQLite {sqlite3_version()}"
        profiler = cProfile.Profile() if profile_dir else None
        if profiler:
            profiler.enable()
        began = time.perf_counter()
        for done, command in enumerate(commands, start=1):
            try:
                with SqlUnitOfWork(engine) as uow:
                    apply_command(command, uow, CLOCK, policy)
            except Exception as exc:  # counted and reported: the run must show every failure
                errors[type(exc).__name__] += 1
                if len(first_errors) < 3:
                    first_errors.append(f"{command.provenance.source_ref}: {exc!r}")
            if progress and done % progress == 0:
                spent = time.perf_counter() - began
                print(f"  [{backend}] {done:>8,} events  {spent:8.1f} s  "
                      f"{done / spent:8.1f} events/s", file=sys.stderr, flush=True)
        seconds = time.perf_counter() - began
        if profiler:
            profiler.disable()
            assert profile_dir is not None
            out = Path(profile_dir) / f"register_apply.{backend}.prof"
            profiler.dump_stats(out)
            print(f"\n== profile {backend}: {out}", file=sys.stderr)
            stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative")
            stats.print_stats(30)
            stats.sort_stats("tottime").print_stats(20)
        with engine.connect() as conn:
            n_persons = conn.execute(select(func.count()).select_from(persons)).scalar_one()
            n_facts = conn.execute(select(func.count()).select_from(facts)).scalar_one()
        size = database_size(engine, url)
        engine.dispose()
    return {
        "backend": backend, "server": server, "events": len(commands), "seconds": seconds,
        "rate": len(commands) / seconds, "peak_rss_mb": peak_rss_mb(),
        "rss_after_generation_mb": rss_after_generation, "generation_seconds": generated,
        "persons": n_persons, "facts": n_facts, "db_mb": size / (1024 * 1024),
        "errors": dict(errors), "first_errors": first_errors,
    }


def sqlite3_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _child(queue: Any, *args: Any) -> None:
    queue.put(run_backend(*args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("S117HUB_BENCH_PG_URL",
                                                           DEFAULT_PG_URL))
    parser.add_argument("--seed", type=int, default=117)
    parser.add_argument("--profile", metavar="DIR", help="cProfile the apply loop, write "
                        "DIR/register_apply.<backend>.prof and print the top functions")
    parser.add_argument("--progress", type=int, default=10_000,
                        help="print a progress line every N events (0: never)")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    print(f"register_apply: {args.events:,} detention events, seed {args.seed}; Python "
          f"{platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}", flush=True)
    context = multiprocessing.get_context("spawn")
    results = []
    for backend in backends:
        queue = context.Queue()
        proc = context.Process(target=_child, args=(queue, backend, args.events, args.seed,
                                                    args.pg_url, args.profile, args.progress))
        proc.start()
        result = queue.get()
        proc.join()
        results.append(result)
        print(f"{backend}: {result['server']}; generated in {result['generation_seconds']:.1f}"
              f" s (RSS then {result['rss_after_generation_mb']:.0f} MB); "
              f"{result['persons']:,} persons, {result['facts']:,} facts, "
              f"database {result['db_mb']:.0f} MB; errors {result['errors'] or 'none'}",
              flush=True)
        for line in result["first_errors"]:
            print(f"  error: {line}")

    print(f"\n{'backend':<10}{'events':>10}{'seconds':>10}{'events/s':>10}{'peak RSS MB':>13}")
    for r in results:
        print(f"{r['backend']:<10}{r['events']:>10,}{r['seconds']:>10.1f}{r['rate']:>10.1f}"
              f"{r['peak_rss_mb']:>13.0f}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
