"""Partner systems that send: stored in ``sources``, seeded from the config file
(``config_seeds``: a file entry is applied when new or changed, so API changes last).

The MLLP hot path asks "which source is MSH-3/MSH-4?" for every message, so definitions are
cached in memory and the cache is dropped whenever this process changes one (other processes
see a change within ``ttl_seconds``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, delete, insert, select, update

from mapping.config import SourceMappingConfig
from mapping.council import CsvColumnMap

from .config_seeds import SeedTarget, apply_file_entries
from .tables import sources


class PollSettings(BaseModel):
    """Where a ``council-poll`` or FHIR poll source is pulled from."""

    model_config = ConfigDict(extra="forbid")

    url: str
    interval_seconds: float = Field(default=60, gt=0)
    bearer_token: str | None = None


class SourceDefinition(SourceMappingConfig):
    """A source as the API and the config file describe it (id is ``source_id``)."""

    enabled: bool = True
    poll: PollSettings | None = None
    csv: CsvColumnMap = Field(default_factory=CsvColumnMap)

    def mapping_config(self) -> SourceMappingConfig:
        return SourceMappingConfig.model_validate(
            self.model_dump(include=set(SourceMappingConfig.model_fields)))


def _row_to_definition(row: Any) -> SourceDefinition:
    return SourceDefinition.model_validate({
        **row.config, "source_id": row.id, "kind": row.kind, "display_name": row.display_name,
        "organisation_code": row.organisation_code, "enabled": row.enabled})


class SourceRegistry:
    def __init__(self, engine: Engine, ttl_seconds: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, SourceDefinition] | None = None
        self._loaded_at = 0.0

    def _all(self) -> dict[str, SourceDefinition]:
        with self._lock:
            if self._cache is None or time.monotonic() - self._loaded_at > self.ttl:
                with self.engine.connect() as conn:
                    rows = conn.execute(select(sources).order_by(sources.c.id)).all()
                self._cache = {r.id: _row_to_definition(r) for r in rows}
                self._loaded_at = time.monotonic()
            return self._cache

    def invalidate(self) -> None:
        with self._lock:
            self._cache = None

    def list(self) -> list[SourceDefinition]:
        return list(self._all().values())

    def get(self, source_id: str) -> SourceDefinition | None:
        return self._all().get(source_id)

    def match_hl7(self, sending_application: str, sending_facility: str
                  ) -> SourceDefinition | None:
        """The enabled HL7 source whose configured MSH-3 and MSH-4 (when set) both match."""
        for source in self._all().values():
            if source.kind != "hl7v2-mllp" or not source.enabled:
                continue
            app, facility = source.hl7_sending_application, source.hl7_sending_facility
            if app is None and facility is None:
                continue
            if (app is None or app == sending_application) and (
                    facility is None or facility == sending_facility):
                return source
        return None

    def save(self, definition: SourceDefinition, now: datetime) -> bool:
        """Insert or replace; True when it was new."""
        with self.engine.begin() as conn:
            created = _write(conn, definition, now)
        self.invalidate()
        return created

    def delete(self, source_id: str) -> bool:
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(sources).where(sources.c.id == source_id)).rowcount
        self.invalidate()
        return bool(deleted)

    def preload(self, definitions: list[dict[str, Any]], now: datetime) -> int:
        """Seed the config file's ``sources``: an entry is written when it first appears and
        again only when it changes in the file, so a change made through the API to a
        source the file defines lasts until that entry is edited. Returns how many were
        written."""
        report = apply_file_entries(self.engine, _SEED, definitions, now)
        self.invalidate()
        return len(report.applied)


def _read(conn: Connection, source_id: str) -> SourceDefinition | None:
    row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
    return None if row is None else _row_to_definition(row)


def _write(conn: Connection, definition: SourceDefinition, now: datetime) -> bool:
    """Insert or replace in the caller's transaction; True when it was new."""
    config = definition.model_dump(
        mode="json",
        exclude={"source_id", "kind", "display_name", "organisation_code", "enabled"})
    values = {"kind": definition.kind,
              "display_name": definition.display_name or definition.source_id,
              "organisation_code": definition.organisation_code, "config": config,
              "enabled": definition.enabled, "updated_at": now}
    updated = conn.execute(update(sources).where(sources.c.id == definition.source_id)
                           .values(**values)).rowcount
    if not updated:
        conn.execute(insert(sources).values(id=definition.source_id, created_at=now, **values))
    return not updated


_SEED = SeedTarget(kind="source", id_field="source_id",
                   validate=SourceDefinition.model_validate, read=_read, write=_write)
