"""Engine construction and migrations. Called from the composition root, never on import."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event

WRITER_OPTION = "s117_writer"  # execution option: this connection's transactions write
_HOLDS_LOCK = "s117_holds_write_lock"
URGENT_OPTION = "s117_urgent"  # a writer someone is waiting on (an ACK): batches yield to it
_URGENT_WAITING: weakref.WeakKeyDictionary[Engine, list[int]] = weakref.WeakKeyDictionary()

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def ensure_sqlite_folder(url: str) -> None:
    """An embedded SQLite file may live in a folder that does not exist yet (``var/``)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    ensure_sqlite_folder(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30},
                               hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # We issue BEGIN ourselves (pysqlite's implicit one breaks SAVEPOINT). WAL lets the
            # API read while the worker writes; foreign keys are off by default. FULL: each
            # commit waits for the WAL's fsync, so an ACKed message survives a power cut or
            # an OS crash as well as the hub's (NORMAL could roll back the last commits).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        # SQLite has one writer at a time. Writers in this process queue on a Python lock
        # (woken at once when it frees) instead of SQLite's busy handler, which sleeps in
        # growing steps and starved the MLLP listener behind the worker; other processes
        # still wait through busy_timeout.
        write_lock = threading.Lock()
        urgent = _URGENT_WAITING.setdefault(engine, [0])  # a mutable cell

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            # A writer takes the write lock up front rather than failing with "database is
            # locked" when it upgrades from reading.
            if not conn.get_execution_options().get(WRITER_OPTION, False):
                conn.exec_driver_sql("BEGIN")
                return
            is_urgent = conn.get_execution_options().get(URGENT_OPTION, False)
            if is_urgent:
                urgent[0] += 1
            try:
                write_lock.acquire()
            finally:
                if is_urgent:
                    urgent[0] -= 1
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                write_lock.release()
                raise
            conn.info[_HOLDS_LOCK] = True

        def _release(conn) -> None:  # type: ignore[no-untyped-def]
            if conn.info.pop(_HOLDS_LOCK, False):
                write_lock.release()

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)
        return engine
    # hide_parameters: an error's text (logged, printed) must not quote a row's values, which
    # are names and NHS numbers.
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         hide_parameters=True)


def engine_for_child(engine: Engine) -> Engine:
    """A new engine on ``engine``'s database, for a forked process: connections must not
    cross a fork (the parent disposes its pool before forking; each child opens its own)."""
    return make_engine(engine.url.render_as_string(hide_password=False))


def writer(engine: Engine, *, urgent: bool = False) -> Connection:
    """A connection whose transactions will write (BEGIN IMMEDIATE on SQLite). ``urgent``:
    a sender waits for this commit, so background batches give way to it."""
    return engine.connect().execution_options(**{WRITER_OPTION: True, URGENT_OPTION: urgent})


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write, committed on success: for reads that also write (an
    audit row). On SQLite a transaction that reads first and writes later fails at once if
    another writer committed meanwhile; this one takes the write lock up front."""
    with writer(engine) as conn, conn.begin():
        yield conn


def urgent_writers_waiting(engine: Engine) -> bool:
    """Whether an urgent writer waits for SQLite's write lock (always False elsewhere)."""
    cell = _URGENT_WAITING.get(engine)
    return bool(cell and cell[0])


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)


def as_utc(value: datetime) -> datetime:
    """Aware and in UTC: SQLite hands date-times back naive, and everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
