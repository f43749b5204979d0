"""Register → partner formats for outbound delivery (pure: no database, no network).

A status change is snapshotted once, in the transaction of the change, as a ``StatusChange``
(the register's state after the change plus what changed); each subscriber kind renders it:

    council-rest   ``council_document``  → ``CouncilStatusDocument`` (JSON, schema in OpenAPI)
    fhir-r4        ``episode_of_care``   → an R4B EpisodeOfCare for a conditional PUT
    hl7v2-mllp     ``adt_a08``           → ER7 ADT^A08 with the S117 state in a ZSE segment

Merges. A person merged into another (``merged_into``: the survivor) or one others were merged
into (``merged_from``) is told so, and a change that made or undid such a link lists it in
``changes`` as ``person.merged_into`` / ``person.merged_from`` (old and new: register ids):

    council-rest   ``merged_into`` (survivor's register id and NHS number) and
                   ``merged_from``, beside the unchanged fields
    fhir-r4        ``merge_bundle``: a transaction Bundle PUTting the Patient (``active``
                   false and ``link`` replaced-by the survivor; the survivor ``replaces``)
                   and the EpisodeOfCare, whenever the links change or the person is merged
    hl7v2-mllp     ``adt_a40`` for the merged-away person: PID the survivor, MRG the merged
                   record; the survivor's own status goes as an A08 as usual

A merge notice names records as partners know them, by the register id and NHS number the
hub sent them (``PersonState``), never by the sending systems' own identifiers: a council
has no need of a trust's MRNs, nor a trust of a council's case numbers (data minimisation).

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
import urllib.parse
import uuid
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
RECORD_EXAMPLE = {"register_id": "0d3c7e2a-51f4-4b8e-9a52-3c1e7b9d2f60",
                  "nhs_number": "9990000018"}
# Changes of a person's merge links, beside the status fields (old/new: register ids).
MERGED_INTO = "person.merged_into"
MERGED_FROM = "person.merged_from"
LINK_FIELDS = frozenset({MERGED_INTO, MERGED_FROM})


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
    field: str = Field(description=(
        "Register field, e.g. `entitlement.status`; `person.merged_into` when this person "
        "was merged into another or un-merged (old/new: the survivor's register id, or "
        "null), `person.merged_from` when another was merged into this person or un-merged "
        "from it (the other's register id as new, or as old)."))
    old: str | None
    new: str | None


class RecordRef(BaseModel):
    """A register record as partners know it: the hub's id and its NHS number, what the
    status documents sent them (no source's local identifiers: least privilege)."""

    model_config = _model(RECORD_EXAMPLE)
    register_id: str
    nhs_number: str | None = None


class LinkedRecord(RecordRef):
    """A survivor as the outbox keeps it: names for the HL7 PID, not for councils."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    family_name: str | None = None
    given_name: str | None = None
    birth_date: dt.date | None = None

    def ref(self) -> RecordRef:
        return RecordRef(register_id=self.register_id, nhs_number=self.nhs_number)


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
    # Merges (absent from changes queued before they were told): the survivor this person
    # was merged into, this person's record as it was merged (its register id and the NHS
    # number it had, the survivor's since: HL7's MRG), and the records merged into it.
    merged_into: LinkedRecord | None = None
    merged_record: RecordRef | None = None
    merged_from: list[RecordRef] = Field(default_factory=list)

    @property
    def links_changed(self) -> bool:
        """Whether this change made or undid a merge link (partners re-link records)."""
        return any(item.field in LINK_FIELDS for item in self.changes)


COUNCIL_EXAMPLE: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION, "type": "s117.status-changed",
    "delivery_id": "3f0c5e0a9a1b4d7c8e2f", "change_id": 1042,
    "occurred_at": "2026-03-01T10:15:00Z", "notice_received_at": "2026-03-01T10:14:58Z",
    "person": PERSON_EXAMPLE, "entitlement": ENTITLEMENT_EXAMPLE, "changes": [CHANGE_EXAMPLE],
    "merged_into": None, "merged_from": []}


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
    merged_into: RecordRef | None = Field(default=None, description=(
        "Set when this person's record has been merged into another, the survivor: its "
        "register id and NHS number. `entitlement` is then this emptied record's (status "
        "`none`): the S117 history is the survivor's, told in the survivor's own documents. "
        "Null again once un-merged."))
    merged_from: list[RecordRef] = Field(default_factory=list, description=(
        "Records merged into this person and not un-merged, each with its register id and "
        "the NHS number it brought."))


def council_document(change: StatusChange, delivery_key: str) -> dict[str, Any]:
    doc = CouncilStatusDocument(
        delivery_id=delivery_key, change_id=change.change_id, occurred_at=change.changed_at,
        notice_received_at=change.notice_received_at, person=change.person,
        entitlement=change.entitlement, changes=change.changes,
        merged_into=change.merged_into.ref() if change.merged_into else None,
        merged_from=change.merged_from)
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


def _record_reference(register_id: str, system: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": register_id}}


def patient(change: StatusChange, system: str = REGISTER_ID_SYSTEM) -> dict[str, Any]:
    """The person as an R4B Patient with FHIR's merge links: a record merged into another
    is ``active: false`` with a ``replaced-by`` link to the survivor, and the survivor has a
    ``replaces`` link to each record merged into it (logical references by register id:
    they never fail to resolve). Un-merged, both are active again without those links."""
    from fhir.resources.R4B.patient import Patient

    person = change.person
    identifiers = [{"system": system, "value": person.register_id}]
    if person.nhs_number:
        identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number})
    resource: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers,
                                "active": change.merged_into is None}
    name = {k: v for k, v in (("family", change.family_name),
                              ("given", [change.given_name] if change.given_name else None))
            if v}
    if name:
        resource["name"] = [name]
    if change.birth_date:
        resource["birthDate"] = change.birth_date.isoformat()
    links = []
    if change.merged_into is not None:
        links.append({"other": _record_reference(change.merged_into.register_id, system),
                      "type": "replaced-by"})
    links += [{"other": _record_reference(record.register_id, system), "type": "replaces"}
              for record in change.merged_from]
    if links:
        resource["link"] = links
    Patient.model_validate(resource)
    return resource


def merge_bundle(change: StatusChange, system: str = REGISTER_ID_SYSTEM) -> dict[str, Any]:
    """A transaction Bundle (``POST`` to the FHIR base) that conditionally PUTs the Patient
    (``patient``: active, merge links) and the EpisodeOfCare together: what a ``fhir-r4``
    subscriber is sent when a merge or un-merge touches the person, or while the person is
    merged away. Its entries' fullUrls are fixed by the person, so a retry is the same."""
    from fhir.resources.R4B.bundle import Bundle

    token = f"{system}|{change.person.register_id}"
    entries = []
    for kind, resource in (("Patient", patient(change, system)),
                           ("EpisodeOfCare", episode_of_care(change, system))):
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{kind}?{token}')}",
            "resource": resource,
            "request": {"method": "PUT",
                        "url": f"{kind}?{urllib.parse.urlencode({'identifier': token})}"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    Bundle.model_validate(bundle)
    return bundle


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


def _message(structure: str, message_type: str, change: StatusChange, control_id: str, *,
             now: dt.datetime, sending_application: str, sending_facility: str,
             receiving_application: str, receiving_facility: str, version: str,
             processing_id: str) -> Message:
    """An hl7apy message with MSH and EVN filled in (the event: MSH-9's trigger)."""
    if not control_id or len(control_id) > 20:
        raise MappingError("invalid-value", "MSH-10 must be 1-20 characters",
                           location="MSH-10")
    # Set unescaped (hl7apy parses them as ER7): the version comes from the subscription,
    # so a delimiter or line break there must not reach the wire.
    for code, where in ((processing_id, "MSH-11"), (version, "MSH-12")):
        if not _PLAIN_CODE.fullmatch(code):
            raise MappingError("invalid-value", f"{where} must be a plain code such as 2.4",
                               location=where)
    msg = Message(structure, version=_HL7_VERSION, validation_level=_TOLERANT)
    msh = msg.msh
    for target, value in ((msh.msh_3, sending_application), (msh.msh_4, sending_facility),
                          (msh.msh_5, receiving_application),
                          (msh.msh_6, receiving_facility)):
        if value:
            target.hd_1 = _st(value, "IS")
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    msh.msh_7 = stamp
    msh.msh_9 = f"ADT^{message_type}^{structure}"
    msh.msh_10 = _st(control_id)
    msh.msh_11 = processing_id
    msh.msh_12 = version
    msg.evn.evn_1 = message_type
    msg.evn.evn_2 = change.changed_at.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    return msg


def _add_cx(segment: Any, field: str, value: str, authority: str, type_code: str) -> None:
    """One repetition of a CX field (PID-3, MRG-1), each component escaped."""
    cx = segment.add_field(field)
    cx.cx_1 = _st(value)
    cx.cx_4.hd_1 = _st(authority, "IS")
    cx.cx_5 = type_code


def _add_identifiers(segment: Any, field: str, record: RecordRef) -> None:
    """NHS number first, then the register id: what the A08 told the partner, so all it
    needs to find the record (no source's own identifiers)."""
    if record.nhs_number:
        _add_cx(segment, field, record.nhs_number, "NHS", "NH")
    _add_cx(segment, field, record.register_id, "S117HUB", "PI")


def _set_name(xpn: Any, family: str | None, given: str | None) -> None:
    if family:
        xpn.xpn_1.fn_1 = _st(family)
    if given:
        xpn.xpn_2 = _st(given)


def adt_a08(change: StatusChange, control_id: str, *, now: dt.datetime,
            sending_application: str = "S117HUB", sending_facility: str = "HUB",
            receiving_application: str = "", receiving_facility: str = "",
            version: str = "2.4", processing_id: str = "P") -> str:
    """ER7 (CR-separated, unframed) ADT^A08 carrying the S117 state in ZSE."""
    msg = _message("ADT_A01", "A08", change, control_id, now=now,
                   sending_application=sending_application,
                   sending_facility=sending_facility,
                   receiving_application=receiving_application,
                   receiving_facility=receiving_facility, version=version,
                   processing_id=processing_id)
    pid = msg.pid
    pid.pid_1 = "1"
    # PID-3: NHS number first, then the register id.
    _add_identifiers(pid, "PID_3", RecordRef(register_id=change.person.register_id,
                                             nhs_number=change.person.nhs_number))
    _set_name(pid.pid_5, change.family_name, change.given_name)
    if change.birth_date:
        pid.pid_7 = _dt(change.birth_date)
    msg.pv1.pv1_1 = "1"
    msg.pv1.pv1_2 = "N"  # patient class: not applicable (no encounter is being reported)
    _add_zse(msg, change)
    return str(msg.to_er7())


def adt_a40(change: StatusChange, control_id: str, *, now: dt.datetime,
            sending_application: str = "S117HUB", sending_facility: str = "HUB",
            receiving_application: str = "", receiving_facility: str = "",
            version: str = "2.4", processing_id: str = "P") -> str:
    """ER7 ADT^A40 (merge patient) for a person merged into another: PID is the survivor
    (PID-3 NHS number and register id, PID-5/7 name and birth date, as its A08), MRG the
    merged record (MRG-1 the NHS number it had and its register id, MRG-7 its name)."""
    survivor = change.merged_into
    if survivor is None:
        raise MappingError("invalid-value", "an A40 needs the survivor", location="PID")
    merged = change.merged_record or RecordRef(register_id=change.person.register_id,
                                               nhs_number=change.person.nhs_number)
    msg = _message("ADT_A39", "A40", change, control_id, now=now,
                   sending_application=sending_application,
                   sending_facility=sending_facility,
                   receiving_application=receiving_application,
                   receiving_facility=receiving_facility, version=version,
                   processing_id=processing_id)
    patient_group = msg.add_group("ADT_A39_PATIENT")
    pid = patient_group.add_segment("PID")
    pid.pid_1 = "1"
    _add_identifiers(pid, "PID_3", survivor)
    _set_name(pid.pid_5, survivor.family_name, survivor.given_name)
    if survivor.birth_date:
        pid.pid_7 = _dt(survivor.birth_date)
    mrg = patient_group.add_segment("MRG")
    _add_identifiers(mrg, "MRG_1", merged)
    _set_name(mrg.mrg_7, change.family_name, change.given_name)
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
