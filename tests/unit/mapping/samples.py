"""Named sample payloads for the mapping tests. All synthetic: 999-range NHS numbers with valid
check digits, invented names, ODS-shaped codes that are placeholders.

HL7 messages are built from segments so each sample shows only what makes it different.
"""

from __future__ import annotations

import copy
from typing import Any

from register_core.domain.nhs_number import make_synthetic

NHS_1 = "9990000018"
NHS_2 = make_synthetic(1)  # 9990000026
NHS_BAD_CHECK = "9990000019"
LOCAL_1 = "RX1-000123"
LOCAL_2 = "RX1-000999"


def segment(name: str, fields: dict[int, str]) -> str:
    """``PID`` with {3: "...", 5: "..."} → ``PID|||...||...`` (1-based field numbers)."""
    width = max(fields) if fields else 0
    return "|".join([name] + [fields.get(i, "") for i in range(1, width + 1)])


def msh(trigger: str, control_id: str, *, version: str = "2.4",
        structure: str = "ADT_A01", message_type: str = "ADT") -> str:
    return (f"MSH|^~\\&|EPR|RX1|S117HUB|HUB|20260105093000||{message_type}^{trigger}^"
            f"{structure}|{control_id}|P|{version}|||AL|NE")


def pid(*, nhs: str = NHS_1, local: str = LOCAL_1, family: str = "Testwood",
        given: str = "Robin", verification: str = "NSTS01", death: str = "",
        nhs_type: str = "NH") -> str:
    ids = "~".join(x for x in (
        f"{nhs}^^^NHS^{nhs_type}" if nhs else "",
        f"{local}^^^RX1^MR" if local else "") if x)
    return segment("PID", {1: "1", 3: ids, 5: f"{family}^{given}^^^Mx^^L", 7: "19800101",
                           8: "F", 11: "1 Sample Street^^Sampletown^^ab1 2cd^^H", 29: death,
                           32: verification})


PD1 = "PD1|||Sample Surgery^^M85019"


def pv1(*, admit: str = "202601050930", discharge: str = "", visit: str = "V0001") -> str:
    return segment("PV1", {1: "1", 2: "I", 3: "WARD7^^^RX1", 19: visit, 44: admit,
                           45: discharge})


def zls(code: str, start: str = "", end: str = "", reason: str = "") -> str:
    return segment("ZLS", {1: code, 2: start, 3: end, 4: reason})


def evn(trigger: str, recorded: str = "20260105093000", occurred: str = "") -> str:
    return segment("EVN", {1: trigger, 2: recorded, 6: occurred})


def adt(trigger: str, *segments: str, control_id: str | None = None, version: str = "2.4",
        structure: str = "ADT_A01", separator: str = "\r") -> str:
    lines = [msh(trigger, control_id or f"MSG-{trigger}", version=version,
                 structure=structure), *segments]
    return separator.join(lines) + separator


# --- ADT by trigger ---------------------------------------------------------------------------

A01_SECTION_3 = adt("A01", evn("A01"), pid(), PD1, pv1(), zls("03", "202601050930"))
A01_INFORMAL = adt("A01", evn("A01"), pid(), PD1, pv1(), zls("01", "202601050930"))
A01_NO_LEGAL_STATUS = adt("A01", evn("A01"), pid(), pv1())
A04_SECTION_136 = adt("A04", evn("A04"), pid(), pv1(admit="202601042300"), zls("20"))
A02_TRANSFER = adt("A02", evn("A02", "20260110140000", "20260110133000"), pid(),
                   segment("PV1", {1: "1", 2: "I", 3: "WARD9^^^RX2", 19: "V0001",
                                   44: "202601050930"}),
                   zls("03", "202601050930"), structure="ADT_A02")
A03_DISCHARGE = adt("A03", evn("A03"), pid(), pv1(discharge="202603011100"),
                    zls("03", "202601050930"), structure="ADT_A03")
A03_ONTO_CTO = adt("A03", evn("A03"), pid(), pv1(discharge="202603011100"),
                   zls("CTO", "202603011100"), structure="ADT_A03")
A03_ONTO_CD = adt("A03", evn("A03"), pid(), pv1(discharge="202603011100"), zls("CD"),
                  structure="ADT_A03")
# The audit's regrades: admitted under s2 on 1 June, s3 from 20 June, discharged 3 August.
A03_REGRADED_S3 = adt("A03", evn("A03", "20260803120000"), pid(),
                      pv1(admit="202606010930", discharge="202608031100"),
                      zls("03", "20260620", "20260803"), structure="ADT_A03")
A02_REGRADED_S3 = adt("A02", evn("A02", "20260701140000"), pid(),
                      pv1(admit="202606010930"), zls("03", "20260620"), structure="ADT_A02")
A03_SAME_SECTION = adt("A03", evn("A03"), pid(), pv1(discharge="202603011100"),
                       zls("03", "202601050930", "202603011100"), structure="ADT_A03")
A08_SECTION_CHANGE = adt("A08", evn("A08", "20260112100000"), pid(), pv1(),
                         zls("03", "202601121000"))
A08_DEMOGRAPHICS = adt("A08", evn("A08", "20260112100000"), pid(family="Testwood-Hale"),
                       pv1())
A08_CTO_START = adt("A08", evn("A08"), pid(), pv1(), zls("CTO", "20260301"))
A08_CTO_END = adt("A08", evn("A08"), pid(), pv1(), zls("CTO", "20260301", "20260901", "01"))
A08_CTO_REVOKED = adt("A08", evn("A08"), pid(), pv1(), zls("CTO", "", "20260601", "02"))
A08_CD_END = adt("A08", evn("A08"), pid(), pv1(), zls("CD", "", "20270101"))
A11_CANCEL_ADMIT = adt("A11", evn("A11", "20260105120000"), pid(), pv1(),
                       structure="ADT_A09")
A13_CANCEL_DISCHARGE = adt("A13", evn("A13", "20260302090000"), pid(), pv1())
A21_LEAVE_OUT = adt("A21", evn("A21", "20260201090000", "20260201080000"), pid(), pv1(),
                    zls("03", "202601050930"), structure="ADT_A21")
A22_LEAVE_BACK = adt("A22", evn("A22", "20260203170000"), pid(), pv1(),
                     zls("03", "202601050930"), structure="ADT_A21")
A21_INFORMAL_LEAVE = adt("A21", evn("A21", "20260201090000"), pid(), pv1(), zls("01"),
                         structure="ADT_A21")
A28_ADD_PERSON = adt("A28", evn("A28", "20260101090000"), pid(), PD1, structure="ADT_A05")
A31_UPDATE_PERSON = adt("A31", evn("A31", "20260301090000"),
                        pid(death="20260228", verification="NSTS02"), structure="ADT_A05")
A40_MERGE = adt("A40", evn("A40", "20260401090000"), pid(),
                segment("MRG", {1: f"{NHS_2}^^^NHS^NH~{LOCAL_2}^^^RX1^MR"}),
                structure="ADT_A39", version="2.5")

# --- variations -------------------------------------------------------------------------------

A01_LF = A01_SECTION_3.replace("\r", "\n")
A01_CRLF = A01_SECTION_3.replace("\r", "\r\n")
A01_V23 = adt("A01", evn("A01"), pid(), pv1(), zls("03", "202601050930"), version="2.3")
A01_V251 = adt("A01", evn("A01"), pid(), pv1(), zls("03", "202601050930"), version="2.5.1")
A01_ESCAPED = adt("A01", evn("A01"), pid(family="O\\T\\Brien\\F\\Smythe", given="Ann\\S\\Jo"),
                  pv1(), zls("03", "202601050930"))
A01_NHS_TYPE_OMITTED = adt("A01", evn("A01"), pid(nhs_type=""), pv1(), zls("03", "20260105"))
A01_BAD_NHS = adt("A01", evn("A01"), pid(nhs=NHS_BAD_CHECK), pv1(), zls("03", "20260105"))
A01_UNKNOWN_CODE = adt("A01", evn("A01"), pid(), pv1(), zls("S99", "20260105"))
A01_BAD_DATE = adt("A01", evn("A01"), pid(), pv1(), zls("03", "20261340"))
A01_NO_PID = adt("A01", evn("A01"), pv1(), zls("03", "20260105"))
A01_LOCAL_CODE = adt("A01", evn("A01"), pid(), pv1(), zls("SEC3", "20260105"))
A01_PV2_LOCAL_CODE = adt("A01", evn("A01"), pid(), pv1(admit="202601050930"),
                         segment("PV2", {3: "MHA-S2^Detained s2^LOCAL"}))
A01_ZU1_LOCAL_CODE = adt("A01", evn("A01"), pid(), pv1(),
                         segment("ZU1", {1: "1", 6: "T3", 7: "20260106"}))
A05_PREADMIT = adt("A05", evn("A05"), pid(), pv1())
ORU_R01 = msh("R01", "LAB-1", message_type="ORU", structure="ORU_R01") + "\rPID|1\r"
MSH_WITHOUT_CONTROL_ID = "MSH|^~\\&|EPR|RX1|S117HUB|HUB|20260105||ADT^A01|||2.4\r"
GARBAGE = "this is not HL7 at all\x00\x01"

# --- FHIR R4 ----------------------------------------------------------------------------------

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ENGLAND = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland"
WALES = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationWales"
LEGAL_STATUS_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-LegalStatus"


def legal_status(context: str, code: str, system: str = ENGLAND) -> dict[str, Any]:
    def concept(sys: str, value: str) -> dict[str, Any]:
        return {"coding": [{"system": sys, "code": value}]}

    return {"url": LEGAL_STATUS_URL, "extension": [
        {"url": "legalStatusContext", "valueCodeableConcept": concept(
            "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext", context)},
        {"url": "legalStatusClassification", "valueCodeableConcept": concept(system, code)}]}


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "identifier": [
        {"system": NHS_SYSTEM, "value": NHS_1, "extension": [{
            "url": "https://fhir.hl7.org.uk/StructureDefinition/"
                   "Extension-UKCore-NHSNumberVerificationStatus",
            "valueCodeableConcept": {"coding": [{
                "system": "https://fhir.hl7.org.uk/CodeSystem/"
                          "UKCore-NHSNumberVerificationStatusEngland", "code": "01"}]}}]},
        {"system": "https://sample-trust.example/Id/mrn", "value": LOCAL_1}],
    "name": [{"use": "nickname", "family": "Robbie"},
             {"use": "official", "family": "Testwood", "given": ["Robin"]}],
    "gender": "female", "birthDate": "1980-01-01",
    "address": [{"use": "home", "postalCode": "ab1 2cd"}],
    "generalPractitioner": [{"identifier": {"system": ODS_SYSTEM, "value": "M85019"}}],
}
ENCOUNTER_S2_TO_S3: dict[str, Any] = {
    "resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"},
    "identifier": [{"value": "V0001"}],
    "subject": {"reference": "urn:uuid:6f1c0d2a-0000-4000-8000-000000000001"},
    "period": {"start": "2026-01-05T09:30:00+00:00", "end": "2026-03-01T11:00:00+00:00"},
    "serviceProvider": {"identifier": {"system": ODS_SYSTEM, "value": "RX1"}},
    "extension": [legal_status("admission", "02"), legal_status("discharge", "03")],
}
EPISODE_S117: dict[str, Any] = {
    "resourceType": "EpisodeOfCare", "status": "active",
    "type": [{"coding": [{"system": "urn:s117hub:episode-type", "code": "s117-aftercare"}]}],
    "patient": {"reference": "Patient/pat-1"}, "period": {"start": "2026-03-01"},
}


def bundle(*resources: dict[str, Any], bundle_type: str = "transaction") -> dict[str, Any]:
    """A Bundle whose first Patient is urn:uuid:…0001; others get their own fullUrl."""
    entries = []
    for index, resource in enumerate(resources, start=1):
        entries.append({"fullUrl": f"urn:uuid:6f1c0d2a-0000-4000-8000-{index:012d}",
                        "resource": copy.deepcopy(resource),
                        "request": {"method": "POST", "url": resource["resourceType"]}})
    return {"resourceType": "Bundle", "id": "bundle-1", "type": bundle_type, "entry": entries}


ADMISSION_BUNDLE = bundle(PATIENT, ENCOUNTER_S2_TO_S3)

# --- council ----------------------------------------------------------------------------------

COUNCIL_PERSON: dict[str, Any] = {"nhs_number": NHS_1, "local_id": "LAS-000123",
                                  "family_name": "Testwood", "given_name": "Robin",
                                  "birth_date": "1980-01-01", "postcode": "ab1 2cd",
                                  "gp_practice_ods": "m85019"}
COUNCIL_DATA: dict[str, dict[str, Any]] = {
    "detention.notified": {"section": "03", "start": "2026-01-05", "end": "2026-03-01"},
    "s117.confirmed": {"start": "2026-03-01"},
    "s117.ended": {"date": "2027-02-01", "reason": "Needs met",
                   "council_signoff": {"by": "AMHP lead", "date": "2027-01-30"},
                   "icb_signoff": {"by": "ICB lead", "date": "2027-02-01"}},
    "aftercare-plan.agreed": {"date": "2026-03-05"},
    "review.completed": {"date": "2026-06-01", "kind": "unscheduled", "joint": True},
    "named-practitioner.set": {"name": "Sam Carer", "role": "Care coordinator"},
    "ordinary-residence.changed": {"council_code": "E10000034", "date": "2026-01-01"},
    "service.charged": {"service": "Supported living", "under_s117": True, "amount": 125.5,
                        "date": "2026-04-01"},
}


def council_event(event_type: str, data: dict[str, Any] | None = None,
                  event_id: str = "evt-1", **person: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": event_type, "occurred_at": "2026-03-01T09:30:00Z",
            "person": {**COUNCIL_PERSON, **person},
            "data": copy.deepcopy(COUNCIL_DATA[event_type] if data is None else data)}


COUNCIL_CSV = """\
Event ID,Event,NHS No,Surname,DOB,MHA Section,Start,End,Date,Kind,Council,Service,S117,Amount
csv-1,detention.notified,999 000 0018,Testwood,01/01/1980,S3,05/01/2026,01/03/2026,,,,,,
csv-2,s117.confirmed,9990000018,Testwood,01/01/1980,,01/03/2026,,,,,,,
csv-3,detention.notified,9990000019,Testwood,01/01/1980,03,05/01/2026,,,,,,,
csv-4,review.completed,9990000018,Testwood,,,,,2026-06-01,yearly,,,,
csv-5,ordinary-residence.changed,9990000018,,,,,,01/02/2026,,E10000034,,,
csv-6,s117.confirmed,9990000018,,,,31/02/2026,,,,,,,
csv-7,service.charged,9990000018,,,,,,01/04/2026,,,"Day care, weekly",yes,40.00
csv-8,relocated,9990000018,,,,,,,,,,,
csv-9,detention.notified,9990000018,,,XX,05/01/2026,,,,,,,
"""
# Lines 2, 3, 6, 8 are good; 4 (NHS check digit), 5 (kind), 7 (date), 9 (type), 10 (code) bad.
COUNCIL_CSV_GOOD_LINES = [2, 3, 6, 8]

COUNCIL_CSV_COLUMNS = {"event_id": "Event ID", "type": "Event", "nhs_number": "NHS No",
                       "family_name": "Surname", "birth_date": "DOB", "section": "MHA Section",
                       "start": "Start", "end": "End", "date": "Date", "kind": "Kind",
                       "council_code": "Council", "service": "Service",
                       "under_s117": "S117", "amount": "Amount"}
