"""Shared fixtures: a real database per backend (SQLite always, PostgreSQL when
``S117HUB_TEST_DATABASE_URL`` is set), migrated once, emptied before each test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from register_core.adapters.database import make_engine, migrate
from register_core.adapters.tables import metadata
from register_core.ports import FixedClock
from s117hub.bootstrap import Hub, bootstrap
from s117hub.config import Settings

PG_URL = os.environ.get("S117HUB_TEST_DATABASE_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _create_pg_database(base_url: str) -> tuple[str, str]:
    url = make_url(base_url)
    name = f"s117_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(base_url: str, name: str) -> None:
    admin = create_engine(make_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'register.sqlite3'}"
        migrate(url)
        yield url
        return
    if not PG_URL:
        pytest.skip("S117HUB_TEST_DATABASE_URL not set: PostgreSQL tests skipped")
    url, name = _create_pg_database(PG_URL)
    migrate(url)
    yield url
    _drop_pg_database(PG_URL, name)


def empty_all_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture(scope="session")
def session_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(session_engine: Engine) -> Engine:
    empty_all_tables(session_engine)
    return session_engine


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def hub(engine: Engine, database_url: str, clock: FixedClock) -> Iterator[Hub]:
    """A hub wired to the test database (already migrated and emptied) and a fixed clock."""
    built = bootstrap(Settings(database_url=database_url), clock=clock, engine=engine)
    yield built
    built.broker.close()
