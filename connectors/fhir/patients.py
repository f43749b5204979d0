"""Whether a ``Patient/<id>`` a FHIR submission refers to, but does not carry, is known.

``mapping.fhir_r4`` maps such a reference as the source's own record ``<id>``; the worker
then links the Encounter or EpisodeOfCare to the register person holding that record, or —
when nobody does — starts a new person known by nothing but that id: a record no one can
find, and the real person's record without the detention or entitlement. So the REST edge
asks here first and refuses (422 ``not-found``) what would land on such a person.

Known means what the worker will find when it applies the message, in arrival order:

* a register person holds the source's identifier ``<id>`` (the worker's exact link); or
* a Patient ``<id>`` sent on its own by the same source is still waiting in the inbox
  (``received``) and maps to record ``<id>``: it is applied first (same person key, same
  partition, earlier row), so a Patient POSTed just before its Encounter is not refused.

A Patient ``<id>`` sent inside an earlier Bundle that is not applied yet is not looked for
(its row is keyed by the Bundle): send them in one transaction, or name the patient by NHS
number. Reads only; nothing here writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, select

from mapping.errors import MappingError
from mapping.fhir_r4 import map_patient
from register_core.adapters.repository import SqlPersonRepository
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import inbox_messages

# Waiting single-Patient rows read per look-up: versions of one Patient, newest first.
_WAITING_LIMIT = 5


class PatientDirectory(Protocol):
    def knows(self, source: SourceDefinition, local_id: str) -> bool: ...


@dataclass(frozen=True)
class RegisterPatients:
    """The register and the inbox of one hub, as a ``PatientDirectory``."""

    engine: Engine

    def knows(self, source: SourceDefinition, local_id: str) -> bool:
        with self.engine.connect() as conn:
            if SqlPersonRepository(conn).id_by_identifier(source.source_id, local_id):
                return True
            # Single-resource message ids are ``Patient/<id>/_history/<version>``
            # (connectors.fhir.submission); FHIR ids hold no LIKE wildcard but ``_``, escaped.
            prefix = f"Patient/{local_id}/_history/".replace("_", "\\_")
            rows = conn.execute(
                select(inbox_messages.c.payload, inbox_messages.c.received_at)
                .where(inbox_messages.c.source == source.source_id,
                       inbox_messages.c.status == "received",
                       inbox_messages.c.message_id.like(f"{prefix}%", escape="\\"))
                .order_by(inbox_messages.c.id.desc()).limit(_WAITING_LIMIT)).all()
        return any(_maps_to(payload, received_at, source, local_id)
                   for payload, received_at in rows)


def _maps_to(payload: str, received_at: datetime, source: SourceDefinition,
             local_id: str) -> bool:
    """Whether a waiting Patient will be recorded as the source's record ``local_id`` (a
    Patient with another record identifier is known by that one, not by its logical id)."""
    try:
        [details] = map_patient(json.loads(payload), source.mapping_config(), received_at)
    except (MappingError, ValueError, TypeError):
        return False  # it will fail itself: nothing for the reference to land on
    return details.person.local_id == local_id
