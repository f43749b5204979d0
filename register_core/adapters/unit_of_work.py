"""The unit of work: one transaction, rolled back unless ``commit()`` is called."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine

from .database import writer
from .repository import SqlPersonRepository


class SqlUnitOfWork:
    connection: Connection
    persons: SqlPersonRepository

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._committed = False

    def __enter__(self) -> SqlUnitOfWork:
        self.connection = writer(self.engine)
        self._tx = self.connection.begin()
        self.persons = SqlPersonRepository(self.connection)
        self._committed = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._tx.is_active:
                self._tx.rollback()
        finally:
            self.connection.close()

    def commit(self) -> None:
        self._tx.commit()
        self._committed = True

    def rollback(self) -> None:
        if self._tx.is_active:
            self._tx.rollback()
