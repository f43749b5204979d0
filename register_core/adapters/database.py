"""Engine construction and migrations. Called from the composition root, never on import."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event

WRITER_OPTION = "s117_writer"  # execution option: this connection's transactions write

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def ensure_sqlite_folder(url: str) -> None:
    """An embedded SQLite file may live in a folder that does not exist yet (``var/``)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    ensure_sqlite_folder(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # We issue BEGIN ourselves (pysqlite's implicit one breaks SAVEPOINT). WAL lets the
            # API read while the worker writes; foreign keys are off by default.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            # A writer takes the write lock up front (waiting up to busy_timeout) rather than
            # failing with "database is locked" when it upgrades from reading.
            immediate = conn.get_execution_options().get(WRITER_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def writer(engine: Engine) -> Connection:
    """A connection whose transactions will write (BEGIN IMMEDIATE on SQLite)."""
    return engine.connect().execution_options(**{WRITER_OPTION: True})


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)
