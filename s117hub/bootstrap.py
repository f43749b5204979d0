"""The composition root: build engines, clocks and policy from settings. Nothing at import."""

from __future__ import annotations

from dataclasses import dataclass, field

import dramatiq
from sqlalchemy import Engine

from connectors.hl7v2.server import ListenerStats
from connectors.inbound_mapper import make_mapper
from connectors.outbound.actors import OutboundTasks, register_outbound_actors
from connectors.outbound.settings import OutboundSettings
from register_core.adapters.database import make_engine, migrate
from register_core.adapters.inbox import Inbox
from register_core.adapters.sources import SourceRegistry
from register_core.adapters.subscriptions import SubscriptionRegistry
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.position import Policy
from register_core.domain.precedence import FIELD_GROUPS, Precedence
from register_core.ports import Clock, SystemClock

from .config import FileConfig, Settings
from .worker import Tasks, build_broker, register_actors


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    clock: Clock
    policy: Policy
    sources: SourceRegistry
    inbox: Inbox
    broker: dramatiq.Broker
    tasks: Tasks
    subscriptions: SubscriptionRegistry
    outbound: OutboundTasks
    file_config: FileConfig = field(default_factory=FileConfig)
    # The MLLP listener's counters, shared by the listener this process runs and /metrics.
    mllp_stats: ListenerStats = field(default_factory=ListenerStats)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    def notify(self, partition: int) -> None:
        """A hint that a partition has new inbox rows (the rows themselves are the truth)."""
        self.tasks.notify(partition)

    def close(self) -> None:
        self.tasks.close()  # hints still gathering are sent
        self.outbound.close()
        self.broker.close()
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None,
              engine: Engine | None = None, run_migrations: bool = False) -> Hub:
    """Wire the hub. Builds the broker client but starts no thread and opens no socket."""
    settings = settings or Settings()
    if run_migrations:
        migrate(settings.database_url)
    file_config = settings.load_file()
    policy = Policy(
        s17_leave_starts_entitlement=file_config.policy.s17_leave_starts_entitlement,
        practice_to_icb=dict(file_config.policy.practice_to_icb),
        probabilistic_identity=file_config.identity.enabled,
        identity_link_threshold=file_config.identity.link_threshold,
        identity_review_threshold=file_config.identity.review_threshold,
        precedence=Precedence(**{group: tuple(getattr(file_config.precedence, group))
                                 for group in FIELD_GROUPS}))
    engine = engine or make_engine(settings.database_url)
    clock = clock or SystemClock()
    sources = SourceRegistry(engine)
    broker = build_broker(settings.broker_url)
    tasks = register_actors(broker, engine, clock, policy, make_mapper(sources),
                            queue_prefix=settings.queue_prefix)
    subscriptions = SubscriptionRegistry(engine)
    outbound = register_outbound_actors(broker, engine, clock, registry=subscriptions,
                                        settings=OutboundSettings(),
                                        queue_prefix=settings.queue_prefix)
    return Hub(settings=settings, engine=engine, clock=clock, policy=policy, sources=sources,
               inbox=Inbox(engine), broker=broker, tasks=tasks, subscriptions=subscriptions,
               outbound=outbound, file_config=file_config)
