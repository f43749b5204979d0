"""Run the hub's servers on one asyncio loop: the HTTP API and the MLLP listener, plus the
in-process dramatiq worker and the inbox sweeper of the embedded default.

When any server stops (or fails) the others are asked to stop too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading

import uvicorn

from connectors.council.poller import PollerLoop
from connectors.fhir.poller import FhirPollRunner
from connectors.hl7v2.receiver import Hl7Receiver
from connectors.hl7v2.server import MllpServer
from connectors.outbound.actors import OutboundSweeper
from register_core.services.outbound import enqueue_on_change
from register_core.services.reconcile import SweepReport, sweep

from .api.app import create_app, create_metrics_app
from .bootstrap import Hub
from .worker import Sweeper, start_worker

log = logging.getLogger(__name__)


def http_server(hub: Hub, host: str | None = None, port: int | None = None, *,
                metrics_only: bool = False) -> uvicorn.Server:
    """The API on S117HUB_HTTP; ``metrics_only``: just /healthz and /metrics (``s117hub mllp
    --metrics``: a listener's counters live in its own process)."""
    default_host, default_port = hub.settings.http_bind
    config = uvicorn.Config(
        (create_metrics_app if metrics_only else create_app)(hub), host=host or default_host,
        port=default_port if port is None else port,
        # Our own logging (configure_logging) carries uvicorn's records, JSON and redacted.
        # No access log: its request line holds the query string, and an NHS number there
        # may be URL-encoded past the redaction (999%20000%200018).
        log_config=None, access_log=False, lifespan="off", server_header=False)
    return uvicorn.Server(config)


def mllp_server(hub: Hub, host: str | None = None, port: int | None = None) -> MllpServer:
    default_host, default_port = hub.settings.mllp_bind
    receiver = Hl7Receiver(hub.engine, hub.sources, hub.clock, hub.notify)
    return MllpServer(receiver.handle, host or default_host,
                      default_port if port is None else port,
                      handle_async=receiver.handle_async,
                      max_connections=hub.settings.mllp_max_connections,
                      stats=hub.mllp_stats)


async def run_servers(hub: Hub, http: uvicorn.Server | None = None,
                      mllp: MllpServer | None = None, *, with_http: bool = True,
                      with_mllp: bool = True) -> None:
    # Caught before any server listens: a SIGTERM just after the port opened had found the
    # default handler still in place and killed the process on the spot.
    stop = asyncio.Event()
    caught = _catch_stop_signals(stop)
    try:
        await _serve_until_one_stops(http, mllp, stop, with_http=with_http,
                                     with_mllp=with_mllp, hub=hub)
    finally:
        loop = asyncio.get_running_loop()
        for stop_signal in caught:
            loop.remove_signal_handler(stop_signal)


async def _serve_until_one_stops(http: uvicorn.Server | None, mllp: MllpServer | None,
                                 stop: asyncio.Event, *, with_http: bool, with_mllp: bool,
                                 hub: Hub) -> None:
    tasks: list[asyncio.Task[None]] = []
    if with_http:
        http = http or http_server(hub)
        tasks.append(asyncio.create_task(http.serve(), name="http"))
    if with_mllp:
        mllp = mllp or mllp_server(hub)
        await mllp.start()
        tasks.append(asyncio.create_task(mllp.serve_forever(), name="mllp"))
    if not tasks:
        raise ValueError("nothing to serve")
    tasks.append(asyncio.create_task(_stopped(stop), name="signal"))
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if http is not None:
            http.should_exit = True
        if mllp is not None:
            await mllp.stop()
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # re-raise whatever stopped the first server


def _catch_stop_signals(stop: asyncio.Event) -> list[signal.Signals]:
    """SIGINT and SIGTERM (docker stop) set ``stop``, so that the servers stop gracefully and
    ``serve`` returns: the MLLP listener has no uvicorn to catch them, and without this a
    SIGTERM killed it on the spot and Ctrl-C ended in a traceback. (uvicorn catches them
    while it serves, stops, then raises them again: they land here.) Off the main thread
    signals cannot be caught; the servers then stop when their task does."""
    loop = asyncio.get_running_loop()
    caught = []
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(stop_signal, stop.set)
            caught.append(stop_signal)
        except (ValueError, RuntimeError, NotImplementedError):
            pass
    return caught


async def _stopped(stop: asyncio.Event) -> None:
    await stop.wait()
    log.info("stopping: signal received")


class Pollers:
    """The FHIR and council pollers, each in its own daemon thread. One process of a
    deployment runs them (``serve``); duplicates would be recognised, but are wasted work."""

    def __init__(self, hub: Hub) -> None:
        self.fhir = FhirPollRunner(hub, hub.sources)
        self.council = PollerLoop(engine=hub.engine, sources=hub.sources, notify=hub.notify,
                                  clock=hub.clock)
        self._stop = threading.Event()
        self._council_thread = threading.Thread(target=self.council.run, args=(self._stop,),
                                                name="council-poller", daemon=True)

    def start(self) -> None:
        self.fhir.start()
        self._council_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.fhir.stop()
        self._council_thread.join(10)
        self.council.close()


class RegisterSweeper(threading.Thread):
    """The nightly reconcile (``s117hub reconcile``) inside the serving process: recompute
    as of today every position whose checkpoint no longer holds, sync exceptions (reviews
    fall overdue with no message), and queue for partners any status change time alone
    made. First run ``first_after`` seconds
    after start, then every ``interval`` seconds. One per deployment (``serve``)."""

    def __init__(self, hub: Hub, interval: float, first_after: float = 60.0) -> None:
        super().__init__(name="register-sweeper", daemon=True)
        self.hub = hub
        self.interval = interval
        self.first_after = first_after
        self._stopping = threading.Event()

    def run_once(self) -> SweepReport:
        report = sweep(self.hub.engine, self.hub.clock, self.hub.policy,
                       on_change=enqueue_on_change(self.hub.clock.now))
        if report.fields_changed:
            self.hub.outbound.hint()  # the outbound sweeper would find them; sooner is kinder
        log.info("register sweep done", extra={
            "people": report.people, "recomputed": report.recomputed,
            "positions_changed": report.positions_changed,
            "exceptions_opened": sum(report.opened.values()), "failed": len(report.failed)})
        return report

    def run(self) -> None:
        wait = self.first_after
        while not self._stopping.wait(wait):
            try:
                self.run_once()
            except Exception:  # the database may be down: try again next time
                log.exception("register sweep failed")
            wait = self.interval

    def stop(self) -> None:
        self._stopping.set()


class CannotListen(Exception):
    """An address to serve on is taken or not ours: said in one line, before anything starts."""


def check_can_listen(addresses: dict[str, tuple[str, int]]) -> None:
    """Bind and release each address (as the servers will: SO_REUSEADDR), so that a port in
    use is one clear line and nothing half-started — uvicorn exits from inside the event loop
    (a traceback) and the MLLP listener only after the worker and pollers were up."""
    for name, (host, port) in addresses.items():
        try:
            with socket.create_server((host, port)):
                pass
        except OSError as exc:
            raise CannotListen(f"cannot serve {name} on {host}:{port}: "
                               f"{exc.strerror or type(exc).__name__}") from None


def serve(hub: Hub, *, with_http: bool = True, with_mllp: bool = True,
          with_worker: bool | None = None, worker_threads: int = 2,
          with_pollers: bool = True, metrics_only: bool = False) -> None:
    """``with_worker`` defaults to True for the in-process broker (the embedded default) and
    False for RabbitMQ/Redis, where ``s117hub worker`` processes do the work. The register
    sweep runs with the pollers, whatever the broker. ``metrics_only``: the HTTP server
    serves /healthz and /metrics alone."""
    if with_worker is None:
        with_worker = hub.settings.broker_url.startswith("stub")
    check_can_listen({**({"HTTP": hub.settings.http_bind} if with_http else {}),
                      **({"MLLP": hub.settings.mllp_bind} if with_mllp else {})})
    worker = sweeper = outbound_sweeper = pollers = None
    if with_worker:
        worker = start_worker(hub.broker, threads=worker_threads)
        sweeper = Sweeper(hub.tasks)
        sweeper.start()
        outbound_sweeper = OutboundSweeper(hub.outbound)
        outbound_sweeper.start()
    if with_pollers:
        pollers = Pollers(hub)
        pollers.start()
    register_sweeper = None
    # The register sweep, like the pollers, belongs to the one process that polls (``serve``,
    # not ``s117hub mllp``): several would be harmless, but wasted work.
    if with_pollers and hub.settings.reconcile_every_hours > 0:
        register_sweeper = RegisterSweeper(hub, hub.settings.reconcile_every_hours * 3600)
        register_sweeper.start()
    if with_http:
        log.info("serving HTTP%s on %s:%s", " (/healthz, /metrics)" if metrics_only else "",
                 *hub.settings.http_bind)
    if with_mllp:
        log.info("serving MLLP on %s:%s", *hub.settings.mllp_bind)
    try:
        http = http_server(hub, metrics_only=True) if with_http and metrics_only else None
        asyncio.run(run_servers(hub, http, with_http=with_http, with_mllp=with_mllp))
    finally:
        if register_sweeper is not None:
            register_sweeper.stop()
        if pollers is not None:
            pollers.stop()
        if outbound_sweeper is not None:
            outbound_sweeper.stop()
        if sweeper is not None:
            sweeper.stop()
        if worker is not None:
            worker.stop()
        hub.close()


def run_worker(hub: Hub, threads: int = 4) -> None:
    """``s117hub worker``: dramatiq workers and the sweeper only, until interrupted."""
    worker = start_worker(hub.broker, threads=threads)
    sweeper = Sweeper(hub.tasks)
    sweeper.start()
    outbound_sweeper = OutboundSweeper(hub.outbound)
    outbound_sweeper.start()
    log.info("worker running with %s threads", threads)
    try:
        signal_wait()
    finally:
        outbound_sweeper.stop()
        sweeper.stop()
        worker.stop()
        hub.close()


def signal_wait() -> None:
    import signal

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
