"""An MLLP server run for a test as ``serve`` runs it: its own event loop, in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from connectors.hl7v2.server import MllpServer


@contextmanager
def serving(server: MllpServer) -> Iterator[MllpServer]:
    """Start ``server`` on a fresh loop in a daemon thread; stop it and the loop after."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(5), "the MLLP server did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not loop.is_running():
            loop.close()
