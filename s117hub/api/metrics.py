"""``GET /metrics``: Prometheus text format (architecture section 5).

A custom ``Collector`` queries the database at scrape time (``metrics_queries``), so any
process that answers — however many API processes and workers run — reports the same
inbox, outbox, SLA and exception figures; the process_* and python_* metrics are the
answering process's own. Each app has its own ``CollectorRegistry`` (nothing is registered
at import time, and two apps in one process do not collide).

Like every endpoint but ``/healthz`` it needs a bearer token (architecture section 6):
integration engineers and auditors. Prometheus sends one with
``authorization: {type: Bearer, credentials_file: …}`` in its scrape config.

The MLLP listener's own counters (``s117hub_mllp_*``: frames, oversized frames, connections
open, accepted and refused over the limit) come from the listener this process runs
(``Hub.mllp_stats``), like the process metrics: they are absent where no listener runs (an
API-only process; a separate ``s117hub mllp`` serves no HTTP).

If the database does not answer, the scrape still succeeds with ``s117hub_database_up 0``
and the process metrics, so the alert fires on the figure rather than on a failed scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from connectors.hl7v2.server import ListenerStats
from register_core.adapters.metrics_queries import HubFigures, QueueRow, hub_figures
from register_core.adapters.security import Principal, Role
from s117hub.bootstrap import Hub

from .auth import get_hub, require_roles
from .routes_register import PROBLEM_RESPONSES

log = logging.getLogger(__name__)

Scraper = Annotated[Principal, Depends(require_roles(Role.INTEGRATION_ENGINEER, Role.AUDITOR))]
PREFIX = "s117hub"
METRICS_EXAMPLE = (
    "# HELP s117hub_inbox_messages Inbox messages by source and status.\n"
    "# TYPE s117hub_inbox_messages gauge\n"
    's117hub_inbox_messages{source="trust-a",status="received"} 3.0\n'
    "# HELP s117hub_database_up 1 when the database answered this scrape.\n"
    "# TYPE s117hub_database_up gauge\n"
    "s117hub_database_up 1.0\n")


class DatabaseCollector(Collector):
    """The hub's figures, read afresh on every scrape."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        try:
            with self.hub.engine.connect() as conn:
                figures = hub_figures(conn, self.hub.clock.now())
        except SQLAlchemyError:
            log.warning("metrics: the database did not answer", exc_info=True)
            yield _gauge("database_up", "1 when the database answered this scrape.", [], 0)
            return
        yield _gauge("database_up", "1 when the database answered this scrape.", [], 1)
        yield from _metrics(figures)

    def describe(self) -> Iterable[Metric]:
        return []  # no describe-time query: registering must not touch the database


class ListenerCollector(Collector):
    """The MLLP listener's counters, as they stand at scrape time (no database)."""

    def __init__(self, stats: ListenerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterable[Metric]:
        stats = self.stats
        if not stats.listening:
            return
        for name, documentation, value in (
                ("frames_received", "MLLP frames received (whole frames, oversized "
                 "included).", stats.frames_received),
                ("oversized_frames", "MLLP frames over the size limit: answered AR, not "
                 "stored.", stats.oversized_frames),
                ("connections_accepted", "MLLP connections served.",
                 stats.connections_accepted),
                ("connections_refused", "MLLP connections closed on accept: over "
                 "S117HUB_MLLP_MAX_CONNECTIONS.", stats.refused_connections)):
            yield CounterMetricFamily(f"{PREFIX}_mllp_{name}", documentation, value=value)
        yield _gauge("mllp_open_connections", "MLLP connections open now.", [],
                     stats.open_connections)
        yield _gauge("mllp_max_connections", "MLLP connections served at once at most.", [],
                     stats.max_connections)

    def describe(self) -> Iterable[Metric]:
        return []


def _gauge(name: str, documentation: str, labels: list[str], value: float | None = None
           ) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value,
                             labels=None if value is not None else labels)


def _queue_metrics(prefix: str, what: str, owner: str, rows: list[QueueRow]
                   ) -> Iterator[Metric]:
    depth = _gauge(f"{prefix}_messages" if prefix == "inbox" else f"{prefix}_deliveries",
                   f"{what} by {owner} and status.", [owner, "status"])
    oldest = _gauge(f"{prefix}_oldest_age_seconds",
                    f"Age of the oldest {what.lower()} row by {owner} and status.",
                    [owner, "status"])
    for row in rows:
        depth.add_metric([row.owner, row.status], row.depth)
        oldest.add_metric([row.owner, row.status], row.oldest_age_seconds)
    yield depth
    yield oldest


def _metrics(figures: HubFigures) -> Iterator[Metric]:
    yield from _queue_metrics("inbox", "Inbox messages", "source", figures.inbox)
    acks = _gauge("inbox_acks", "Inbox messages by ACK code: MSA-1 of the ACK sent "
                  "(basis=msa) or derived from the status (basis=status).",
                  ["channel", "code", "basis"])
    for ack in figures.acks:
        acks.add_metric([ack.channel, ack.code, ack.basis], ack.count)
    yield acks
    yield from _queue_metrics("outbox", "Outbox deliveries", "subscription", figures.outbox)
    delivered = _gauge("outbox_delivered", "Delivered deliveries by subscription and "
                       "whether within the five-working-day SLA.", ["subscription", "sla"])
    for row in figures.delivered:
        delivered.add_metric([row.subscription_id, "within"], row.within_sla)
        delivered.add_metric([row.subscription_id, "late"], row.late)
    yield delivered
    open_breached = _gauge("sla_breaches_open", "Deliveries not delivered and past their "
                           "due time now.", ["subscription"])
    recorded = _gauge("sla_breaches_recorded", "Deliveries ever recorded as breaching the "
                      "SLA, whatever became of them.", ["subscription"])
    for row in figures.breaches:
        open_breached.add_metric([row.subscription_id], row.open_breached)
        recorded.add_metric([row.subscription_id], row.recorded)
    yield open_breached
    yield recorded
    exceptions = _gauge("exceptions", "Register exceptions by kind and status.",
                        ["kind", "status"])
    for row in figures.exceptions:
        exceptions.add_metric([row.kind, row.status], row.count)
    yield exceptions


_registry_lock = threading.Lock()


def metrics_registry(request: Request, hub: Hub) -> CollectorRegistry:
    """This app's registry, built on the first scrape."""
    state = request.app.state
    with _registry_lock:
        registry: CollectorRegistry | None = getattr(state, "metrics_registry", None)
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(DatabaseCollector(hub))
            registry.register(ListenerCollector(hub.mllp_stats))
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)
            state.metrics_registry = registry
    return registry


router = APIRouter(tags=["operations"], responses=PROBLEM_RESPONSES)


@router.get(
    "/metrics", response_class=Response,
    summary="Prometheus metrics: inbox, outbox, ACKs, SLA breaches, exceptions, MLLP "
            "listener, process",
    description=(__doc__ or "").split("\n\n", 1)[-1],
    responses={200: {"description": "Prometheus text exposition format",
                     "content": {"text/plain": {"schema": {"type": "string"},
                                                "example": METRICS_EXAMPLE}}}})
def metrics(request: Request, hub: Annotated[Hub, Depends(get_hub)],
            _principal: Scraper) -> Response:
    # Text format 0.0.4: every Prometheus (2.x and 3.x) reads it without negotiation.
    body = generate_latest(metrics_registry(request, hub))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
