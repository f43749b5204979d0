"""Register → partner formats for outbound delivery (pure: no database, no network).

A status change is snapshotted once, in the transaction of the change, as a ``StatusChange``
(the register's state after the change plus what changed); each subscriber kind renders it:

    council-rest   ``council_document``  → ``CouncilStatusDocument`` (JSON, schema in OpenAPI)
    fhir-r4        ``episode_of_care``   → an R4B EpisodeOfCare for a conditional PUT
    hl7v2-mllp     ``adt_a08``           → ER7 ADT^A08 with the S117 state in a ZSE segment

The ZSE segment (ours; HL7 leaves Z segments to local agreement), after PID and PV1:

    ZSE-1  S117 status: none | pending | active | ended
    ZSE-2  entitlement start (DT)           ZSE-3  ended on (DT)
    ZSE-4  end reason (TX)                  ZSE-5  triggering section (MHSDS code, e.g. 03)
    ZSE-6  responsible council (ONS GSS)    ZSE-7  responsible ICB (ODS)
    ZSE-8  on CTO: Y | N                    ZSE-9  next review due (DT)
    ZSE-10 named practitioner (ST)          ZSE-11 hub change id (increases per person)
    ZSE-12 changed register fields (repeats, e.g. entitlement.status)

``read_ack`` reads the partner's reply: MSA-1 AA/CA accepted, AE/CE error (retried), AR/CR
rejected; MSA-2 must echo our MSH-10.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any, Literal

import hl7
from hl7apy import get_default_encoding_chars
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.factories import datatype_factory
from pydantic import BaseModel, ConfigDict, Field

from .errors import MappingError
from .fhir_r4 import EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, ODS_SYSTEM, S117_EPISODE_CODE
from .hl7v2_parse import normalise_line_endings

REGISTER_ID_SYSTEM = "urn:s117hub:register-id"  # default: the hub's person id, stable
COUNCIL_EXTENSION = "urn:s117hub:extension:responsible-council"
GSS_SYSTEM = "https://www.ons.gov.uk/Id/gss-code"
SCHEMA_VERSION = "1"
EntitlementStatus = Literal["none", "pending", "active", "ended"]
_HL7_VERSION = "2.5"  # hl7apy's structure; MSH-12 says the version the partner wants
_TOLERANT = VALIDATION_LEVEL.TOLERANT
_EPISODE_STATUS = {"pending": "planned", "active": "active", "ended": "finished",
                   "none": "cancelled"}


def _model(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [example]})


ENDED_EXAMPLE = {"date": "2027-02-01", "reason": "needs met after joint review"}
PERSON_EXAMPLE = {"register_id": "6b1f8a56-7d0e-4a53-9a38-0c5c2f1f9e11",
                  "nhs_number": "9990000018"}
ENTITLEMENT_EXAMPLE = {
    "status": "active", "start": "2026-03-01", "trigger_section": "03",
    "responsible_council": "E10000034", "responsible_icb": "QGH", "named_practitioner": None,
    "next_review_due": "2026-06-01", "on_cto": False, "ended": None}
CHANGE_EXAMPLE = {"field": "entitlement.status", "old": "pending", "new": "active"}


class Ended(BaseModel):
    model_config = _model(ENDED_EXAMPLE)
    date: dt.date
    reason: str | None = None


class EntitlementState(BaseModel):
    model_config = _model(ENTITLEMENT_EXAMPLE)
    status: EntitlementStatus
    start: dt.date | None = None
    trigger_section: str | None = Field(default=None, description="MHSDS legal-status code.")
    responsible_council: str | None = Field(default=None, description="ONS GSS code.")
    responsible_icb: str | None = Field(default=None, description="ODS code.")
    named_practitioner: str | None = None
    next_review_due: dt.date | None = None
    on_cto: bool = False
    ended: Ended | None = None


class FieldChange(BaseModel):
    model_config = _model(CHANGE_EXAMPLE)
    field: str = Field(description="Register field, e.g. `entitlement.status`.")
    old: str | None
    new: str | None


class PersonState(BaseModel):
    """Who, as little as a partner needs: the hub's stable id and the NHS number."""

    model_config = _model(PERSON_EXAMPLE)
    register_id: str
    nhs_number: str | None = None


class StatusChange(BaseModel):
    """The snapshot kept in the outbox (names stay in it for the HL7 PID, not for councils)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    change_id: int
    person: PersonState
    family_name: str | None = None
    given_name: str | None = None
    birth_date: dt.date | None = None
    entitlement: EntitlementState
    changes: list[FieldChange]
    notice_received_at: dt.datetime
    changed_at: dt.datetime


COUNCIL_EXAMPLE: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "type": "s117.status-changed",
    "delivery_id": "3f0c5e0a9a1b4d7c8e2f", "change_id": 1042,
    "occurred_at": "2026-03-01T10:15:00Z", "notice_received_at": "2026-03-01T10:14:58Z",
    "person": PERSON_EXAMPLE, "entitlement": ENTITLEMENT_EXAMPLE, "changes": [CHANGE_EXAMPLE]}


class CouncilStatusDocument(BaseModel):
    """What a `council-rest` subscriber receives: ``POST {endpoint}`` with this JSON body.

    ``delivery_id`` equals the `Idempotency-Key` header: the same document may arrive more
    than once (at-least-once), never with a different key. ``change_id`` increases per person:
    a document whose ``change_id`` is lower than one already applied is stale. ``entitlement``
    is the whole state after the change, ``changes`` what moved.
    """

    model_config = _model(COUNCIL_EXAMPLE)
    schema_version: Literal["1"] = SCHEMA_VERSION
    type: Literal["s117.status-changed"] = "s117.status-changed"
    delivery_id: str = Field(description="Idempotency key: equal to the Idempotency-Key header.")
    change_id: int = Field(description="Hub change id; increases per person.")
    occurred_at: dt.datetime = Field(description="When the register changed.")
    notice_received_at: dt.datetime = Field(description="When the hub received the notice.")
    person: PersonState
    entitlement: EntitlementState
    changes: list[FieldChange]


def council_document(change: StatusChange, delivery_key: str) -> dict[str, Any]:
    doc = CouncilStatusDocument(
        delivery_id=delivery_key, change_id=change.change_id, occurred_at=change.changed_at,
        notice_received_at=change.notice_received_at, person=change.person,
        entitlement=change.entitlement, changes=change.changes)
    return doc.model_dump(mode="json")


# -- FHIR R4 -----------------------------------------------------------------------------------

def episode_identifier(change: StatusChange, system: str = REGISTER_ID_SYSTEM) -> str:
    """The conditional-update search value: ``<system>|<register id>``."""
    return f"{system}|{change.person.register_id}"


def episode_of_care(change: StatusChange, system: str = REGISTER_ID_SYSTEM) -> dict[str, Any]:
    """The S117 entitlement as an R4B EpisodeOfCare (validated with fhir.resources)."""
    from fhir.resources.R4B.episodeofcare import EpisodeOfCare

    ent = change.entitlement
    person = change.person
    patient: dict[str, Any] = (
        {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number}}
        if person.nhs_number else {"identifier": {"system": system,
                                                  "value": person.register_id}})
    resource: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "identifier": [{"system": system, "value": person.register_id}],
        "status": _EPISODE_STATUS[ent.status],
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": S117_EPISODE_CODE,
                              "display": "Section 117 aftercare"}]}],
        "patient": patient,
    }
    period = {k: v.isoformat() for k, v in
              (("start", ent.start), ("end", ent.ended.date if ent.ended else None)) if v}
    if period:
        resource["period"] = period
    if ent.responsible_icb:
        resource["managingOrganization"] = {
            "identifier": {"system": ODS_SYSTEM, "value": ent.responsible_icb}}
    if ent.responsible_council:
        resource["extension"] = [{"url": COUNCIL_EXTENSION, "valueIdentifier": {
            "system": GSS_SYSTEM, "value": ent.responsible_council}}]
    EpisodeOfCare.model_validate(resource)  # our own output must be valid R4B
    return resource


# -- HL7 v2 ------------------------------------------------------------------------------------

# C0 controls and DEL: hl7apy escapes only the delimiters |^~& (and \\), so a CR or LF in a
# name would end the segment early and let the rest of the text pass for a segment of its
# own; 0x0B/0x1C would break the MLLP frame. Each becomes HL7's hex escape \\Xdd\\ (valid in
# ST, TX, IS and FT alike; \\.br\\ is a formatting command of FT only).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_CODE = re.compile(r"[A-Za-z0-9.]{1,20}")


@functools.cache
def _control_escaping(datatype_class: type) -> type:
    """``datatype_class`` whose ER7 also escapes control characters, after hl7apy's own
    escaping (before it, hl7apy would escape the backslashes of our \\Xdd\\)."""

    def to_er7(self: Any, encoding_chars: dict[str, str] | None = None) -> str:
        text = datatype_class.to_er7(self, encoding_chars)
        esc = (encoding_chars or get_default_encoding_chars())["ESCAPE"]
        return _CONTROL.sub(lambda found: f"{esc}X{ord(found.group()):02X}{esc}", text)

    # hl7apy matches a datatype by its class name (ST, IS …): keep it.
    return type(datatype_class.__name__, (datatype_class,), {"to_er7": to_er7})


def _st(value: str, datatype: str = "ST") -> Any:
    """Escaped text: hl7apy escapes |^&~ through datatype objects, backslash by hand, control
    characters (CR, LF …) as \\Xdd\\ by ``_control_escaping``."""
    typed = datatype_factory(datatype, value.replace("\\", "\\E\\"), version=_HL7_VERSION,
                             validation_level=_TOLERANT)
    typed.__class__ = _control_escaping(type(typed))
    return typed


def _dt(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def adt_a08(change: StatusChange, control_id: str, *, now: dt.datetime,
            sending_application: str = "S117HUB", sending_facility: str = "HUB",
            receiving_application: str = "", receiving_facility: str = "",
            version: str = "2.4", processing_id: str = "P") -> str:
    """ER7 (CR-separated, unframed) ADT^A08 carrying the S117 state in ZSE."""
    if not control_id or len(control_id) > 20:
        raise MappingError("invalid-value", "MSH-10 must be 1-20 characters",
                           location="MSH-10")
    # Set unescaped (hl7apy parses them as ER7): the version comes from the subscription,
    # so a delimiter or line break there must not reach the wire.
    for code, where in ((processing_id, "MSH-11"), (version, "MSH-12")):
        if not _PLAIN_CODE.fullmatch(code):
            raise MappingError("invalid-value", f"{where} must be a plain code such as 2.4",
                               location=where)
    msg = Message("ADT_A01", version=_HL7_VERSION, validation_level=_TOLERANT)
    msh = msg.msh
    for target, value in ((msh.msh_3, sending_application), (msh.msh_4, sending_facility),
                          (msh.msh_5, receiving_application),
                          (msh.msh_6, receiving_facility)):
        if value:
            target.hd_1 = _st(value, "IS")
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    msh.msh_7 = stamp
    msh.msh_9 = "ADT^A08^ADT_A01"
    msh.msh_10 = _st(control_id)
    msh.msh_11 = processing_id
    msh.msh_12 = version
    msg.evn.evn_1 = "A08"
    msg.evn.evn_2 = change.changed_at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    pid = msg.pid
    pid.pid_1 = "1"
    ids = [f"{change.person.register_id}^^^S117HUB^PI"]
    if change.person.nhs_number:
        ids.insert(0, f"{change.person.nhs_number}^^^NHS^NH")
    for ident in ids:  # repetitions of PID-3: NHS number first, then the register id
        pid.add_field("PID_3").value = ident
    if change.family_name:
        pid.pid_5.xpn_1.fn_1 = _st(change.family_name)
    if change.given_name:
        pid.pid_5.xpn_2 = _st(change.given_name)
    if change.birth_date:
        pid.pid_7 = _dt(change.birth_date)
    msg.pv1.pv1_1 = "1"
    msg.pv1.pv1_2 = "N"  # patient class: not applicable (no encounter is being reported)
    _add_zse(msg, change)
    return str(msg.to_er7())


def _add_zse(msg: Message, change: StatusChange) -> None:
    ent = change.entitlement
    values: list[str | None] = [
        ent.status, _dt(ent.start), _dt(ent.ended.date if ent.ended else None),
        ent.ended.reason if ent.ended else None, ent.trigger_section,
        ent.responsible_council, ent.responsible_icb, "Y" if ent.on_cto else "N",
        _dt(ent.next_review_due), ent.named_practitioner, str(change.change_id)]
    zse = msg.add_segment("ZSE")
    for index, value in enumerate(values, start=1):
        if value:
            zse.add_field(f"ZSE_{index}").value = _st(value)
    for item in change.changes:
        zse.add_field("ZSE_12").value = _st(item.field)


class AckReply(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    control_id: str
    text: str = ""
    error: str = ""


def read_ack(raw: str) -> AckReply:
    """MSA-1, MSA-2, MSA-3 and ERR text of an ACK. Raises MappingError when it is no ACK."""
    text = normalise_line_endings(raw.strip("\x0b\x1c\r\n"))
    try:
        message = hl7.parse(text)
        msa = message.segment("MSA")
    except (KeyError, IndexError, ValueError, hl7.ParseException) as exc:
        raise MappingError("unparseable", "the reply has no MSA segment",
                           location="MSA") from exc
    error = ""
    for seg in message:
        if str(seg[0]) == "ERR":
            error = (_at(seg, 8) or _at(seg, 3) or _at(seg, 1))[:500]
            break
    return AckReply(code=_at(msa, 1).upper(), control_id=_at(msa, 2), text=_at(msa, 3),
                    error=error)


def _at(segment: Any, index: int) -> str:
    try:
        return str(segment[index]).strip() if index < len(segment) else ""
    except (IndexError, TypeError):
        return ""
