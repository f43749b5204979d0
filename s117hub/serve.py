"""Run the hub's servers on one asyncio loop: today the HTTP API.

The seam for later issues: the MLLP listener and the in-process worker become more tasks in
``run_servers``; when any one stops (or fails) the others are asked to stop too.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from .api.app import create_app
from .bootstrap import Hub

log = logging.getLogger(__name__)


def http_server(hub: Hub, host: str | None = None, port: int | None = None) -> uvicorn.Server:
    default_host, default_port = hub.settings.http_bind
    config = uvicorn.Config(
        create_app(hub), host=host or default_host,
        port=default_port if port is None else port,
        # Our own logging (configure_logging) carries uvicorn's records, JSON and redacted.
        # No access log: its request line holds the query string, and an NHS number there
        # may be URL-encoded past the redaction (999%20000%200018).
        log_config=None, access_log=False, lifespan="off", server_header=False)
    return uvicorn.Server(config)


async def run_servers(hub: Hub, http: uvicorn.Server | None = None) -> None:
    http = http or http_server(hub)
    tasks = [asyncio.create_task(http.serve(), name="http")]
    # Later: tasks.append(asyncio.create_task(mllp_listener(hub).serve(), name="mllp"))
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    http.should_exit = True
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # re-raise whatever stopped the first server


def serve(hub: Hub) -> None:
    host, port = hub.settings.http_bind
    log.info("serving HTTP on %s:%s", host, port)
    try:
        asyncio.run(run_servers(hub))
    finally:
        hub.close()
