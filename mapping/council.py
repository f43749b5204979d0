"""Council REST JSON events → canonical commands (schema in ``council_models``).

    detention.notified          RecordDetentionStarted (+ RecordLeftHospital when ``end`` is set)
    s117.confirmed              RecordS117Confirmed
    s117.ended                  RecordS117Ended (sign-offs as given: the register judges them)
    aftercare-plan.agreed       RecordAftercarePlanAgreed
    review.completed            RecordReviewCompleted
    named-practitioner.set      SetNamedPractitioner (dated ``data.date`` or ``occurred_at``)
    ordinary-residence.changed  RecordOrdinaryResidenceChanged
    service.charged             RecordServiceCharged

Provenance: source = the source id, source_ref = ``event_id``. ``section`` is an MHSDS code
or a local code in the source's code map.

CSV exports: one row is one council event.

A row carries the event ``type`` and the flat fields of the JSON event (architecture section
4): ``event_id, type, occurred_at``, the person (``nhs_number, local_id, family_name,
given_name, birth_date, postcode, gp_practice_ods``) and the data of its type (``section,
start, end, date, reason, council_signoff_by, council_signoff_date, icb_signoff_by,
icb_signoff_date, grounds, kind, joint, name, role, council_code, service, under_s117,
amount``). ``CsvColumnMap`` names the CSV header for each of these; by default the header is
the field name itself. Dates may be ``YYYY-MM-DD`` or ``DD/MM/YYYY`` (spreadsheet exports);
``grounds`` are separated by ``;``; an empty ``event_id`` becomes ``<file_ref>:<line>`` and an
empty ``occurred_at`` the time the file was received. A bad row raises a MappingError naming
its line and column (``line 7, column Section``) and does not stop the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordAftercarePlanAgreed,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
    SetNamedPractitioner,
    Signoff,
)

from .common import (
    describe_code,
    is_detained,
    normalise_postcode,
    provenance,
    require_identity,
    translate_legal_status,
    valid_nhs_number,
)
from .config import SourceMappingConfig
from .council_models import (
    COUNCIL_EVENT_ADAPTER,
    EVENT_TYPES,
    AftercarePlanAgreed,
    CouncilEventModel,
    CouncilPerson,
    DetentionNotified,
    NamedPractitionerSet,
    OrdinaryResidenceChanged,
    ReviewCompleted,
    S117Confirmed,
    S117Ended,
    ServiceCharged,
)
from .council_models import Signoff as SignoffModel
from .errors import MappingError


def map_council_event(event: dict[str, Any] | CouncilEventModel, config: SourceMappingConfig,
                      received_at: datetime, recorded_by: str = "system") -> list[Command]:
    """Validate one council event and map it; MappingError names the offending field."""
    model = event if type(event) in _MAPPERS else validate_council_event(event)
    person = _person(model.person)
    prov = provenance(config, model.event_id, received_at, recorded_by)
    return _MAPPERS[type(model)](model, person, prov, config)


def validate_council_event(event: Any) -> CouncilEventModel:
    if not isinstance(event, dict):
        raise MappingError("unparseable", "a council event must be a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise MappingError("missing-field", "the event has no type", location="type")
    if kind not in EVENT_TYPES:
        raise MappingError("unsupported-event", f"event type {kind!r} is not one of "
                           f"{', '.join(EVENT_TYPES)}", location="type")
    try:
        return COUNCIL_EVENT_ADAPTER.validate_python(event)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = list(error.get("loc", ()))
        if loc and loc[0] == kind:  # the discriminated union puts the tag first
            loc = loc[1:]
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)
        code = "missing-field" if error.get("type") == "missing" else "invalid-value"
        raise MappingError(code, _message(error.get("msg")),
                           location=where.replace(".[", "[") or None) from exc


def _message(msg: Any) -> str:
    return (str(msg or "invalid value").splitlines() or ["invalid value"])[0].removeprefix(
        "Value error, ")


def _person(person: CouncilPerson) -> PersonRef:
    nhs = (valid_nhs_number(person.nhs_number, "person.nhs_number")
           if person.nhs_number and person.nhs_number.strip() else None)
    ref = PersonRef(
        nhs_number=nhs,
        local_id=(person.local_id or "").strip() or None,
        family_name=(person.family_name or "").strip() or None,
        given_name=(person.given_name or "").strip() or None,
        birth_date=person.birth_date,
        postcode=normalise_postcode(person.postcode),
        gp_practice_ods=(person.gp_practice_ods or "").strip().upper() or None)
    return require_identity(ref, "person")


def _detention(event: DetentionNotified, person: PersonRef, prov: Provenance,
               config: SourceMappingConfig) -> list[Command]:
    data = event.data
    section = translate_legal_status(data.section, config, "data.section")
    if not is_detained(section):
        raise MappingError("invalid-value", f"detention.notified with {describe_code(section)} "
                           f"({section}), which is not a detention", location="data.section")
    if data.end is not None and data.end < data.start:
        raise MappingError("invalid-value", "end is before start", location="data.end")
    commands: list[Command] = [RecordDetentionStarted(
        person=person, provenance=prov, section=section, start=data.start, end=data.end)]
    if data.end is not None:
        commands.append(RecordLeftHospital(person=person, provenance=prov, date=data.end))
    return commands


def _confirmed(event: S117Confirmed, person: PersonRef, prov: Provenance,
               config: SourceMappingConfig) -> list[Command]:
    return [RecordS117Confirmed(person=person, provenance=prov, start=event.data.start)]


def _signoff(model: SignoffModel | None, organisation: str | None = None) -> Signoff | None:
    if model is None:
        return None
    return Signoff(by=model.by, date=model.date, organisation=organisation)


def _ended(event: S117Ended, person: PersonRef, prov: Provenance,
           config: SourceMappingConfig) -> list[Command]:
    data = event.data
    return [RecordS117Ended(
        person=person, provenance=prov, date=data.date, reason=data.reason,
        # A council's case system signs for its own council (its source's organisation code),
        # so a sign-off from a council that is not the responsible one is seen as such.
        council_signoff=_signoff(data.council_signoff, config.organisation_code),
        icb_signoff=_signoff(data.icb_signoff),
        grounds=tuple(data.grounds))]


def _plan(event: AftercarePlanAgreed, person: PersonRef, prov: Provenance,
          config: SourceMappingConfig) -> list[Command]:
    return [RecordAftercarePlanAgreed(person=person, provenance=prov, date=event.data.date)]


def _review(event: ReviewCompleted, person: PersonRef, prov: Provenance,
            config: SourceMappingConfig) -> list[Command]:
    data = event.data
    return [RecordReviewCompleted(person=person, provenance=prov, date=data.date,
                                  review_kind=data.kind, joint=data.joint)]


def _practitioner(event: NamedPractitionerSet, person: PersonRef, prov: Provenance,
                  config: SourceMappingConfig) -> list[Command]:
    data = event.data
    return [SetNamedPractitioner(person=person, provenance=prov, name=data.name.strip(),
                                 role=data.role, date=data.date or event.occurred_at.date())]


def _residence(event: OrdinaryResidenceChanged, person: PersonRef, prov: Provenance,
               config: SourceMappingConfig) -> list[Command]:
    return [RecordOrdinaryResidenceChanged(person=person, provenance=prov,
                                           council_code=event.data.council_code,
                                           date=event.data.date)]


def _charged(event: ServiceCharged, person: PersonRef, prov: Provenance,
             config: SourceMappingConfig) -> list[Command]:
    data = event.data
    return [RecordServiceCharged(person=person, provenance=prov, service=data.service,
                                 under_s117=data.under_s117, amount=f"{data.amount:.2f}",
                                 date=data.date)]


_MAPPERS: dict[type[BaseModel], Callable[..., list[Command]]] = {
    DetentionNotified: _detention, S117Confirmed: _confirmed, S117Ended: _ended,
    AftercarePlanAgreed: _plan, ReviewCompleted: _review, NamedPractitionerSet: _practitioner,
    OrdinaryResidenceChanged: _residence, ServiceCharged: _charged,
}


# --- CSV -----------------------------------------------------------------------------------

PERSON_FIELDS = ("nhs_number", "local_id", "family_name", "given_name", "birth_date",
                 "postcode", "gp_practice_ods")
_DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "detention.notified": ("section", "start", "end"),
    "s117.confirmed": ("start",),
    "s117.ended": ("date", "reason", "grounds"),
    "aftercare-plan.agreed": ("date",),
    "review.completed": ("date", "kind", "joint"),
    "named-practitioner.set": ("name", "role", "date"),
    "ordinary-residence.changed": ("council_code", "date"),
    "service.charged": ("service", "under_s117", "amount", "date"),
}
_SIGNOFFS = ("council_signoff", "icb_signoff")
CSV_FIELDS: tuple[str, ...] = (
    "event_id", "type", "occurred_at", *PERSON_FIELDS, "section", "start", "end", "date",
    "reason", "council_signoff_by", "council_signoff_date", "icb_signoff_by",
    "icb_signoff_date", "grounds", "kind", "joint", "name", "role", "council_code", "service",
    "under_s117", "amount")
_DATE_FIELDS = frozenset({"birth_date", "start", "end", "date", "council_signoff_date",
                          "icb_signoff_date"})


class CsvColumnMap(BaseModel):
    """Canonical field name → the header a council's export uses for it."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [
        {"columns": {"nhs_number": "NHS No", "type": "Event", "section": "MHA Section",
                     "start": "Start Date"}, "date_formats": ["%d/%m/%Y"]}]})

    columns: dict[str, str] = Field(default_factory=dict)
    date_formats: tuple[str, ...] = ("%Y-%m-%d", "%d/%m/%Y")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CSV_FIELDS))
        if unknown:
            raise ValueError(f"unknown CSV fields {unknown}; known: {', '.join(CSV_FIELDS)}")
        return value

    def header(self, canonical: str) -> str:
        return self.columns.get(canonical, canonical)


DEFAULT_COLUMN_MAP = CsvColumnMap()


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    commands: list[Command]


@dataclass(slots=True)
class CsvImport:
    rows: list[CsvRow] = field(default_factory=list)
    errors: list[MappingError] = field(default_factory=list)

    @property
    def commands(self) -> list[Command]:
        return [command for row in self.rows for command in row.commands]


def map_csv_row(row: dict[str, str], line_no: int, column_map: CsvColumnMap,
                config: SourceMappingConfig, received_at: datetime,
                recorded_by: str = "system", *, file_ref: str | None = None) -> list[Command]:
    """Map one CSV row (a csv.DictReader dict) to the commands of its event."""
    def cell(name: str) -> str:
        value = row.get(column_map.header(name))
        return value.strip() if isinstance(value, str) else ""

    def fail(error: MappingError, canonical: str | None) -> MappingError:
        header = column_map.header(canonical) if canonical else None
        where = f"line {line_no}, column {header}" if header else f"line {line_no}"
        return MappingError(error.code, error.message, location=where, line=line_no)

    try:
        event = _event(cell, line_no, column_map, received_at, file_ref)
        return map_council_event(event, config, received_at, recorded_by)
    except MappingError as exc:
        raise fail(exc, _canonical(exc.location)) from exc


def header_without_type(header: list[str], type_header: str) -> MappingError:
    """The error for a CSV export whose header lacks the event-type column, with the likely
    cause when it shows: an empty file, or one header cell holding another separator."""
    problem = f"the header has no {type_header!r} column"
    if not any(cell.strip() for cell in header):
        problem = "the file is empty: no header line"
    elif len(header) == 1:
        separator = next((name for sep, name in (
            (";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars"))
            if sep in header[0]), None)
        if separator is not None:
            problem += f" (the header looks separated by {separator}: use commas)"
    return MappingError("missing-field", problem, location=f"line 1, column {type_header}",
                        line=1)


def map_csv_text(text: str, column_map: CsvColumnMap, config: SourceMappingConfig,
                 received_at: datetime, recorded_by: str = "system", *,
                 file_ref: str | None = None) -> CsvImport:
    """Map a whole export; each bad row becomes an error and the rest carry on."""
    result = CsvImport()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    if column_map.header("type") not in (reader.fieldnames or []):
        result.errors.append(header_without_type(list(reader.fieldnames or []),
                                                 column_map.header("type")))
        return result
    line = reader.line_num + 1
    for row in reader:
        start, line = line, reader.line_num + 1  # a quoted cell may span lines
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue
        try:
            result.rows.append(CsvRow(start, map_csv_row(
                row, start, column_map, config, received_at, recorded_by, file_ref=file_ref)))
        except MappingError as exc:
            result.errors.append(exc)
    return result


def _event(cell: Any, line_no: int, column_map: CsvColumnMap, received_at: datetime,
           file_ref: str | None) -> dict[str, Any]:
    kind = cell("type")
    if not kind:
        raise MappingError("missing-field", "the row has no event type", location="type")
    if kind not in _DATA_FIELDS:
        raise MappingError("unsupported-event", f"event type {kind!r} is not one of "
                           f"{', '.join(_DATA_FIELDS)}", location="type")

    def value(name: str) -> str | list[str] | None:
        text = cell(name)
        if not text:
            return None
        if name in _DATE_FIELDS:
            return _iso(text, column_map, name)
        if name == "grounds":
            return [g.strip() for g in text.split(";") if g.strip()]
        return text

    data: dict[str, Any] = {n: v for n in _DATA_FIELDS[kind] if (v := value(n)) is not None}
    if kind == "s117.ended":
        for prefix in _SIGNOFFS:
            by, when = value(f"{prefix}_by"), value(f"{prefix}_date")
            if by or when:
                data[prefix] = {k: v for k, v in (("by", by), ("date", when)) if v is not None}
    person = {n: v for n in PERSON_FIELDS if (v := value(n)) is not None}
    return {"event_id": cell("event_id") or f"{file_ref or 'csv'}:{line_no}", "type": kind,
            "occurred_at": cell("occurred_at") or received_at.isoformat(),
            "person": person, "data": data}


def _iso(text: str, column_map: CsvColumnMap, name: str) -> str:
    for fmt in column_map.date_formats:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise MappingError("invalid-value", f"{text!r} is not a date in the formats "
                       f"{', '.join(column_map.date_formats)}", location=name)


def _canonical(location: str | None) -> str | None:
    """An event location (``data.council_signoff.date``) → the CSV field it came from."""
    if not location:
        return None
    parts = [p for p in location.replace("[", ".").split(".") if p and not p.endswith("]")]
    if parts and parts[0] in ("data", "person"):
        parts = parts[1:]
    if parts and parts[0] in _SIGNOFFS:
        return f"{parts[0]}_{parts[1] if len(parts) > 1 else 'by'}"
    name = parts[0] if parts else None
    return name if name in CSV_FIELDS else None
