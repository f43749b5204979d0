"""From an MLLP frame to a stored inbox row and the ACK to send back.

Order matters: the message (even one we reject) is committed to the inbox *before* the ACK is
returned, so an ``AA`` always means "stored durably". Mapping is tried here too, because it is
pure and cheap, so a message that can never be applied is answered ``AE`` with an ERR segment
at once; applying it to the register happens later in a worker.

Acknowledgement modes (HL7 v2 chapter 2):
* original (MSH-15/16 empty): one ACK, AA / AE / AR;
* enhanced (MSH-15 set): a commit ACK CA / CE / CR when MSH-15 asks for it (AL, ER, SU), then
  an application ACK AA / AE after the worker applied it, when MSH-16 asks for it.

An ACK that cannot be built from the sender's header (a bug, an input nobody foresaw) never
costs the sender its answer: the message is stored all the same and answered with
``fallback_ack`` (the same code and MSA-2 echo, without the sender's MSH-3..6), and the failure
is logged with ids and code locations only, never the payload or an exception's text.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import Engine

from mapping.config import SourceMappingConfig
from mapping.errors import MappingError
from mapping.hl7v2 import map_adt
from mapping.hl7v2_ack import AckCode, build_ack, fallback_ack, success_ack
from mapping.hl7v2_parse import ParsedAdt, parse_adt
from register_core.adapters.inbox import Inbox, Stored
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from register_core.domain.commands import Command
from register_core.ports import Clock

from ..intake import Intake, Row
from .server import Reply, failure_summary

log = logging.getLogger(__name__)

CHANNEL = "hl7v2-mllp"


class UnknownSender(Exception):
    """No configured source has this MSH-3/MSH-4."""


def _wants(ack_type: str, success: bool) -> bool:
    """Whether MSH-15/16 asks for an ACK of this outcome (AL always, NE never)."""
    kind = (ack_type or "AL").upper()
    return kind == "AL" or (kind == "SU" and success) or (kind == "ER" and not success)


# Frames up to this size are parsed on the event loop (well under a millisecond); larger ones
# in a thread, so one huge message does not hold up every other connection and the API.
INLINE_BYTES = 32 * 1024


@dataclass(frozen=True)
class _Step:
    """A frame parsed and mapped, its inbox row and ACK ready, waiting for the commit."""

    row: Row
    ack: str
    parsed: ParsedAdt | None
    success: bool
    rejected: str | None = None  # the pseudo-source of a frame we refuse (AR/CR)


@dataclass
class Hl7Receiver:
    engine: Engine
    sources: SourceRegistry
    clock: Clock
    notify: Callable[[int], None]  # partition with new work (a dramatiq hint)
    app_ack_timeout: float = 120.0

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.engine)
        self.intake = Intake(self.inbox, self.notify)
        self._configs: dict[str, tuple[SourceDefinition, SourceMappingConfig]] = {}

    def _mapping_config(self, source: SourceDefinition) -> SourceMappingConfig:
        """Built once per definition (a pydantic round trip cost 12 us a message); the
        registry hands out a new definition object when a source changes."""
        cached = self._configs.get(source.source_id)
        if cached is None or cached[0] is not source:
            cached = (source, source.mapping_config())
            self._configs[source.source_id] = cached
        return cached[1]

    def handle(self, payload: bytes) -> Reply:
        """Blocking: parse, map, store (committed), and the reply to send."""
        step = self._prepare(payload)
        return self._finish(step, self.intake.stored(step.row,
                                                     self.inbox.store(**step.row.fields)))

    async def handle_async(self, payload: bytes) -> Reply:
        """``handle`` for the event loop: parsing and mapping run here (CPU work that threads
        cannot share under the GIL; a large frame goes to a thread so the loop stays
        responsive), the store joins the inbox writer's next group commit."""
        if len(payload) > INLINE_BYTES:
            step = await asyncio.get_running_loop().run_in_executor(None, self._prepare,
                                                                    payload)
        else:
            step = self._prepare(payload)
        row = step.row
        return self._finish(step, await self.inbox.store_async(
            lambda stored: self.intake.stored(row, stored), **row.fields))

    def _prepare(self, payload: bytes) -> _Step:
        text = _decode(payload)
        received_at = self.clock.now()
        try:
            parsed = parse_adt(text)
        except MappingError as exc:
            return self._reject(text, None, exc, received_at, source="unparseable")
        source = self._sender(parsed)
        if source is None:
            error = MappingError("invalid-value", "no source is configured for sending "
                                 f"application {parsed.sending_application!r} / facility "
                                 f"{parsed.sending_facility!r}", location="MSH-3")
            return self._reject(text, parsed, error, received_at, source="unknown-sender")
        enhanced = bool(parsed.accept_ack_type)
        commands: list[Command] = []
        failure: MappingError | None = None
        try:
            commands = map_adt(parsed, self._mapping_config(source), received_at)
        except MappingError as exc:
            failure = exc
        message_id = parsed.control_id or f"no-control-id:{uuid.uuid4()}"
        if failure is None:
            code: AckCode = "CA" if enhanced else "AA"
            own_id = _ack_control_id()
            ack = _answer(lambda: success_ack(parsed, code, control_id=own_id), parsed, code,
                          None, source.source_id, control_id=own_id)
        else:
            code = "CE" if enhanced else "AE"
            ack = _answer(lambda: build_ack(parsed, code, failure), parsed, code, failure,
                          source.source_id)
        row = self.intake.accepted_row(
            source=source.source_id, message_id=message_id, channel=CHANNEL,
            message_type=f"{parsed.message_type}^{parsed.trigger_event}", payload=text,
            received_at=received_at, commands=commands, error=failure, ack=ack,
            keep_commands=True)
        return _Step(row, ack, parsed, success=failure is None)

    def _finish(self, step: _Step, stored: Stored) -> Reply:
        """The reply once the row is committed (never before: AA means stored) and a worker
        hinted (``Intake.stored``)."""
        if step.rejected is not None:
            log.info("HL7 message rejected", extra={"source": step.rejected})
            return Reply(ack=step.ack.encode())
        parsed, ack = step.parsed, step.ack
        assert parsed is not None
        if stored.duplicate:
            # Acknowledged again with the first answer, never processed twice.
            return Reply(ack=(stored.ack or ack).encode())
        follow_up = None
        if parsed.accept_ack_type:  # enhanced mode
            if not _wants(parsed.accept_ack_type, step.success):
                ack = ""
            if parsed.application_ack_type.upper() != "NE":
                follow_up = self._application_ack(stored.id, parsed)
        return Reply(ack=ack.encode(), follow_up=follow_up)

    def _reject(self, text: str, parsed: ParsedAdt | None, error: MappingError,
                received_at: datetime, source: str) -> _Step:
        code: AckCode = "CR" if parsed is not None and parsed.accept_ack_type else "AR"
        ack = _answer(lambda: build_ack(parsed or text, code, error), parsed or text, code,
                      error, source)
        row = self.intake.rejected_row(source=source, message_id=f"{source}:{uuid.uuid4()}",
                                       channel=CHANNEL, payload=text, received_at=received_at,
                                       error=error, ack=ack)
        return _Step(row, ack, parsed, success=False, rejected=source)

    def _sender(self, parsed: ParsedAdt) -> SourceDefinition | None:
        """The source that sent this message.

        MSH-3 / MSH-4 are HD values (namespace id ^ universal id ^ universal id type, e.g.
        ``EPR^1.2.3^ISO``), while a source configures one plain value for each, usually the
        namespace id (``EPR``, ``RX1``). So the configured value is compared, exactly, with
        the namespace id (HD-1) first: ``EPR``, ``EPR^1.2.3`` and ``EPR^1.2.3^ISO`` are the
        same sender, whatever universal id they add. Only when that matches no source is the
        universal id (HD-2) tried in its place, for a sender known by its OID alone
        (``^1.2.3^ISO``, which HL7 allows) or a source configured with the OID."""
        source = self.sources.match_hl7(parsed.sending_application, parsed.sending_facility)
        if source is not None:
            return source
        msh = parsed.segment("MSH")
        candidates = []
        for field_no, namespace_id in ((3, parsed.sending_application),
                                       (4, parsed.sending_facility)):
            universal_id = parsed.value(msh, field_no, 1, 2)
            candidates.append([namespace_id] + (
                [universal_id] if universal_id and universal_id != namespace_id else []))
        for application in candidates[0]:
            for facility in candidates[1]:
                if (application, facility) == (parsed.sending_application,
                                               parsed.sending_facility):
                    continue  # tried above
                source = self.sources.match_hl7(application, facility)
                if source is not None:
                    return source
        return None

    def _application_ack(self, inbox_id: int, parsed: ParsedAdt
                         ) -> Callable[[], asyncio.Future[bytes | None]]:
        async def wait_and_build() -> bytes | None:
            deadline = time.monotonic() + self.app_ack_timeout
            while time.monotonic() < deadline:
                entry = await asyncio.to_thread(self.inbox.get, inbox_id)
                if entry is not None and entry.status in ("applied", "failed"):
                    success = entry.status == "applied"
                    if not _wants(parsed.application_ack_type, success):
                        return None
                    error = None if success else _stored_error(entry.error)
                    code: AckCode = "AA" if success else "AE"
                    return _answer(partial(build_ack, parsed, code, error), parsed, code,
                                   error, entry.source).encode()
                await asyncio.sleep(0.1)
            return None

        return wait_and_build  # type: ignore[return-value]


# ACK control ids: unique per process run (a start-time prefix), cheaper than uuid4 per ACK;
# next() on itertools.count is atomic, so the MLLP threads may share it.
_ACK_PREFIX = f"{int(time.time()):x}"
_ack_counter = itertools.count()


def _ack_control_id() -> str:
    return f"A{_ACK_PREFIX}{next(_ack_counter):08d}"


def _answer(build: Callable[[], str], inbound: ParsedAdt | str, code: AckCode,
            error: BaseException | None, source: str, *, control_id: str | None = None) -> str:
    """``build()``; should it fail, the minimal ACK (``fallback_ack``) with the same code,
    control id and echo, so the message is still stored and answered. The log names the
    source, the message id and where it failed, never the exception's text (it may quote the
    payload)."""
    try:
        return build()
    except Exception as exc:
        message_id = inbound.control_id if isinstance(inbound, ParsedAdt) else None
        log.error("HL7 ACK could not be built from the sender's header (%s): answered %s "
                  "with a minimal ACK", failure_summary(exc), code,
                  extra={"source": source, "message_id": message_id})
        return fallback_ack(inbound, code, error, control_id=control_id)


def _stored_error(body: dict[str, object] | None) -> MappingError:
    body = body or {}
    code = body.get("code")
    message = str(body.get("message") or "could not be applied to the register")
    location = body.get("location") or body.get("field")
    if code in ("unparseable", "missing-field", "invalid-value", "unknown-code",
                "unsupported-message-type", "unsupported-event"):
        return MappingError(code, message, location=str(location) if location else None)  # type: ignore[arg-type]
    return MappingError("invalid-value", message, location=str(location) if location else None)


def _decode(payload: bytes) -> str:
    """HL7 v2 is ASCII by default; senders that say nothing sometimes send Latin-1."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")
