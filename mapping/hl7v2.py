"""HL7 v2 ADT (v2.3–2.5.1) → canonical commands. Pure: text in, commands or MappingError out.

Trigger → commands (architecture section 4, standards.md section 2):

    A01/A04  detained legal status → RecordDetentionStarted; otherwise RecordPersonDetails
             (a CTO/CD legal status adds its cto-/conditional-discharge- events)
    A02      [regrade +] RecordLegalStatusChanged(transfer)
    A03      [regrade +] RecordLeftHospital (PV1-45)
             [+ cto-start / conditional-discharge-start on CTO/CD]
    A08      RecordPersonDetails [+ section-change for a detained code, cto-/CD- events]
    A11/A13  CancelEvent of detention-started / left-hospital
    A21/A22  [regrade +] s17-leave-start / s17-leave-end (configurable; an informal status is
             no s17 leave); leave that is not s17 leave: RecordPersonDetails [+ regrade]
    A28/A31  RecordPersonDetails
    A40      MergePersons per PID/MRG pair (PID is the survivor, MRG-1 the merged record)

A "regrade" is the section-change (as A08 sends it) an A02, A03, A21 or A22 carries, before
its own event, when its legal status is a detained section that started (ZLS-2) after this
stay's admission (PV1-44): s2 → s3 before discharge makes the person entitled (s117-rules.md
"Who is entitled"; joint policy 3.3). A status that started on or before the admission day is
the one the person was admitted under, which trusts repeat on every message: no change, none
sent. A status with no start date is not dated as a change (A08 sends those). Without PV1-44
a dated detained status is taken as a regrade.

Provenance: source = the source id, source_ref = MSH-10. Where the legal status sits and what
local codes mean is per source (``mapping.config``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from register_core.domain.commands import (
    CancelEvent,
    Command,
    LegalStatusKind,
    MergePersons,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordPersonDetails,
)

from .common import (
    is_detained,
    normalise_postcode,
    normalise_sex,
    provenance,
    require_identity,
    translate_legal_status,
    valid_nhs_number,
)
from .config import CTO, STATUS_MARKERS, SourceMappingConfig
from .errors import MappingError
from .hl7v2_ack import build_ack
from .hl7v2_parse import ParsedAdt, Segment, hl7_date, parse_adt

__all__ = ["SUPPORTED_TRIGGERS", "ParsedAdt", "build_ack", "map_adt", "parse_adt"]

SUPPORTED_TRIGGERS: frozenset[str] = frozenset(
    {"A01", "A02", "A03", "A04", "A08", "A11", "A13", "A21", "A22", "A28", "A31", "A40"})
_ODS_LIKE = re.compile(r"^[A-Z0-9]{3,8}$")
_CTO_REVOKED = "02"  # MHSDS MHS404 CTO end reason
Cancellable = Literal["detention-started", "left-hospital", "legal-status"]


@dataclass(frozen=True, slots=True)
class _LegalStatus:
    code: str  # MHSDS code or the marker CTO / CD
    start: date | None
    end: date | None
    end_reason: str | None


@dataclass(slots=True)
class _Ctx:
    p: ParsedAdt
    config: SourceMappingConfig
    prov: Provenance
    cached_person: PersonRef | None = None

    def person(self) -> PersonRef:
        """The patient of the first PID, read once however many commands need it."""
        if self.cached_person is None:
            self.cached_person = _person(self, self.p.segment("PID"))
        return self.cached_person

    def date_of(self, segment_id: str, field_no: int) -> date | None:
        return hl7_date(self.p.field_of(segment_id, field_no), f"{segment_id}-{field_no}")

    def event_date(self) -> date | None:
        """When it happened: EVN-6 (occurred), else EVN-2 (recorded), else MSH-7."""
        found = self.date_of("EVN", 6) or self.date_of("EVN", 2)
        if found is None:
            try:
                found = self.date_of("MSH", 7)
            except MappingError:  # a header time of reduced precision is no reason to refuse
                found = None
        return found

    def required_event_date(self) -> date:
        found = self.event_date()
        if found is None:
            raise MappingError("missing-field", "no event date (EVN-6, EVN-2 or MSH-7)",
                               location="EVN-6")
        return found

    def episode_ref(self) -> str | None:
        return self.p.field_of("PV1", 19) or None

    def provider_ods(self) -> str | None:
        return (self.p.field_of("PV1", 3, 1, 4) or self.p.sending_facility
                or self.config.default_provider_ods or None)


def map_adt(parsed: ParsedAdt, config: SourceMappingConfig, received_at: datetime,
            recorded_by: str = "system") -> list[Command]:
    """Map one parsed ADT message to the commands it means, in order."""
    if parsed.message_type != "ADT":
        raise MappingError("unsupported-message-type",
                           f"message type {parsed.message_type!r} is not ADT", location="MSH-9.1")
    ctx = _Ctx(parsed, config, provenance(config, parsed.control_id, received_at, recorded_by))
    trigger = parsed.trigger_event
    leave = config.s17_leave_event
    if leave is not None and trigger in (leave.start_trigger, leave.end_trigger):
        return _s17_leave(ctx, "s17-leave-start" if trigger == leave.start_trigger
                          else "s17-leave-end")
    if trigger in ("A21", "A22"):  # leave of absence this source does not treat as s17 leave
        return _leave_of_absence(ctx)
    handler = _HANDLERS.get(trigger)
    if handler is None:
        raise MappingError("unsupported-event", f"ADT {trigger} is not mapped by the hub",
                           location="MSH-9.2")
    return handler(ctx)


# --- triggers -------------------------------------------------------------------------------

def _admit(ctx: _Ctx) -> list[Command]:
    status = _legal_status(ctx)
    if status is not None and is_detained(status.code):
        start = status.start or ctx.date_of("PV1", 44) or ctx.event_date()
        if start is None:
            raise MappingError("missing-field", "no start date for the detention",
                               location=_start_ref(ctx.config) or "PV1-44")
        return [RecordDetentionStarted(
            person=ctx.person(), provenance=ctx.prov, section=status.code, start=start,
            episode_ref=ctx.episode_ref(), provider_ods=ctx.provider_ods(), end=status.end)]
    commands: list[Command] = _person_details(ctx)
    if status is not None and status.code in STATUS_MARKERS:
        commands += _marker_events(ctx, status, ctx.date_of("PV1", 44) or ctx.event_date())
    return commands


def _transfer(ctx: _Ctx) -> list[Command]:
    status = _legal_status(ctx)
    section = status.code if status is not None and is_detained(status.code) else None
    return [*_regrade(ctx, status), RecordLegalStatusChanged(
        person=ctx.person(), provenance=ctx.prov, event="transfer",
        date=ctx.required_event_date(), section=section, episode_ref=ctx.episode_ref(),
        provider_ods=ctx.provider_ods())]


def _discharge(ctx: _Ctx) -> list[Command]:
    left = ctx.date_of("PV1", 45) or ctx.date_of("EVN", 6)
    if left is None:
        raise MappingError("missing-field", "no discharge date (PV1-45 or EVN-6)",
                           location="PV1-45")
    status = _legal_status(ctx)
    # A regrade before leaving (s2 → s3) comes first: the register sees the person leave from
    # the section they were on (an entitling s3), not the one they were admitted under.
    commands: list[Command] = [*_regrade(ctx, status), RecordLeftHospital(
        person=ctx.person(), provenance=ctx.prov, date=left, episode_ref=ctx.episode_ref())]
    if status is not None and status.code in STATUS_MARKERS:
        commands += _marker_events(ctx, status, left)
    return commands


def _update(ctx: _Ctx) -> list[Command]:
    commands: list[Command] = _person_details(ctx)
    status = _legal_status(ctx)
    if status is None:
        return commands
    if is_detained(status.code):
        commands.append(_section_change(ctx, status, status.start or ctx.required_event_date()))
    elif status.code in STATUS_MARKERS:
        commands += _marker_events(ctx, status, ctx.event_date())
    return commands


def _cancel(cancels: Cancellable) -> Callable[[_Ctx], list[Command]]:
    # A cancelled admission (A11) is a visit that never was: what the source told of that
    # visit in any message (an A08 regrade, an A02 transfer) goes with it. A cancelled
    # discharge (A13) takes back that discharge's message only.
    scope: Literal["message", "episode"] = (
        "episode" if cancels == "detention-started" else "message")

    def handler(ctx: _Ctx) -> list[Command]:
        return [CancelEvent(person=ctx.person(), provenance=ctx.prov, cancels=cancels,
                            episode_ref=ctx.episode_ref(), date=ctx.event_date(),
                            scope=scope)]
    return handler


def _leave_of_absence(ctx: _Ctx) -> list[Command]:
    """A21/A22 a source does not treat as s17 leave: demographics, and a regrade it carries."""
    return [*_person_details(ctx), *_regrade(ctx, _legal_status(ctx))]


def _s17_leave(ctx: _Ctx, event: LegalStatusKind) -> list[Command]:
    status = _legal_status(ctx)
    if status is not None and not is_detained(status.code):
        return _person_details(ctx)  # leave of an informal or CTO patient is not s17 leave
    return [*_regrade(ctx, status), RecordLegalStatusChanged(
        person=ctx.person(), provenance=ctx.prov, event=event, date=ctx.required_event_date(),
        section=status.code if status else None, episode_ref=ctx.episode_ref(),
        provider_ods=ctx.provider_ods())]


def _person_details(ctx: _Ctx) -> list[Command]:
    return [RecordPersonDetails(person=ctx.person(), provenance=ctx.prov,
                                as_of=ctx.event_date())]


def _merge(ctx: _Ctx) -> list[Command]:
    commands: list[Command] = []
    survivor: Segment | None = None
    for segment in ctx.p.all_segments():
        segment_id = segment[0].strip().upper()
        if segment_id == "PID":
            survivor = segment
        elif segment_id == "MRG" and survivor is not None:
            merged_nhs, merged_local = _identifiers(ctx, segment, 1, "MRG-1")
            if not merged_local:
                raise MappingError("missing-field", "MRG-1 holds no local record id to merge",
                                   location="MRG-1")
            commands.append(MergePersons(
                person=_person(ctx, survivor), provenance=ctx.prov,
                merged_local_id=merged_local, merged_nhs_number=merged_nhs))
    if not commands:
        raise MappingError("missing-field", "A40 needs a PID followed by an MRG segment",
                           location="MRG-1")
    return commands


_HANDLERS: dict[str, Callable[[_Ctx], list[Command]]] = {
    "A01": _admit, "A04": _admit, "A02": _transfer, "A03": _discharge, "A08": _update,
    "A11": _cancel("detention-started"), "A13": _cancel("left-hospital"),
    "A28": _person_details, "A31": _person_details, "A40": _merge,
}


# --- pieces ---------------------------------------------------------------------------------

def _section_change(ctx: _Ctx, status: _LegalStatus, when: date) -> RecordLegalStatusChanged:
    return RecordLegalStatusChanged(
        person=ctx.person(), provenance=ctx.prov, event="section-change", date=when,
        section=status.code, episode_ref=ctx.episode_ref(), end=status.end,
        end_reason=status.end_reason, provider_ods=ctx.provider_ods())


def _regrade(ctx: _Ctx, status: _LegalStatus | None) -> list[Command]:
    """The section change (as A08 sends it) an A02/A03/A21/A22 tells: a detained section that
    started after this stay's admission. The mapping holds no register state, so the status
    the person was admitted under, repeated on every message, is told apart by its start: on
    or before the admission day (PV1-44) it is no change, and sending one would add a regrade
    to the same section to the register's history."""
    if status is None or not is_detained(status.code) or status.start is None:
        return []
    try:
        admitted = ctx.date_of("PV1", 44)
    except MappingError:  # an unreadable admit date was never a reason to refuse these
        admitted = None
    if admitted is not None and status.start <= admitted:
        return []
    return [_section_change(ctx, status, status.start)]


def _marker_events(ctx: _Ctx, status: _LegalStatus, fallback: date | None) -> list[Command]:
    """A CTO or conditional discharge: a start event, and an end event when it has ended."""
    cto = status.code == CTO
    commands: list[Command] = []
    start = status.start or (fallback if status.end is None else None)
    if start is not None:
        commands.append(RecordLegalStatusChanged(
            person=ctx.person(), provenance=ctx.prov,
            event="cto-start" if cto else "conditional-discharge-start", date=start,
            episode_ref=ctx.episode_ref(), provider_ods=ctx.provider_ods()))
    if status.end is not None:
        event: LegalStatusKind = "conditional-discharge-end"
        if cto:
            event = "cto-revoked" if status.end_reason == _CTO_REVOKED else "cto-end"
        commands.append(RecordLegalStatusChanged(
            person=ctx.person(), provenance=ctx.prov, event=event, date=status.end,
            episode_ref=ctx.episode_ref(), end_reason=status.end_reason,
            provider_ods=ctx.provider_ods()))
    if not commands:
        raise MappingError("missing-field", "no start or end date for the CTO / conditional "
                           "discharge", location=_start_ref(ctx.config) or "EVN-6")
    return commands


def _start_ref(config: SourceMappingConfig) -> str | None:
    where = config.legal_status_location
    return where.ref(where.start_field) if where.start_field else None


def _legal_status(ctx: _Ctx) -> _LegalStatus | None:
    where = ctx.config.legal_status_location
    segment = ctx.p.segment(where.segment)
    raw = ctx.p.value(segment, where.code_field, 1, where.code_component)
    if not raw:
        return None
    code = translate_legal_status(raw, ctx.config, where.ref(where.code_field,
                                                             where.code_component))

    def optional(field_no: int | None) -> str:
        return ctx.p.value(segment, field_no) if field_no else ""

    return _LegalStatus(
        code=code,
        start=hl7_date(optional(where.start_field), where.ref(where.start_field)),
        end=hl7_date(optional(where.end_field), where.ref(where.end_field)),
        end_reason=optional(where.end_reason_field) or None)


def _identifiers(ctx: _Ctx, segment: Segment, field_no: int,
                 location: str) -> tuple[str | None, str | None]:
    """(NHS number, local id) from a CX list such as PID-3 or MRG-1."""
    authorities = {a.upper() for a in ctx.config.nhs_number_authorities}
    nhs: str | None = None
    typed_local: str | None = None
    other: str | None = None
    for rep in range(1, ctx.p.repetitions(segment, field_no) + 1):
        ident = ctx.p.value(segment, field_no, rep, 1)
        if not ident:
            continue
        authority = ctx.p.value(segment, field_no, rep, 4).upper()
        id_type = ctx.p.value(segment, field_no, rep, 5).upper()
        if (authority in authorities and id_type in ("NH", "NHS", "")) or (
                not authority and id_type == "NH"):
            if nhs is None:
                nhs = valid_nhs_number(ident, location)
        elif id_type == "NH":
            continue  # another nation's number (HSNI, CHI): not an England NHS number
        elif id_type == ctx.config.local_id_type.upper():
            typed_local = typed_local or ident
        else:
            other = other or ident
    return nhs, typed_local or other


def _person(ctx: _Ctx, pid: Segment | None) -> PersonRef:
    p = ctx.p
    if pid is None:
        raise MappingError("missing-field", "the message has no PID segment", location="PID")
    nhs, local = _identifiers(ctx, pid, 3, "PID-3")
    verification = p.value(pid, 32).upper()
    name_rep = _preferred_rep(p, pid, 5, 7, "L")
    address_rep = _preferred_rep(p, pid, 11, 7, "H")
    person = PersonRef(
        nhs_number=nhs,
        nhs_number_verified=(verification in ("NSTS01", "01")) if verification else None,
        local_id=local,
        family_name=p.value(pid, 5, name_rep, 1) or None,
        given_name=p.value(pid, 5, name_rep, 2) or None,
        birth_date=hl7_date(p.value(pid, 7), "PID-7"),
        sex=normalise_sex(p.value(pid, 8)),
        postcode=normalise_postcode(p.value(pid, 11, address_rep, 5)),
        gp_practice_ods=_gp_practice(p),
        death_date=hl7_date(p.value(pid, 29), "PID-29"),
    )
    return require_identity(person, "PID-3")


def _preferred_rep(p: ParsedAdt, segment: Segment, field_no: int, type_comp: int,
                   wanted: str) -> int:
    for rep in range(1, p.repetitions(segment, field_no) + 1):
        if p.value(segment, field_no, rep, type_comp).upper() == wanted:
            return rep
    return 1


def _gp_practice(p: ParsedAdt) -> str | None:
    """PD1-3 (XON): organisation identifier (v2.5 XON.10), ID number (XON.3), else XON.1
    when it looks like an ODS code rather than a practice name."""
    pd1 = p.segment("PD1")
    for comp in (10, 3):
        code = p.value(pd1, 3, 1, comp)
        if code:
            return code.upper()
    first = p.value(pd1, 3, 1, 1).upper()
    return first if _ODS_LIKE.match(first) else None
