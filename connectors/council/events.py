"""One council event in: validate and map at the edge, store through the Intake, answer.

Used by ``POST /api/v1/sources/{source}/events`` (channel ``council-rest``) and the change-feed
poller (``council-poll``). Each event is its own inbox row whose message id is its
``event_id`` (or ``sha256:<digest of the payload>`` when it has none usable), so the same
event sent again is a duplicate: acknowledged again and never applied twice.

Mapping is pure and cheap, so it runs here too: an event that can never be applied is stored
``failed`` with its error and answered at once. The answer given is kept in the row's ``ack``
(JSON); a duplicate gets that first answer back, marked ``duplicate``. A corrected event must
therefore carry a new ``event_id`` (or be replayed from the console after a code-map fix).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mapping.config import SourceMappingConfig
from mapping.council import map_council_event, validate_council_event
from mapping.errors import MappingError
from register_core.adapters.inbox import Stored
from register_core.domain.commands import Command

from ..inbound_mapper import json_without_nul, may_hold_nul, nul_error, nul_location
from ..intake import Intake

MAX_MESSAGE_ID = 200  # inbox_messages.message_id
MAX_MESSAGE_TYPE = 60  # inbox_messages.message_type


@dataclass(frozen=True)
class EventOutcome:
    """What one event got: stored (always), accepted or not, and why not."""

    event_id: str | None
    message_id: int  # the inbox row id
    duplicate: bool
    accepted: bool
    code: str | None = None
    message: str | None = None
    location: str | None = None

    def accepted_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "message_id": self.message_id,
                "duplicate": self.duplicate}

    def error_dict(self) -> dict[str, Any]:
        return {**self.accepted_dict(), "code": self.code, "message": self.message,
                "location": self.location}


def to_json(event: Any) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_id_of(event: Any) -> str | None:
    value = event.get("event_id") if isinstance(event, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def message_id_for(event_id: str | None, payload: str) -> str:
    """The inbox key: the event id, else a digest of the payload (the same bytes dedupe)."""
    if event_id and len(event_id) <= MAX_MESSAGE_ID:
        return event_id
    return f"sha256:{digest(payload)}"


def _type_of(event: Any) -> str | None:
    value = event.get("type") if isinstance(event, dict) else None
    return value[:MAX_MESSAGE_TYPE] if isinstance(value, str) and value else None


def _answer(error: MappingError | None) -> dict[str, Any]:
    if error is None:
        return {"accepted": True}
    return {"accepted": False, "code": error.code, "message": error.message,
            "location": error.location}


def _first_answer(stored: Stored) -> dict[str, Any]:
    """The answer given the first time (kept in ``ack``), for a duplicate."""
    try:
        answer = json.loads(stored.ack) if stored.ack else None
    except json.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("accepted"), bool):
        return answer
    if stored.status in ("failed", "rejected"):
        return {"accepted": False, "code": "invalid-value", "location": None,
                "message": "an event with this id was stored before and could not be applied"}
    return {"accepted": True}


def _outcome(event_id: str | None, stored: Stored, answer: dict[str, Any]) -> EventOutcome:
    if stored.duplicate:
        answer = _first_answer(stored)
    return EventOutcome(event_id=event_id, message_id=stored.id, duplicate=stored.duplicate,
                        accepted=bool(answer["accepted"]), code=answer.get("code"),
                        message=answer.get("message"), location=answer.get("location"))


def accept_event(intake: Intake, *, source_id: str, config: SourceMappingConfig, channel: str,
                 event: Any, received_at: datetime, payload: str | None = None
                 ) -> EventOutcome:
    """Store one event (``payload`` is its JSON text; re-serialised when not given)."""
    text = payload if payload is not None else to_json(event)
    event_id = event_id_of(event)
    commands: list[Command] = []
    error: MappingError | None = None
    try:
        commands = map_council_event(validate_council_event(event), config, received_at)
    except MappingError as exc:
        error = exc
    answer = _answer(error)
    stored = intake.accept(
        source=source_id, channel=channel, message_id=message_id_for(event_id, text),
        message_type=_type_of(event), payload=text, received_at=received_at,
        commands=commands, error=error, ack=json.dumps(answer))
    return _outcome(event_id, stored, answer)


def reject_body(intake: Intake, *, source_id: str, channel: str, text: str,
                received_at: datetime, error: MappingError, received: bytes | None = None
                ) -> EventOutcome:
    """Keep a body that is not JSON at all (status ``rejected``), keyed by its digest, with
    the bytes ``received`` where ``text`` does not give them back."""
    answer = _answer(error)
    stored = intake.reject(source=source_id, channel=channel,
                           message_id=f"unparseable:{digest(text)}", payload=text,
                           received_at=received_at, error=error, ack=json.dumps(answer),
                           received=received)
    return _outcome(None, stored, answer)


def refuse_nul_event(intake: Intake, *, source_id: str, channel: str, event: Any,
                     location: str, received_at: datetime, payload: str | None = None
                     ) -> EventOutcome:
    """Store an event with a NUL in a string as ``rejected``, exactly (NUL as ``\\u0000``),
    keyed by its digest: its ``event_id`` may hold the NUL, and the corrected event may keep
    that id. PostgreSQL could store neither the NUL nor anything a worker made of it."""
    text = json_without_nul(payload if payload is not None else to_json(event))
    error = nul_error(location)
    answer = _answer(error)
    stored = intake.reject(source=source_id, channel=channel,
                           message_id=f"sha256:{digest(text)}", payload=text,
                           received_at=received_at, error=error, ack=json.dumps(answer))
    return EventOutcome(event_id=event_id_of(event), message_id=stored.id,
                        duplicate=stored.duplicate, accepted=False, code=error.code,
                        message=error.message, location=error.location)


def take_event(intake: Intake, *, source_id: str, config: SourceMappingConfig, channel: str,
               event: Any, received_at: datetime, payload: str | None = None) -> EventOutcome:
    """``accept_event``, or ``refuse_nul_event`` when a string of the event holds a NUL (the
    REST route and the change-feed poller: a NUL in an event id failed the insert on
    PostgreSQL, and a feed stopped at that event for good). ``payload``: the event's text as
    received, when it came alone."""
    text = payload if payload is not None else to_json(event)
    location = nul_location(event) if may_hold_nul(text) else None
    if location is not None:
        return refuse_nul_event(intake, source_id=source_id, channel=channel, event=event,
                                location=location, received_at=received_at, payload=text)
    return accept_event(intake, source_id=source_id, config=config, channel=channel,
                        event=event, received_at=received_at, payload=text)
