"""Pure builders of what the demo's partner systems send: HL7 v2 ADT (ZLS legal status), FHIR
R4 transaction Bundles, council JSON events and CSV export rows. Text and dicts only: the
player (``demo.py``) puts them on the wire."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from .demo_people import (
    CSV_COLUMNS,
    CSV_DATE_FORMAT,
    FHIR_LOCAL_ID_SYSTEM,
    HL7_SENDING_APPLICATION,
    TRUST_FHIR_ODS,
    TRUST_HL7_ODS,
    DemoPerson,
)

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
LEGAL_STATUS_EXTENSION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-LegalStatus"
LEGAL_STATUS_CONTEXT = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext"
LEGAL_STATUS_ENGLAND = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland")
VERIFICATION_EXTENSION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus")
VERIFICATION_SYSTEM = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland")
_STRUCTURE = {"A01": "ADT_A01", "A02": "ADT_A02", "A03": "ADT_A03", "A08": "ADT_A01"}


# -- HL7 v2 ----------------------------------------------------------------------------------

def hl7_ts(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S")
    return value.strftime("%Y%m%d")


def _segment(name: str, fields: dict[int, str]) -> str:
    """``PID`` with {3: "...", 5: "..."} → ``PID|||...||...`` (1-based field numbers)."""
    width = max(fields)
    return "|".join([name] + [fields.get(i, "") for i in range(1, width + 1)])


def adt(trigger: str, control_id: str, person: DemoPerson, *, sent: datetime,
        occurred: datetime, visit: str, admitted: datetime, ward: str = "OAK",
        discharged: datetime | None = None,
        legal_status: tuple[str, datetime | None, datetime | None] | None = None) -> str:
    """One ADT message the way the trust's EPR sends it: legal status in ZLS after PV1
    (ZLS-1 local code, ZLS-2 start, ZLS-3 end), NHS number verified (PID-32 NSTS01)."""
    segments = [
        f"MSH|^~\\&|{HL7_SENDING_APPLICATION}|{TRUST_HL7_ODS}|S117HUB|HUB|{hl7_ts(sent)}||"
        f"ADT^{trigger}^{_STRUCTURE[trigger]}|{control_id}|P|2.4",
        _segment("EVN", {1: trigger, 2: hl7_ts(sent), 6: hl7_ts(occurred)}),
        _segment("PID", {
            1: "1",
            3: f"{person.nhs_number}^^^NHS^NH~{person.trust_local_id}^^^{TRUST_HL7_ODS}^MR",
            5: f"{person.family_name}^{person.given_name}^^^^^L",
            7: hl7_ts(person.birth_date), 8: person.sex,
            11: f"1 Demo Street^^Demotown^^{person.postcode}^^H", 32: "NSTS01"}),
        _segment("PD1", {3: f"Demo Surgery^^{person.practice}"}),
        _segment("PV1", {1: "1", 2: "I", 3: f"{ward}^^^{TRUST_HL7_ODS}", 19: visit,
                         44: hl7_ts(admitted),
                         45: hl7_ts(discharged) if discharged else ""}),
    ]
    if legal_status is not None:
        code, start, end = legal_status
        segments.append(_segment("ZLS", {1: code, 2: hl7_ts(start) if start else "",
                                         3: hl7_ts(end) if end else ""}))
    return "\r".join(segments) + "\r"


# -- FHIR R4 ---------------------------------------------------------------------------------

def _legal_status(context: str, code: str) -> dict[str, Any]:
    def concept(system: str, value: str) -> dict[str, Any]:
        return {"coding": [{"system": system, "code": value}]}

    return {"url": LEGAL_STATUS_EXTENSION, "extension": [
        {"url": "legalStatusContext", "valueCodeableConcept": concept(LEGAL_STATUS_CONTEXT,
                                                                      context)},
        {"url": "legalStatusClassification",
         "valueCodeableConcept": concept(LEGAL_STATUS_ENGLAND, code)}]}


def _instant(day: date, hour: int = 10) -> str:
    return datetime.combine(day, time(hour)).isoformat() + "+00:00"


def patient(person: DemoPerson) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number, "extension": [{
                "url": VERIFICATION_EXTENSION, "valueCodeableConcept": {"coding": [{
                    "system": VERIFICATION_SYSTEM, "code": "01"}]}}]},
            {"system": FHIR_LOCAL_ID_SYSTEM, "value": person.trust_local_id}],
        "name": [{"use": "official", "family": person.family_name,
                  "given": [person.given_name]}],
        "gender": "female" if person.sex == "F" else "male",
        "birthDate": person.birth_date.isoformat(),
        "address": [{"use": "home", "postalCode": person.postcode}],
        "generalPractitioner": [{"identifier": {"system": ODS_SYSTEM,
                                                "value": person.practice}}],
    }


def patient_url(person: DemoPerson) -> str:
    """The Patient's fullUrl in a Bundle: a UUID that stays the same for the person."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, FHIR_LOCAL_ID_SYSTEM + person.key)}"


def encounter(person: DemoPerson, visit: str, *, admission_code: str, start: date,
              end: date | None = None, discharge_code: str | None = None) -> dict[str, Any]:
    """An inpatient stay with its UK Core legal status; ``end`` makes it finished."""
    statuses = [_legal_status("admission", admission_code)]
    if discharge_code is not None:
        statuses.append(_legal_status("discharge", discharge_code))
    period = {"start": _instant(start)} | ({"end": _instant(end, 11)} if end else {})
    return {
        "resourceType": "Encounter", "status": "finished" if end else "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                  "code": "IMP"},
        "identifier": [{"system": "https://riverside-trust.example/Id/spell", "value": visit}],
        "subject": {"reference": patient_url(person)}, "period": period,
        "serviceProvider": {"identifier": {"system": ODS_SYSTEM, "value": TRUST_FHIR_ODS}},
        "extension": statuses,
    }


def transaction(bundle_id: str, person: DemoPerson, *resources: dict[str, Any]
                ) -> dict[str, Any]:
    """A transaction Bundle: the Patient, then ``resources`` that refer to it."""
    entries = [{"fullUrl": patient_url(person), "resource": patient(person),
                "request": {"method": "PUT", "url": "Patient?identifier="
                            f"{FHIR_LOCAL_ID_SYSTEM}|{person.trust_local_id}"}}]
    entries += [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{bundle_id}/{i}')}",
                 "resource": resource,
                 "request": {"method": "PUT", "url": resource["resourceType"]}}
                for i, resource in enumerate(resources, start=1)]
    return {"resourceType": "Bundle", "type": "transaction",
            "identifier": {"system": "https://riverside-trust.example/Id/bundle",
                           "value": bundle_id}, "entry": entries}


# -- council ---------------------------------------------------------------------------------

def council_person(person: DemoPerson) -> dict[str, Any]:
    return {"nhs_number": person.nhs_number, "local_id": person.council_local_id,
            "family_name": person.family_name, "given_name": person.given_name,
            "birth_date": person.birth_date.isoformat(), "postcode": person.postcode}


def council_event(event_id: str, event_type: str, person: DemoPerson, occurred: datetime,
                  data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": event_type,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
            "person": council_person(person), "data": data}


def csv_export(rows: Sequence[dict[str, Any]]) -> str:
    """The council's export: its own headers (``CSV_COLUMNS``), dates as dd/mm/yyyy."""
    fields = list(CSV_COLUMNS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([CSV_COLUMNS[f] for f in fields])
    for row in rows:
        writer.writerow([_csv_cell(row.get(f)) for f in fields])
    return out.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime(CSV_DATE_FORMAT)
    return str(value)


def csv_row(ref: str, event_type: str, person: DemoPerson, **data: object) -> dict[str, Any]:
    return {"event_id": ref, "type": event_type, "nhs_number": person.nhs_number,
            "local_id": person.council_local_id, "family_name": person.family_name,
            "given_name": person.given_name, "birth_date": person.birth_date,
            "postcode": person.postcode, **data}
