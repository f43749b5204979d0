"""From an MLLP frame to a stored inbox row and the ACK to send back.

Order matters: the message (even one we reject) is committed to the inbox *before* the ACK is
returned, so an ``AA`` always means "stored durably". Mapping is tried here too, because it is
pure and cheap, so a message that can never be applied is answered ``AE`` with an ERR segment
at once; applying it to the register happens later in a worker.

Acknowledgement modes (HL7 v2 chapter 2):
* original (MSH-15/16 empty): one ACK, AA / AE / AR;
* enhanced (MSH-15 set): a commit ACK CA / CE / CR when MSH-15 asks for it (AL, ER, SU), then
  an application ACK AA / AE after the worker applied it, when MSH-16 asks for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from mapping.config import SourceMappingConfig
from mapping.errors import MappingError
from mapping.hl7v2 import map_adt
from mapping.hl7v2_ack import AckCode, build_ack
from mapping.hl7v2_parse import ParsedAdt, parse_adt
from register_core.adapters.inbox import Inbox
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from register_core.domain.commands import Command
from register_core.ports import Clock

from ..intake import Intake
from .server import Reply

log = logging.getLogger(__name__)

CHANNEL = "hl7v2-mllp"


class UnknownSender(Exception):
    """No configured source has this MSH-3/MSH-4."""


def _wants(ack_type: str, success: bool) -> bool:
    """Whether MSH-15/16 asks for an ACK of this outcome (AL always, NE never)."""
    kind = (ack_type or "AL").upper()
    return kind == "AL" or (kind == "SU" and success) or (kind == "ER" and not success)


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
        text = _decode(payload)
        received_at = self.clock.now()
        try:
            parsed = parse_adt(text)
        except MappingError as exc:
            return self._reject(text, None, exc, received_at, source="unparseable")
        source = self.sources.match_hl7(parsed.sending_application, parsed.sending_facility)
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
            ack = success_ack(parsed, code)
        else:
            code = "CE" if enhanced else "AE"
            ack = build_ack(parsed, code, failure)
        stored = self.intake.accept(
            source=source.source_id, message_id=message_id, channel=CHANNEL,
            message_type=f"{parsed.message_type}^{parsed.trigger_event}", payload=text,
            received_at=received_at, commands=commands, error=failure, ack=ack,
            keep_commands=True)
        if stored.duplicate:
            # Acknowledged again with the first answer, never processed twice.
            return Reply(ack=(stored.ack or ack).encode())
        follow_up = None
        if enhanced:
            if not _wants(parsed.accept_ack_type, failure is None):
                ack = ""
            if parsed.application_ack_type.upper() != "NE":
                follow_up = self._application_ack(stored.id, parsed)
        return Reply(ack=ack.encode(), follow_up=follow_up)

    def _reject(self, text: str, parsed: ParsedAdt | None, error: MappingError,
                received_at: object, source: str) -> Reply:
        code: AckCode = "CR" if parsed is not None and parsed.accept_ack_type else "AR"
        ack = build_ack(parsed or text, code, error)
        self.intake.reject(source=source, message_id=f"{source}:{uuid.uuid4()}",
                           channel=CHANNEL, payload=text, received_at=received_at,  # type: ignore[arg-type]
                           error=error, ack=ack)
        log.info("HL7 message rejected", extra={"source": source})
        return Reply(ack=ack.encode())

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
                    return build_ack(parsed, "AA" if success else "AE", error).encode()
                await asyncio.sleep(0.1)
            return None

        return wait_and_build  # type: ignore[return-value]


def success_ack(parsed: ParsedAdt, code: AckCode) -> str:
    """An ACK without ERR on the hot path, written as text: what python-hl7's ``create_ack``
    builds (MSH-3..6 swapped, ACK^<trigger>^ACK, MSH-10 echoed in MSA-2, MSH-11/12 kept),
    without building its segment tree (100 us a message, as long as mapping it). Error ACKs
    still go through hl7apy."""
    msh = parsed.index["MSH"][0]
    fs = str(msh(1))
    cs = parsed.message.separators[3]
    header = fs.join((
        "MSH", str(msh(2)), str(msh(5)), str(msh(6)), str(msh(3)), str(msh(4)),
        datetime.now(UTC).strftime("%Y%m%d%H%M%S"), "",
        cs.join(("ACK", str(msh(9)(1)(2)), "ACK")),
        f"A{_ACK_PREFIX}{next(_ack_counter):08d}", str(msh(11)), str(msh(12))))
    return f"{header}\r{fs.join(('MSA', code, str(msh(10))))}\r\r"


# ACK control ids: unique per process run (a start-time prefix), cheaper than uuid4 per ACK;
# next() on itertools.count is atomic, so the MLLP threads may share it.
_ACK_PREFIX = f"{int(time.time()):x}"
_ack_counter = itertools.count()


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
