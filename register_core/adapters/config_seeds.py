"""Config as seed: the config file's sources and subscriptions are applied to the database
when an entry first appears, and again only when that entry in the file changes.

Every process that starts from the config file preloads it (``serve``, ``mllp``, ``worker``,
``import-csv``, ``replay``). A digest of each entry as last applied is kept per kind and id
(``config_seeds``), so an unchanged entry is skipped and a change made through the API lasts
until someone edits that entry in the file. Deleting an entry from the file deletes nothing
stored; deleting a stored definition through the API lasts likewise.

When an edited entry does overwrite API changes, the log names the id and the top-level
fields, never their values: a subscription's credentials are among them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from .database import write_transaction
from .tables import config_seeds

log = logging.getLogger(__name__)

DefinitionT = TypeVar("DefinitionT", bound=BaseModel)


@dataclass(frozen=True)
class SeedTarget(Generic[DefinitionT]):
    """How one registry reads and writes its definitions inside a seeding transaction."""

    kind: str  # "source" | "subscription": the key in ``config_seeds`` and the logs' word
    id_field: str  # the definition's id attribute: ``source_id``, ``subscription_id``
    validate: Callable[[Mapping[str, Any]], DefinitionT]
    read: Callable[[Connection, str], DefinitionT | None]
    write: Callable[[Connection, DefinitionT, datetime], object]


@dataclass
class SeedReport:
    applied: list[str] = field(default_factory=list)  # new or changed in the file: written
    kept: list[str] = field(default_factory=list)  # unchanged in the file: stored one kept


def _digest(value: Any) -> str:
    # Canonical JSON of the parsed entry: reordering keys or reformatting the file (TOML or
    # JSON) is no change; default=str covers TOML dates.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def entry_digest(raw: Mapping[str, Any]) -> str:
    """The digest of a config file entry as written (not as normalised: a field a newer
    version adds with a default must not make every entry look edited)."""
    return _digest(dict(raw))


def field_digests(definition: BaseModel) -> dict[str, str]:
    """A digest per top-level field: enough to tell which fields changed, and no values."""
    return {name: _digest(value)
            for name, value in definition.model_dump(mode="json").items()}


def _differing(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys()
                  if before.get(name) != after.get(name))


def _seed_one(conn: Connection, target: SeedTarget[DefinitionT], entry_id: str,
              raw: Mapping[str, Any], definition: DefinitionT, now: datetime) -> bool:
    """Apply one entry unless it is what was last applied; True when written."""
    digest = entry_digest(raw)
    seen = conn.execute(select(config_seeds.c.digest, config_seeds.c.fields).where(
        config_seeds.c.kind == target.kind, config_seeds.c.id == entry_id)).first()
    if seen is not None and seen.digest == digest:
        return False  # unchanged in the file: whatever is stored (an API change) stands
    stored = target.read(conn, entry_id)
    target.write(conn, definition, now)
    applied = target.read(conn, entry_id)
    assert applied is not None, "written in this transaction"
    # Read back rather than taken from the file: what the registry stores (a default
    # display name, say) is what a later API change is compared with.
    applied_fields = field_digests(applied)
    _say_what_was_replaced(target.kind, entry_id, seen, stored, applied_fields)
    values = {"digest": digest, "fields": applied_fields, "applied_at": now}
    if seen is None:
        conn.execute(insert(config_seeds).values(kind=target.kind, id=entry_id, **values))
    else:
        conn.execute(update(config_seeds).where(
            config_seeds.c.kind == target.kind, config_seeds.c.id == entry_id).values(**values))
    return True


def _say_what_was_replaced(kind: str, entry_id: str, seen: Any, stored: BaseModel | None,
                           applied_fields: Mapping[str, str]) -> None:
    """Log which top-level fields the file's entry overwrote, by name only."""
    extra = {kind: entry_id} if kind == "source" else {}
    if stored is None:
        if seen is not None:
            log.warning("config file: %s %r was deleted through the API; its entry in the "
                        "file changed, so it is created again", kind, entry_id, extra=extra)
        return
    stored_fields = field_digests(stored)
    if seen is None:
        # Stored before the file named it (created through the API, or by a version that
        # re-applied the file at every start): the file's first appearance wins.
        replaced = _differing(stored_fields, applied_fields)
        if replaced:
            log.warning("config file: %s %r is new in the file and replaces the stored "
                        "definition's %s", kind, entry_id, ", ".join(replaced), extra=extra)
        return
    # Changed since the file's entry was last applied: changed through the API. Fields the
    # newer entry sets to what the API had set are no loss, so they are not named.
    changed_since = set(_differing(seen.fields, stored_fields)) & set(stored_fields)
    overwritten = sorted(name for name in changed_since
                         if applied_fields.get(name) != stored_fields[name])
    if overwritten:
        log.warning("config file: %s %r changed in the file; its entry overwrites changes "
                    "made through the API to %s", kind, entry_id, ", ".join(overwritten),
                    extra=extra)
    else:
        log.info("config file: %s %r changed in the file and is applied", kind, entry_id,
                 extra=extra)


def apply_file_entries(engine: Engine, target: SeedTarget[DefinitionT],
                       entries: Sequence[Mapping[str, Any]], now: datetime) -> SeedReport:
    """Seed ``entries`` (the config file's list for ``target.kind``): new and changed ones
    are written, unchanged ones leave the stored definition alone."""
    # Validate every entry before writing any: a bad file changes nothing.
    latest: dict[str, tuple[Mapping[str, Any], DefinitionT]] = {}
    for raw in entries:
        definition = target.validate(raw)
        entry_id = str(getattr(definition, target.id_field))
        if entry_id in latest:
            log.warning("config file: %s %r is defined more than once; the last entry is "
                        "used", target.kind, entry_id)
        latest[entry_id] = (raw, definition)
    report = SeedReport()
    for entry_id, (raw, definition) in latest.items():
        try:
            with write_transaction(engine) as conn:
                written = _seed_one(conn, target, entry_id, raw, definition, now)
        except IntegrityError:
            # Another process (a worker starting beside serve) seeded this id at the same
            # moment on PostgreSQL: look again, now that its row is committed.
            with write_transaction(engine) as conn:
                written = _seed_one(conn, target, entry_id, raw, definition, now)
        (report.applied if written else report.kept).append(entry_id)
    if latest:
        log.info("config file: %d %s(s); applied (new or changed in the file): %s; "
                 "unchanged since last applied, stored definition kept: %s",
                 len(latest), target.kind, ", ".join(report.applied) or "none",
                 ", ".join(report.kept) or "none")
    return report
