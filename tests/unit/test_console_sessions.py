"""Console sessions on SQLite: only the cookie's hash is stored, the absolute and idle
lifetimes hold, logout and purge remove rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from register_core.adapters.console_sessions import ConsoleSessionStore, session_id
from register_core.adapters.database import make_engine, migrate
from register_core.adapters.security import TokenStore
from register_core.adapters.tables import console_sessions
from register_core.ports import FixedClock

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'console.sqlite3'}"
    migrate(url)
    built = make_engine(url)
    yield built
    built.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def store(engine: Engine, clock: FixedClock) -> ConsoleSessionStore:
    with engine.begin() as conn:
        conn.execute(console_sessions.delete())
    return ConsoleSessionStore(engine, clock)


@pytest.fixture
def token_id(engine: Engine, clock: FixedClock) -> str:
    return TokenStore(engine, clock).create("auditor", label="unit")[0]


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(console_sessions)).scalar_one())


def test_the_table_holds_the_hash_and_the_cookie_finds_it(store: ConsoleSessionStore,
                                                          engine: Engine, token_id: str) -> None:
    cookie, session = store.start(token_id)
    with engine.connect() as conn:
        stored = conn.execute(select(console_sessions.c.id)).scalar_one()
    assert stored == session_id(cookie) == session.id and cookie not in stored
    found = store.resume(cookie)
    assert found is not None and found.token_id == token_id and found.token_label == "unit"
    assert found.csrf_token == session.csrf_token and len(found.csrf_token) >= 40
    assert found.expires_at == START + timedelta(hours=8)


def test_unknown_empty_and_oversized_cookies_find_nothing(store: ConsoleSessionStore,
                                                          token_id: str) -> None:
    store.start(token_id)
    for cookie in (None, "", "x" * 500, "not-a-session"):
        assert store.resume(cookie) is None


def test_idle_for_30_minutes_ends_the_session(store: ConsoleSessionStore, clock: FixedClock,
                                              engine: Engine, token_id: str) -> None:
    cookie, _ = store.start(token_id)
    clock.at = START + timedelta(minutes=29)
    assert store.resume(cookie) is not None  # touched: the idle clock restarts
    clock.at = START + timedelta(minutes=58)
    assert store.resume(cookie) is not None
    clock.at = START + timedelta(minutes=88)
    assert store.resume(cookie) is None and _rows(engine) == 0


def test_a_passive_resume_does_not_count_as_activity(store: ConsoleSessionStore,
                                                     clock: FixedClock, token_id: str) -> None:
    cookie, _ = store.start(token_id)
    clock.at = START + timedelta(minutes=20)
    assert store.resume(cookie, touch=False) is not None
    clock.at = START + timedelta(minutes=30)
    assert store.resume(cookie, touch=False) is None


def test_eight_hours_is_the_end_however_active(store: ConsoleSessionStore, clock: FixedClock,
                                               token_id: str) -> None:
    cookie, _ = store.start(token_id)
    for minutes in range(20, 8 * 60, 20):
        clock.at = START + timedelta(minutes=minutes)
        assert store.resume(cookie) is not None
    clock.at = START + timedelta(hours=8)
    assert store.resume(cookie) is None


def test_end_and_end_all_for_token_and_purge(store: ConsoleSessionStore, clock: FixedClock,
                                             engine: Engine, token_id: str) -> None:
    first, session = store.start(token_id)
    store.end(session)
    assert store.resume(first) is None
    store.start(token_id)
    store.start(token_id)
    assert store.end_all_for_token(token_id) == 2
    store.start(token_id)
    clock.at = START + timedelta(hours=1)
    assert store.purge_expired() == 1 and _rows(engine) == 0


def test_a_new_login_forgets_sessions_that_ran_out(store: ConsoleSessionStore,
                                                   clock: FixedClock, engine: Engine,
                                                   token_id: str) -> None:
    store.start(token_id)
    clock.at = START + timedelta(hours=2)
    store.start(token_id)
    assert _rows(engine) == 1


def test_the_session_id_is_a_sha256_hex_digest() -> None:
    assert session_id("a") != session_id("b") and len(session_id("a")) == 64
