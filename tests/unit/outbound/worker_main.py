"""A stand-in for ``s117hub worker`` running only the outbound actors, for the scale-out
test (until the lead wires them into the real worker):

    python -m tests.unit.outbound.worker_main DATABASE_URL BROKER_URL
"""

from __future__ import annotations

import signal
import sys
import threading

from connectors.outbound.actors import OutboundSweeper, register_outbound_actors
from register_core.adapters.database import make_engine
from register_core.ports import SystemClock
from s117hub.worker import build_broker, start_worker


def main(argv: list[str]) -> int:
    url, broker_url = argv[1], argv[2]
    engine = make_engine(url)
    broker = build_broker(broker_url)
    tasks = register_outbound_actors(broker, engine, SystemClock())
    worker = start_worker(broker, threads=4)
    sweeper = OutboundSweeper(tasks)
    sweeper.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    sweeper.stop()
    worker.stop()
    tasks.close()
    broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
