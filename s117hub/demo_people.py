"""The synthetic partnership ``s117hub demo`` plays: its partner systems and its people.

Pure data. Every person is invented: NHS numbers from ``make_synthetic`` (999 range, valid
check digit, never issued), surnames no one has. Organisation codes are placeholders in the
shape of ODS and ONS GSS codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from register_core.domain.nhs_number import make_synthetic

# -- the partnership -------------------------------------------------------------------------

TRUST_HL7 = "trust-hl7"  # sends HL7 v2 ADT over MLLP
TRUST_FHIR = "trust-fhir"  # POSTs FHIR R4 transaction Bundles
COUNCIL_REST = "council-west"  # POSTs council events (JSON)
COUNCIL_CSV = "council-east"  # POSTs weekly CSV exports

TRUST_HL7_ODS = "RX1"
TRUST_FHIR_ODS = "RX2"
COUNCIL_WEST_GSS = "E10000034"
COUNCIL_EAST_GSS = "E06000019"
ICB_WEST = "QGH"
ICB_EAST = "QHL"
PRACTICE_WEST = "M85001"
PRACTICE_EAST = "M85002"

HL7_SENDING_APPLICATION = "EPR"
# Local legal-status codes the HL7 trust's EPR uses, and what they mean (MHSDS).
HL7_CODE_MAP: dict[str, str] = {"INF": "01", "S2": "02", "S3": "03", "S37": "10",
                                "S136": "20", "CTO": "CTO", "CD": "CD"}
# Deliberately missing from HL7_CODE_MAP: the message that uses it is answered AE, and the
# fix (a code-map entry, then replay) is one of the things the demo invites you to do.
UNMAPPED_HL7_CODE = "S37/41"
UNMAPPED_HL7_CODE_MEANS = "09"  # s37 with s41 restrictions

FHIR_LOCAL_ID_SYSTEM = "https://riverside-trust.example/Id/mrn"

# What the CSV council's export calls each field (its own headers, as exported).
CSV_COLUMNS: dict[str, str] = {
    "event_id": "Ref", "type": "Event", "nhs_number": "NHS Number", "local_id": "Case ID",
    "family_name": "Surname", "given_name": "Forename", "birth_date": "DOB",
    "postcode": "Postcode", "section": "MHA Section", "start": "Start", "end": "End",
    "date": "Date", "council_code": "Council", "name": "Worker", "role": "Worker Role",
}
CSV_DATE_FORMAT = "%d/%m/%Y"

SOURCES: tuple[dict[str, object], ...] = (
    {"source_id": TRUST_HL7, "kind": "hl7v2-mllp",
     "display_name": "Northgate Mental Health NHS Trust EPR (HL7 v2 over MLLP)",
     "organisation_code": TRUST_HL7_ODS, "hl7_sending_application": HL7_SENDING_APPLICATION,
     "hl7_sending_facility": TRUST_HL7_ODS, "code_map": HL7_CODE_MAP},
    {"source_id": TRUST_FHIR, "kind": "fhir-r4",
     "display_name": "Riverside Partnership NHS Trust EPR (FHIR R4)",
     "organisation_code": TRUST_FHIR_ODS, "fhir_local_id_system": FHIR_LOCAL_ID_SYSTEM},
    {"source_id": COUNCIL_REST, "kind": "council-rest",
     "display_name": "Westmere County Council case system (REST events)",
     "organisation_code": COUNCIL_WEST_GSS},
    {"source_id": COUNCIL_CSV, "kind": "council-csv",
     "display_name": "Eastbrook City Council case system (weekly CSV export)",
     "organisation_code": COUNCIL_EAST_GSS,
     "csv": {"columns": CSV_COLUMNS, "date_formats": [CSV_DATE_FORMAT]}},
)

# Subscribers: (id, kind, display name, path on the fake partner, change filter).
SUBSCRIBER_WEST = "council-west-status"
SUBSCRIBER_EAST = "council-east-status"
SUBSCRIBER_TRUST = "trust-fhir-register"


# -- the people ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoPerson:
    key: str  # the handle the scenario and the "try this" list use
    serial: int  # make_synthetic(serial) is the NHS number
    given_name: str
    family_name: str
    birth_date: date
    sex: str  # HL7 table 0001: F / M
    postcode: str
    practice: str
    story: str  # one line for the terminal

    @property
    def nhs_number(self) -> str:
        return make_synthetic(self.serial)

    @property
    def trust_local_id(self) -> str:
        return f"NG-{700000 + self.serial}"

    @property
    def council_local_id(self) -> str:
        return f"LAS-{50000 + self.serial}"

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


def _person(key: str, serial: int, given: str, family: str, born: str, sex: str,
            postcode: str, practice: str, story: str) -> DemoPerson:
    return DemoPerson(key, serial, given, family, date.fromisoformat(born), sex, postcode,
                      practice, story)


W, E = PRACTICE_WEST, PRACTICE_EAST
PEOPLE: dict[str, DemoPerson] = {p.key: p for p in (
    _person("alex", 117001, "Alex", "Testwood", "1984-03-12", "F", "WR1 3ZQ", W,
            "s2 regraded to s3 over HL7, transferred, discharged; council confirms: active"),
    _person("sam", 117002, "Sam", "Sampleton", "1991-07-30", "M", "WR2 5ZX", W,
            "trust says s3, council says s2 for the same detention: source conflict"),
    _person("jordan", 117003, "Jordan", "Mockridge", "1979-11-02", "M", "HR1 2ZY", E,
            "s3 discharge the council never confirmed: missed entitlement"),
    _person("casey", 117004, "Casey", "Fixtureby", "1988-01-19", "F", "WR5 1ZT", W,
            "s37 over FHIR, discharged 16 weeks ago, no review held: review overdue"),
    _person("riley", 117005, "Riley", "Stubbington", "1995-05-08", "M", "HR4 9ZW", E,
            "s3 then discharged onto a CTO over HL7; council confirms by CSV"),
    _person("morgan", 117006, "Morgan", "Examplar", "1972-09-23", "F", "WR9 8ZU", W,
            "both councils claim ordinary residence: conflict and a responsibility dispute"),
    _person("avery", 117007, "Avery", "Synthwick", "2000-02-14", "M", "WR3 7ZS", W,
            "s2 only over FHIR, discharged: no s117 entitlement"),
    _person("quinn", 117008, "Quinn", "Demoworth", "1986-12-01", "F", "WR4 4ZR", W,
            "s3 over FHIR, still in hospital: entitlement pending"),
    _person("taylor", 117009, "Taylor", "Fauxley", "1969-06-17", "M", "WR6 6ZP", W,
            f"HL7 admission with the unmapped local code {UNMAPPED_HL7_CODE}: AE, replay it"),
    _person("jamie", 117010, "Jamie", "Pretendon", "1993-08-09", "F", "HR2 3ZN", E,
            "s3 over FHIR and in the council's CSV, both agree: active"),
    _person("charlie", 117011, "Charlie", "Trialby", "1981-04-04", "M", "WR7 2ZL", W,
            "council ended s117 without the ICB's sign-off: one-sided ending refused"),
    _person("drew", 117012, "Drew", "Prototon", "1998-10-27", "F", "WR8 5ZJ", W,
            "discharged today: deliveries retrying (trust down) and one refused by the council"),
    _person("robin", 117013, "Robin", "Specimen", "1965-03-03", "M", "WR10 1ZH", W,
            "discharged, reviewed, then a lawful joint ending: ended"),
    _person("kit", 117014, "Kit", "Mimicks", "1990-12-12", "F", "HR3 4ZG", E,
            "s3 out of area, known only to the CSV council: no NHS partner confirms it"),
)}

COUNCIL_OF: dict[str, str] = {key: (COUNCIL_EAST_GSS if p.practice == E else COUNCIL_WEST_GSS)
                              for key, p in PEOPLE.items()}
FOLLOW = "alex"  # the person the "try this" list follows from HL7 to delivery
