"""The composition root: build engines, clocks and policy from settings. Nothing at import."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from register_core.adapters.database import make_engine, migrate
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.position import Policy
from register_core.ports import Clock, SystemClock

from .config import FileConfig, Settings


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    clock: Clock
    policy: Policy
    file_config: FileConfig = field(default_factory=FileConfig)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, clock: Clock | None = None,
              run_migrations: bool = False) -> Hub:
    settings = settings or Settings()
    if run_migrations:
        migrate(settings.database_url)
    file_config = settings.load_file()
    policy = Policy(
        s17_leave_starts_entitlement=file_config.policy.s17_leave_starts_entitlement,
        practice_to_icb=dict(file_config.policy.practice_to_icb))
    return Hub(settings=settings, engine=make_engine(settings.database_url),
               clock=clock or SystemClock(), policy=policy, file_config=file_config)
