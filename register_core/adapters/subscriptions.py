"""Partner systems that receive: stored in ``subscriptions``, seeded from the config file
(``config_seeds``: a file entry is applied when new or changed, so API changes last).

A subscription says where (``endpoint``), how (``kind``), with what credential, and which
status changes the partner wants (``changes``: register fields, responsible councils, ICBs).
Definitions are cached per process for ``ttl_seconds`` because every status change asks
"who wants this?"; a change made through this registry drops the cache at once.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Connection, Engine, delete, insert, select, update

from register_core.services.handlers import STATUS_FIELDS

from .config_seeds import SeedTarget, apply_file_entries
from .tables import subscriptions

SubscriptionKind = Literal["fhir-r4", "council-rest", "hl7v2-mllp"]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_HOST_PORT = re.compile(r"^(?:mllp://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bearer_token: str | None = Field(default=None, description="Write-only: shown as `***`.")


class ChangeFilter(BaseModel):
    """Which status changes the partner wants; an empty list means "any"."""

    model_config = ConfigDict(extra="forbid")
    fields: list[str] = Field(default_factory=list, description=(
        "Register fields whose change is wanted, e.g. `entitlement.status`; empty: any "
        "status field."), examples=[["entitlement.status", "entitlement.ended"]])
    councils: list[str] = Field(default_factory=list, description=(
        "Responsible councils (ONS GSS) before or after the change; empty: any."))
    icbs: list[str] = Field(default_factory=list, description=(
        "Responsible ICBs (ODS) before or after the change; empty: any."))

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - STATUS_FIELDS)
        if unknown:
            raise ValueError(f"not a status field: {', '.join(unknown)}; one of "
                             f"{', '.join(sorted(STATUS_FIELDS))}")
        return value


class RetrySettings(BaseModel):
    """Backoff base·2^(n-1) capped at ``max_backoff_seconds``, half of it random jitter."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=12, ge=1, le=100)
    min_backoff_seconds: float = Field(default=5.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)


class Hl7Header(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sending_application: str = "S117HUB"
    sending_facility: str = "HUB"
    receiving_application: str = ""
    receiving_facility: str = ""
    version: str = "2.4"


class SubscriptionDefinition(BaseModel):
    """A subscriber as the API and the config file describe it."""

    model_config = ConfigDict(extra="forbid")
    subscription_id: str = Field(pattern=_ID)
    kind: SubscriptionKind
    display_name: str | None = None
    endpoint: str = Field(description=(
        "fhir-r4: the FHIR base URL; council-rest: the URL documents are POSTed to; "
        "hl7v2-mllp: `host:port` (or `mllp://host:port`)."))
    credentials: Credentials = Field(default_factory=Credentials)
    changes: ChangeFilter = Field(default_factory=ChangeFilter)
    enabled: bool = True
    fhir_identifier_system: str = Field(
        default="urn:s117hub:register-id",
        description="System of the EpisodeOfCare identifier used in the conditional PUT.")
    hl7: Hl7Header = Field(default_factory=Hl7Header)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    concurrency: int = Field(default=8, ge=1, le=64,
                             description="Deliveries in flight at once per worker batch.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_fits_kind(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind == "hl7v2-mllp":
            match = _HOST_PORT.match(value)
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ValueError("an hl7v2-mllp endpoint is host:port")
        elif kind is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"a {kind} endpoint is an http(s) URL")
        return value

    @property
    def mllp_address(self) -> tuple[str, int]:
        match = _HOST_PORT.match(self.endpoint)
        assert match is not None, "validated"
        return match.group(1).strip("[]"), int(match.group(2))


def _row_to_definition(row: Any) -> SubscriptionDefinition:
    return SubscriptionDefinition.model_validate({
        **row.config, "subscription_id": row.id, "kind": row.kind,
        "display_name": row.display_name, "endpoint": row.endpoint, "enabled": row.enabled})


def load_all(conn: Connection) -> list[SubscriptionDefinition]:
    rows = conn.execute(select(subscriptions).order_by(subscriptions.c.id)).all()
    return [_row_to_definition(r) for r in rows]


class SubscriptionRegistry:
    def __init__(self, engine: Engine, ttl_seconds: float = 5.0) -> None:
        self.engine = engine
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, SubscriptionDefinition] | None = None
        self._loaded_at = 0.0

    def _all(self) -> dict[str, SubscriptionDefinition]:
        with self._lock:
            if self._cache is None or time.monotonic() - self._loaded_at > self.ttl:
                with self.engine.connect() as conn:
                    self._cache = {s.subscription_id: s for s in load_all(conn)}
                self._loaded_at = time.monotonic()
            return self._cache

    def invalidate(self) -> None:
        with self._lock:
            self._cache = None

    def list(self) -> list[SubscriptionDefinition]:
        return list(self._all().values())

    def get(self, subscription_id: str) -> SubscriptionDefinition | None:
        return self._all().get(subscription_id)

    def save(self, definition: SubscriptionDefinition, now: datetime) -> bool:
        """Insert or replace; True when it was new."""
        with self.engine.begin() as conn:
            created = _write(conn, definition, now)
        self.invalidate()
        return created

    def delete(self, subscription_id: str) -> bool:
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(subscriptions)
                                   .where(subscriptions.c.id == subscription_id)).rowcount
        self.invalidate()
        return bool(deleted)

    def preload(self, definitions: list[dict[str, Any]], now: datetime) -> int:
        """Seed the config file's ``subscriptions``: an entry is written when it first
        appears and again only when it changes in the file, so a change made through the
        API (disabling one, a new credential) lasts until that entry is edited. Returns how
        many were written."""
        report = apply_file_entries(self.engine, _SEED, definitions, now)
        self.invalidate()
        return len(report.applied)


def _read(conn: Connection, subscription_id: str) -> SubscriptionDefinition | None:
    row = conn.execute(select(subscriptions)
                       .where(subscriptions.c.id == subscription_id)).first()
    return None if row is None else _row_to_definition(row)


def _write(conn: Connection, definition: SubscriptionDefinition, now: datetime) -> bool:
    """Insert or replace in the caller's transaction; True when it was new."""
    config = definition.model_dump(mode="json", exclude={
        "subscription_id", "kind", "display_name", "endpoint", "enabled"})
    values = {"kind": definition.kind,
              "display_name": definition.display_name or definition.subscription_id,
              "endpoint": definition.endpoint, "config": config,
              "enabled": definition.enabled, "updated_at": now}
    updated = conn.execute(update(subscriptions).where(
        subscriptions.c.id == definition.subscription_id).values(**values)).rowcount
    if not updated:
        conn.execute(insert(subscriptions).values(
            id=definition.subscription_id, created_at=now, **values))
    return not updated


_SEED = SeedTarget(kind="subscription", id_field="subscription_id",
                   validate=SubscriptionDefinition.model_validate, read=_read, write=_write)
