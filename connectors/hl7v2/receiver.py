"""From an MLLP frame to a stored inbox row and the ACK to send back.

Order matters: the message (even one we reject) is committed to the inbox *before* the ACK is
returned, so an ``AA`` always means "stored durably". Mapping is tried here too, because it is
pure and cheap, so a message that can never be applied is answered ``AE`` with an ERR segment
at once; applying it to the register happens later in a worker.

Acknowledgement modes (HL7 v2 chapter 2):
* original (MSH-15/16 empty): one ACK, AA / AE / AR;
* enhanced (MSH-15 set): a commit ACK CA / CE / CR when MSH-15 asks for it (AL, ER, SU), then
  an application ACK AA / AE after the worker applied it, when MSH-16 asks for it.

Refused (``AR``, or ``CR`` in enhanced mode, with an ERR naming the problem) and stored
``rejected``: a frame that is not HL7 v2 or whose sender no source matches (under the
pseudo-sources ``unparseable`` / ``unknown-sender``, each under a fresh id), and, from a known
sender, a message that holds a NUL character (raw, or hex-escaped ``\\X00\\``: PostgreSQL
text and JSON cannot hold one; kept with each NUL as U+FFFD), one of an MSH-12 version outside
v2.3–2.5.1 (ERR 203), one whose MSH-9 or MSH-10 is longer than the inbox's columns, and one
that reuses the MSH-10 of a different stored message (ERR 205). Those are kept under the
source and ``<MSH-10>#<12 hex of the SHA-256 of the message without MSH-7>`` (MSH-10 cut so
that the id fits the column), so the same refused message sent again is a duplicate, answered
as the first time, and a corrected one under its own MSH-10 is taken as usual. A resend is the
same message when it differs at most in MSH-7 and line endings (compared only when the insert
finds the id taken). Should the database still refuse a row's data, the message is refused
and kept under ``unstorable`` rather than left without an answer.

Bytes become text here, by the character set MSH-18 names (``HL7_CHARSETS``: ASCII, 8859/1 to
8859/15, UNICODE UTF-8); with MSH-18 empty, UTF-8, else Latin-1 (the hub's default). Reading
MSH-18 from the bytes is a find and a bounded split of the MSH line. The stored payload is that
text, so encoding it in the charset gives back the bytes received (bar a NUL, see above). An
MSH-18 the hub does not decode (ERR 103) or bytes not valid in the charset named (ERR 102 where
the first such byte is) is refused like the other refusals above, the text decoded the default
way. The ACK goes back in the sender's charset, echoing MSH-18 (``ack_bytes``).

An unknown sender is ERR 103 (table value not found: MSH-3/MSH-4 are values of the user tables
0361/0362, here the configured sources) at MSH-3, or at MSH-4 when some source would take the
sending application and it is the facility that matches none.

An ACK that cannot be built from the sender's header (a bug, an input nobody foresaw) never
costs the sender its answer: the message is stored all the same and answered with
``fallback_ack`` (the same code and MSA-2 echo, without the sender's MSH-3..6), and the failure
is logged with ids and code locations only, never the payload or an exception's text.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.exc import DataError

from mapping.config import SourceMappingConfig
from mapping.errors import MappingError
from mapping.hl7v2 import map_adt
from mapping.hl7v2_ack import (
    DUPLICATE_KEY,
    INTERNAL_ERROR,
    UNSUPPORTED_VERSION,
    AckCode,
    Hl7Condition,
    ack_bytes,
    build_ack,
    fallback_ack,
    success_ack,
)
from mapping.hl7v2_parse import (
    HL7_CHARSETS,
    SUPPORTED_VERSIONS,
    ParsedAdt,
    comparable,
    declared_charset,
    parse_adt,
)
from register_core.adapters.inbox import Inbox, Stored
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from register_core.adapters.tables import inbox_messages
from register_core.domain.commands import Command
from register_core.ports import Clock

from ..inbound_mapper import NUL, NUL_MESSAGE, without_nul
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


# What the inbox's columns hold (PostgreSQL refuses longer values; SQLite would keep them).
MESSAGE_ID_MAX: int = inbox_messages.c.message_id.type.length  # type: ignore[attr-defined]
MESSAGE_TYPE_MAX: int = inbox_messages.c.message_type.type.length  # type: ignore[attr-defined]

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
        try:
            stored = self.inbox.store(**step.row.fields)
        except DataError as exc:
            step = self._unstorable(step, exc)
            stored = self.inbox.store(**step.row.fields)
        return self._finish(step, self._stored(step.row, stored))

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
        try:
            stored = await self.inbox.store_async(
                lambda stored: self._stored(row, stored), **row.fields)
        except DataError as exc:
            step = self._unstorable(step, exc)
            stored = await self.inbox.store_async(None, **step.row.fields)
        return self._finish(step, stored)

    def _stored(self, row: Row, stored: Stored) -> Stored:
        """After the commit: hint a worker (not for a message stored instead, refused)."""
        return stored if stored.diverted else self.intake.stored(row, stored)

    def _unstorable(self, step: _Step, exc: DataError) -> _Step:
        """The database refused the row's data (a value nobody foresaw): the message is
        refused instead of left unanswered, and kept as far as it can be."""
        fields = step.row.fields
        log.error("HL7 message could not be stored as it is (%s): answered AR",
                  failure_summary(exc), extra={"source": fields["source"],
                                               "message_id": fields["message_id"]})
        error = MappingError("invalid-value", "the message holds a value the hub cannot "
                             "store; it was kept aside")
        step = self._reject(without_nul(fields["payload"]), step.parsed, error,
                            fields["received_at"], source="unstorable")
        step.row.fields["raw"] = fields.get("raw")
        return step

    def _prepare(self, payload: bytes) -> _Step:
        text, undecodable = _decode(payload)
        received_at = self.clock.now()
        nul: MappingError | None = None
        if NUL in text:  # never stored: PostgreSQL text cannot hold it
            nul = MappingError("invalid-value", NUL_MESSAGE,
                               location=_location_at(text, text.index(NUL)))
            text = without_nul(text)
        try:
            parsed = parse_adt(text)
        except MappingError as exc:
            return self._reject(text, None, nul or undecodable or exc, received_at,
                                source="unparseable", received=payload)
        source = self._sender(parsed)
        if source is None:
            # Told first (a NUL aside, as before): whatever else is wrong, no source takes it.
            error = nul or MappingError(
                "unknown-code", "no source is configured for sending application "
                f"{parsed.sending_application!r} / facility {parsed.sending_facility!r}",
                location=self._unknown_party(parsed))
            return self._reject(text, parsed, error, received_at, source="unknown-sender",
                                received=payload)
        refusal = nul or undecodable or _refusal(text, parsed)
        if refusal is not None:
            return self._reject(text, parsed, refusal, received_at, source=source.source_id,
                                message_id=_derived_id(parsed.control_id, text),
                                received=payload)
        enhanced = bool(parsed.accept_ack_type)
        commands: list[Command] = []
        failure: MappingError | None = None
        try:
            commands = map_adt(parsed, self._mapping_config(source), received_at)
        except MappingError as exc:
            failure = exc
        message_id = parsed.control_id or f"no-control-id:{uuid.uuid4()}"
        if failure is None or enhanced:
            # Enhanced mode: CA says stored (and a message that cannot be mapped is stored,
            # as failed); the application ACK (AE with the ERR) says what became of it. CE
            # would ask the sender to send it again, and again.
            code: AckCode = "CA" if enhanced else "AA"
            own_id = _ack_control_id()
            ack = _answer(lambda: success_ack(parsed, code, control_id=own_id), parsed, code,
                          None, source.source_id, control_id=own_id)
        else:
            code = "AE"
            ack = _answer(lambda: build_ack(parsed, code, failure), parsed, code, failure,
                          source.source_id)
        row = self.intake.accepted_row(
            source=source.source_id, message_id=message_id, channel=CHANNEL,
            message_type=f"{parsed.message_type}^{parsed.trigger_event}", payload=text,
            received_at=received_at, commands=commands, error=failure, ack=ack,
            keep_commands=True, received=payload)
        row.fields["on_duplicate"] = partial(self._reused_id, text, parsed, source.source_id,
                                             received_at, payload)
        return _Step(row, ack, parsed, success=failure is None)

    def _reused_id(self, text: str, parsed: ParsedAdt, source: str, received_at: datetime,
                   received: bytes, stored_payload: str) -> dict[str, object] | None:
        """Called by the inbox (in its transaction) when this MSH-10 is already stored: None
        for the same message sent again, else the row to keep this different one as,
        refused."""
        if comparable(stored_payload) == comparable(text):
            return None
        error = Hl7Condition(DUPLICATE_KEY, f"MSH-10 {parsed.control_id} was already used "
                             "for a different message", location="MSH-10")
        return self._reject(text, parsed, error, received_at, source=source,
                            message_id=_derived_id(parsed.control_id, text),
                            received=received).row.fields

    def _finish(self, step: _Step, stored: Stored) -> Reply:
        """The reply once the row is committed (never before: AA means stored) and a worker
        hinted (``Intake.stored``)."""
        parsed = step.parsed
        if step.rejected is not None or stored.diverted:
            # (a refusal stored before is a duplicate: answered as the first time)
            log.info("HL7 message rejected", extra={
                "source": step.rejected or step.row.fields["source"],
                "message_id": parsed.control_id if parsed is not None else None})
            return Reply(ack=ack_bytes((stored.ack if stored.duplicate or stored.diverted
                                        else None) or step.ack, parsed))
        assert parsed is not None
        # A duplicate is acknowledged again with the first answer, never processed twice.
        ack = (stored.ack or step.ack) if stored.duplicate else step.ack
        follow_up = None
        if parsed.accept_ack_type:  # enhanced mode
            if not _wants(parsed.accept_ack_type, True):  # the accept ACK says: committed
                ack = ""  # nothing is sent
            if parsed.application_ack_type.upper() != "NE":
                # For a resend too: the first application ACK may be what was lost.
                follow_up = self._application_ack(stored.id, parsed)
        return Reply(ack=ack_bytes(ack, parsed), follow_up=follow_up)

    def _reject(self, text: str, parsed: ParsedAdt | None, error: MappingError,
                received_at: datetime, source: str, message_id: str | None = None,
                received: bytes | None = None) -> _Step:
        """Refused and kept ``rejected``: under ``message_id`` (a known sender's, derived
        from MSH-10 and the content) or, for a pseudo-source, a fresh id."""
        code: AckCode = "CR" if parsed is not None and parsed.accept_ack_type else "AR"
        ack = _answer(lambda: build_ack(parsed or text, code, error), parsed or text, code,
                      error, source)
        row = self.intake.rejected_row(
            source=source, message_id=message_id or f"{source}:{uuid.uuid4()}",
            channel=CHANNEL, payload=text, received_at=received_at, error=error, ack=ack,
            received=received)
        if parsed is not None and message_id is not None:
            message_type = f"{parsed.message_type}^{parsed.trigger_event}"
            if len(message_type) <= MESSAGE_TYPE_MAX:
                row.fields["message_type"] = message_type
        return _Step(row, ack, parsed, success=False, rejected=source)

    def _unknown_party(self, parsed: ParsedAdt) -> str:
        """Where an unknown sender's ERR points: MSH-4 when some enabled HL7 source would
        take this sending application (by its namespace or universal id, or configured with
        none) and so the facility is what matches nothing; else MSH-3."""
        msh = parsed.segment("MSH")
        applications = {parsed.sending_application, parsed.value(msh, 3, 1, 2)} - {""}
        for source in self.sources.list():
            if source.kind != "hl7v2-mllp" or not source.enabled:
                continue
            app, facility = source.hl7_sending_application, source.hl7_sending_facility
            if (app is None and facility is not None) or (app is not None
                                                          and app in applications):
                return "MSH-4"
        return "MSH-3"

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
                    return ack_bytes(_answer(partial(build_ack, parsed, code, error),
                                             parsed, code, error, entry.source), parsed)
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


# Where in the message a register field refused by the worker's rules was sent.
_REGISTER_FIELD_AT = {"person.nhs_number": "PID-3", "person.local_id": "PID-3",
                      "person.birth_date": "PID-7", "merged_nhs_number": "MRG-1",
                      "merged_local_id": "MRG-1"}
_HL7_LOCATION = re.compile(r"[A-Z][A-Z0-9]{2}(-\d+)*")


def _stored_error(body: dict[str, object] | None) -> MappingError:
    """The application ACK's ERR for a stored failure: a mapping error by its own table 0357
    code; a refusal by the register's rules (an A40 across two NHS numbers, an unlawful
    ending) 207 with ERR-8 saying which rule, at the segment and field it concerns — not 102
    "data type error" with an empty ERR-2."""
    body = body or {}
    code = body.get("code")
    message = str(body.get("message") or "could not be applied to the register")
    location = body.get("location") or body.get("field")
    if body.get("kind") != "register" and code in (
            "unparseable", "missing-field", "invalid-value", "unknown-code",
            "unsupported-message-type", "unsupported-event"):
        return MappingError(code, message, location=str(location) if location else None)  # type: ignore[arg-type]
    at = str(location) if location else ""
    rule = body.get("rule")
    return Hl7Condition(INTERNAL_ERROR, f"{message} (rule {rule})" if rule else message,
                        location=at if _HL7_LOCATION.fullmatch(at) else
                        _REGISTER_FIELD_AT.get(at))


def _refusal(text: str, parsed: ParsedAdt) -> MappingError | None:
    """Why a known sender's message is refused before mapping, if it is."""
    escape = parsed.er7.escape
    if escape and f"{escape}X" in text:
        found = _hex_nul(text, escape)
        if found is not None:
            return MappingError("invalid-value", NUL_MESSAGE + " (hex escape \\X00\\)",
                                location=_location_at(text, found))
    if parsed.version not in SUPPORTED_VERSIONS:
        return Hl7Condition(UNSUPPORTED_VERSION, f"HL7 version {parsed.version} is not "
                            "supported: this hub reads v2.3 to v2.5.1", location="MSH-12")
    if len(f"{parsed.message_type}^{parsed.trigger_event}") > MESSAGE_TYPE_MAX:
        return MappingError("invalid-value", f"MSH-9 message type and trigger event are "
                            f"longer than {MESSAGE_TYPE_MAX} characters", location="MSH-9")
    if len(parsed.control_id) > MESSAGE_ID_MAX:
        return MappingError("invalid-value", f"MSH-10 is longer than {MESSAGE_ID_MAX} "
                            "characters", location="MSH-10")
    return None


def _hex_nul(text: str, escape: str) -> int | None:
    """Where the first hex escape (``\\X00\\``, ``\\X4100\\``) that unescapes to a
    NUL is."""
    pattern = re.compile(f"{re.escape(escape)}X([0-9A-Fa-f]*){re.escape(escape)}")
    for match in pattern.finditer(text):
        digits = match.group(1)
        if any(digits[i:i + 2] == "00" for i in range(0, len(digits) - 1, 2)):
            return match.start()
    return None


def _location_at(text: str, index: int) -> str | None:
    """``PID-5``: the segment and field of a character of the raw message."""
    line_start = max(text.rfind("\r", 0, index), text.rfind("\n", 0, index)) + 1
    line = without_nul(text[line_start:index])
    segment = line[:3]
    if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", segment):
        return None
    separator = text[3] if text.startswith("MSH") and len(text) > 3 else "|"
    field_no = line.count(separator) + (1 if segment == "MSH" else 0)
    return f"{segment}-{field_no}" if line.count(separator) else segment


def _derived_id(control_id: str, text: str) -> str:
    """The id a refused message of a known sender is kept under: MSH-10 (cut to fit) and
    12 hex digits of its content (without MSH-7, as a resend compares)."""
    digest = hashlib.sha256(comparable(text).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{control_id[:MESSAGE_ID_MAX - 13]}#{digest[:12]}"


_CHARSET_NAMES = ", ".join(HL7_CHARSETS)


def _decode(payload: bytes) -> tuple[str, MappingError | None]:
    """A frame's text, by the character set MSH-18 names, and the error to refuse it with
    when the hub cannot decode it so (the text then decoded the default way)."""
    charset = declared_charset(payload)
    error: MappingError | None = None
    if charset:
        codec = HL7_CHARSETS.get(charset)
        if codec is not None:
            try:
                return payload.decode(codec), None
            except UnicodeDecodeError as exc:
                # Where, and which byte: never the text around it (it may be a name).
                where = _location_at(payload.decode("latin-1"), exc.start)
                error = MappingError(
                    "invalid-value", f"byte 0x{payload[exc.start]:02X} at offset {exc.start}"
                    f"{' (' + where + ')' if where else ''} is not valid {charset}, the "
                    "character set MSH-18 names", location=where or "MSH-18")
        else:
            error = MappingError("unknown-code", f"MSH-18 character set {charset[:40]!r} is "
                                 f"not one this hub reads ({_CHARSET_NAMES})",
                                 location="MSH-18")
    # HL7 v2 says ASCII when MSH-18 is empty; senders that say nothing send UTF-8 or Latin-1.
    try:
        return payload.decode("utf-8"), error
    except UnicodeDecodeError:
        return payload.decode("latin-1"), error
