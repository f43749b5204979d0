"""Inbound benchmark (issue 3): stream N synthetic ADT messages over MLLP into a real hub.

Four concurrent connections, original-mode ACK wait (each connection sends its next message
only after the ACK of the last), into ``s117hub serve`` in a child process. Prints, in the same
run: the bare python-hl7 and hl7apy parse rates (and the hub's own parser's), the end-to-end
acknowledged rate, the rate to register-applied, and the hub's peak RSS — per backend. Also
the hub's CPU per message (user + system, from the start of the stream until every row is
applied: steadier than rates when other work shares the machine), the load average at the
start, the worker's mean batch (rows applied per transaction), and the hub's RSS after each
quarter of the stream (flat means memory does not grow with N).

    python benchmarks/ingest.py --messages 20000 --backend both --runs 3
    python benchmarks/ingest.py --messages 100000 --backend sqlite

With ``--broker amqp://…`` and ``--worker-processes K`` it measures the production shape
instead: ``s117hub serve`` listens and stores, and K ``s117hub worker`` processes apply, hinted
over RabbitMQ; CPU is summed over all of them and peak RSS is the largest.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import hl7
from sqlalchemy import func, select

from connectors.hl7v2.framing import FrameReader, frame
from register_core.adapters.database import make_engine
from register_core.adapters.tables import inbox_messages
from s117hub.harness import CODE_ROOT, HubProcess, synthetic_adt_stream

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from register_apply import postgres_database, sqlite_database

CONNECTIONS = 4


def _rate(parse: Callable[[str], object], texts: list[str]) -> float:
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        for message in texts:
            parse(message)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def parse_rates(samples: list[bytes]) -> tuple[float, float, float]:
    """python-hl7's full parse, hl7apy's, and the hub's own (``mapping.hl7v2_parse``)."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    from mapping.hl7v2_parse import parse_adt

    texts = [s.decode() for s in samples]
    python_hl7 = _rate(hl7.parse, texts)
    hub = _rate(parse_adt, texts)
    hl7apy = _rate(lambda message: parse_message(
        message, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False), texts[:200])
    return python_hl7, hl7apy, hub


def send_all(port: int, messages: list[bytes], failures: list[str], sent: list[int]) -> None:
    reader = FrameReader()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for payload in messages:
            sock.sendall(frame(payload))
            acks: list[bytes] = []
            while not acks:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("hub closed the connection")
                acks = reader.feed(data)
            if b"MSA|AA|" not in acks[0]:
                failures.append(acks[0].decode(errors="replace")[:200])
            sent[0] += 1  # not atomic across threads: near enough to place the quarters


def _proc(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watch_rss(pid: int, total: int, sent: list[int], marks: list[int],
               done: threading.Event) -> None:
    """VmRSS of the hub as the stream passes 1/4, 1/2 and 3/4 (the caller adds the end)."""
    quarter = 1
    while not done.is_set() and quarter < 4:
        if sent[0] >= total * quarter // 4:
            marks.append(_proc(pid, "VmRSS:"))
            quarter += 1
        else:
            time.sleep(0.05)


def start_workers(hub: HubProcess, count: int) -> list[subprocess.Popen[bytes]]:
    """``s117hub worker`` processes beside the hub, with its settings and log."""
    with open(hub.workdir / "workers.log", "ab") as log:
        return [subprocess.Popen(
            [sys.executable, "-m", "s117hub.cli", "worker", "--threads", "2"], env=hub.env(),
            stdout=log, stderr=log, cwd=CODE_ROOT) for _ in range(count)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()


def run(backend: str, messages: int, pg_url: str, broker: str = "stub://",
        worker_processes: int = 0) -> dict[str, float]:
    stream = synthetic_adt_stream(messages)
    python_hl7_rate, hl7apy_rate, hub_rate = parse_rates([m for _, _, m in stream[:2000]])
    load = os.getloadavg()[0]
    database = sqlite_database() if backend == "sqlite" else postgres_database(pg_url)
    with tempfile.TemporaryDirectory() as tmp, database as url:
        # Without the register sweep serve runs a minute after start (then daily): inside the
        # timed window it swept the half-loaded register, adding CPU and a step of RSS to an
        # ingest figure; benchmarks/reconcile.py measures the sweep.
        hub = HubProcess(url, Path(tmp) / "hub", broker_url=broker,
                         extra_env={"S117HUB_RECONCILE_EVERY_HOURS": "0"})
        hub.start()
        workers = start_workers(hub, worker_processes)
        pids = [hub.pid, *(w.pid for w in workers)]
        try:
            per_connection = _per_connection(stream)
            failures: list[str] = []
            sent, rss_marks, stop = [0], [], threading.Event()
            threads = [threading.Thread(target=send_all,
                                        args=(hub.mllp_port, part, failures, sent))
                       for part in per_connection]
            watcher = threading.Thread(target=_watch_rss,
                                       args=(hub.pid, messages, sent, rss_marks, stop))
            cpu_before = sum(_cpu_seconds(pid) for pid in pids)
            started = time.perf_counter()
            watcher.start()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            acknowledged = time.perf_counter() - started
            stop.set()
            watcher.join()
            rss_marks.append(_proc(hub.pid, "VmRSS:"))
            engine = make_engine(url)
            while True:
                with engine.connect() as conn:
                    left = conn.execute(
                        select(func.count()).select_from(inbox_messages)
                        .where(inbox_messages.c.status == "received")).scalar_one()
                if left == 0:
                    break
                time.sleep(0.05)
            applied = time.perf_counter() - started
            cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu_before
            with engine.connect() as conn:
                applied_rows = conn.execute(
                    select(func.count()).select_from(inbox_messages)
                    .where(inbox_messages.c.status == "applied")).scalar_one()
                # A worker batch marks its rows with one processed_at: how many rows the
                # worker applied per transaction.
                batches = conn.execute(select(func.count(func.distinct(
                    inbox_messages.c.processed_at)))).scalar_one()
            engine.dispose()
            rss = max(_proc(pid, "VmHWM:") for pid in pids)
        finally:
            stop_workers(workers)
            hub.stop()
    if failures or applied_rows != messages:
        print(f"  !! {len(failures)} non-AA ACKs, {applied_rows}/{messages} applied",
              file=sys.stderr)
    return {"python_hl7": python_hl7_rate, "hl7apy": hl7apy_rate, "hub_parse": hub_rate,
            "acked": messages / acknowledged, "applied": messages / applied,
            "rss_mib": rss / 1024, "applied_rows": applied_rows,
            "cpu_ms": 1000 * cpu / messages, "load": load,
            "batch": applied_rows / max(batches, 1),
            "rss_quarters": [kib / 1024 for kib in rss_marks]}


def _per_connection(stream: list[tuple[int, str, bytes]]) -> list[list[bytes]]:
    per_connection: list[list[bytes]] = [[] for _ in range(CONNECTIONS)]
    for person, _control_id, payload in stream:
        per_connection[person % CONNECTIONS].append(payload)  # keeps per-person order
    return per_connection


def listener_only(backend: str, messages: int, pg_url: str, broker: str) -> str:
    """The listener's own ceiling: ``serve`` with a real broker and no worker process, so
    nothing is applied; the rate of ACKs and the hub's CPU per message (parse, map, ACK, the
    inbox's group commit, the hint)."""
    stream = synthetic_adt_stream(messages)
    database = sqlite_database() if backend == "sqlite" else postgres_database(pg_url)
    with tempfile.TemporaryDirectory() as tmp, database as url:
        hub = HubProcess(url, Path(tmp) / "hub", broker_url=broker,
                         extra_env={"S117HUB_RECONCILE_EVERY_HOURS": "0"})
        hub.start()
        try:
            failures: list[str] = []
            sent = [0]
            threads = [threading.Thread(target=send_all, args=(hub.mllp_port, part, failures,
                                                                sent))
                       for part in _per_connection(stream)]
            cpu_before, started = _cpu_seconds(hub.pid), time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            cpu = _cpu_seconds(hub.pid) - cpu_before
        finally:
            hub.stop()
    return (f"{backend:<10} listener only: {messages / seconds:,.0f} acked/s, "
            f"{1000 * cpu / messages:.2f} hub CPU ms/msg, {len(failures)} non-AA ACKs")


def _row(label: str, r: dict[str, float]) -> str:
    share = 100 * r["applied"] / r["python_hl7"]
    quarters = "/".join(f"{m:.0f}" for m in r.get("rss_quarters") or [])  # type: ignore[attr-defined]
    return (f"{label:<10}{r['python_hl7']:>14,.0f}{r['hl7apy']:>10,.0f}"
            f"{r['hub_parse']:>13,.0f}{r['acked']:>10,.0f}"
            f"{r['applied']:>11,.0f}{share:>10.0f}%{r['rss_mib']:>14,.1f}{r['cpu_ms']:>13.2f}"
            f"{r['load']:>7.1f}{r['batch']:>7.1f}  {quarters}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql+psycopg://root@127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs per backend; with more than one, a median row follows")
    parser.add_argument("--broker", default="stub://",
                        help="S117HUB_BROKER_URL: stub:// (the embedded default, in-process "
                        "worker) or amqp://… with --worker-processes")
    parser.add_argument("--worker-processes", type=int, default=0,
                        help="s117hub worker processes beside the hub (needs a real broker)")
    parser.add_argument("--listener-only", action="store_true",
                        help="time the MLLP listener alone: a real --broker, no worker, "
                        "nothing applied")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if args.listener_only:
        if args.broker.startswith("stub") or args.worker_processes:
            parser.error("--listener-only needs a real --broker and no --worker-processes")
        for backend in backends:
            for _ in range(args.runs):
                print(listener_only(backend, args.messages, args.pg_url, args.broker),
                      flush=True)
        return
    if args.broker.startswith("stub") == bool(args.worker_processes):
        parser.error("--worker-processes goes with a real --broker, and a real broker needs "
                     "at least one")
    shape = (f"serve + {args.worker_processes} worker process(es) over "
             f"{args.broker.split(':', 1)[0]}" if args.worker_processes
             else "serve with its in-process worker")
    print(f"ingest: {args.messages:,} ADT messages (A01+A03 pairs), {CONNECTIONS} MLLP "
          f"connections, original-mode ACK wait; {shape}")
    print(f"{'backend':<10}{'python-hl7/s':>14}{'hl7apy/s':>10}{'hub parse/s':>13}{'acked/s':>10}"
          f"{'applied/s':>11}{'applied %':>11}{'peak RSS MiB':>14}{'CPU ms/msg':>13}"
          f"{'load':>7}{'batch':>7}  RSS MiB at 1/4, 1/2, 3/4, all")
    for backend in backends:
        results = []
        for _ in range(args.runs):
            results.append(run(backend, args.messages, args.pg_url, args.broker,
                               args.worker_processes))
            print(_row(backend, results[-1]), flush=True)
        if len(results) > 1:
            median = {key: statistics.median(r[key] for r in results)  # type: ignore[type-var]
                      for key in results[0] if key != "rss_quarters"}
            print(_row("  median", median), flush=True)


if __name__ == "__main__":
    main()
