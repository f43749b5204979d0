"""The demo's story as data: sixteen weeks of a small partnership, one step per message.

``build_scenario(today)`` returns the steps in the order the partners send them; each step
says how many days ago it happened (0: today, sent at the real time) and what goes on the
wire. Pure: no clock, no network; the player (``demo.py``) sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from . import demo_messages as msg
from .demo_people import (
    COUNCIL_EAST_GSS,
    COUNCIL_OF,
    COUNCIL_WEST_GSS,
    PEOPLE,
    UNMAPPED_HL7_CODE,
)


@dataclass(frozen=True)
class Hl7Message:
    control_id: str
    text: str
    expect_ack: str = "AA"


@dataclass(frozen=True)
class FhirBundle:
    bundle: dict[str, Any]


@dataclass(frozen=True)
class CouncilEvents:
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class CsvExport:
    file_name: str
    text: str


@dataclass(frozen=True)
class OpenDispute:
    person: str  # a key of PEOPLE: the player finds the register id by NHS number
    kind: str
    summary: str
    opened: date


Action = Hl7Message | FhirBundle | CouncilEvents | CsvExport | OpenDispute


@dataclass(frozen=True)
class Step:
    days_ago: int
    at: datetime  # when it happens in the story (the hub's clock is set to it)
    action: Action
    what: str  # one line for the terminal; ids and names of invented people only


@dataclass
class _Builder:
    today: date
    steps: list[Step] = field(default_factory=list)
    _serial: dict[str, int] = field(default_factory=dict)

    def day(self, days_ago: int) -> date:
        return self.today - timedelta(days=days_ago)

    def at(self, days_ago: int, hour: int = 10, minute: int = 0) -> datetime:
        return datetime.combine(self.day(days_ago), time(hour, minute), tzinfo=UTC)

    def next_id(self, prefix: str) -> str:
        self._serial[prefix] = self._serial.get(prefix, 0) + 1
        return f"{prefix}{self._serial[prefix]:05d}"

    def add(self, days_ago: int, hour: int, action: Action, what: str) -> None:
        self.steps.append(Step(days_ago, self.at(days_ago, hour), action, what))

    # -- the trust on HL7 v2 ---------------------------------------------------------------

    def hl7(self, days_ago: int, trigger: str, key: str, visit: str, admitted_days_ago: int,
            code: str, *, legal_from: int | None = None, discharged: bool = False,
            expect_ack: str = "AA", what: str = "") -> None:
        person = PEOPLE[key]
        when = self.at(days_ago, 9, 30)
        admitted = self.at(admitted_days_ago, 9, 30)
        start = self.at(admitted_days_ago if legal_from is None else legal_from, 9, 30)
        control_id = self.next_id("NG")
        text = msg.adt(trigger, control_id, person, sent=when, occurred=when, visit=visit,
                       admitted=admitted, discharged=when if discharged else None,
                       ward="CEDAR" if trigger == "A02" else "OAK",
                       legal_status=(code, start, None))
        self.add(days_ago, 9, Hl7Message(control_id, text, expect_ack),
                 f"HL7 ADT^{trigger} {control_id} ({person.name}): {what}")

    # -- the trust on FHIR -----------------------------------------------------------------

    def fhir(self, days_ago: int, key: str, visit: str, code: str, start_days_ago: int,
             end_days_ago: int | None = None, what: str = "") -> None:
        person = PEOPLE[key]
        bundle_id = self.next_id("RV")
        end = self.day(end_days_ago) if end_days_ago is not None else None
        stay = msg.encounter(person, visit, admission_code=code,
                             start=self.day(start_days_ago), end=end)
        self.add(days_ago, 11, FhirBundle(msg.transaction(bundle_id, person, stay)),
                 f"FHIR Bundle {bundle_id} ({person.name}): {what}")

    # -- the councils ----------------------------------------------------------------------

    def west(self, days_ago: int, events: list[tuple[str, str, dict[str, Any]]],
             what: str) -> None:
        when = self.at(days_ago, 14)
        body = [msg.council_event(self.next_id("WCC-"), kind, PEOPLE[key], when, data)
                for kind, key, data in events]
        self.add(days_ago, 14, CouncilEvents(body), f"council REST events: {what}")

    def east(self, days_ago: int, rows: list[tuple[str, str, dict[str, Any]]],
             what: str) -> None:
        name = f"eastbrook-s117-{self.day(days_ago).isoformat()}.csv"
        text = msg.csv_export([msg.csv_row(self.next_id("EB-"), kind, PEOPLE[key], **data)
                               for kind, key, data in rows])
        self.add(days_ago, 16, CsvExport(name, text), f"council CSV export {name}: {what}")

    def confirm(self, key: str, left_days_ago: int, worker: str) -> list[
            tuple[str, str, dict[str, Any]]]:
        """A council's usual three events after a discharge: confirmed, plan, practitioner."""
        left = self.day(left_days_ago).isoformat()
        return [("s117.confirmed", key, {"start": left}),
                ("aftercare-plan.agreed", key, {"date": left}),
                ("named-practitioner.set", key, {"name": worker, "role": "care coordinator",
                                                 "date": left})]


def _residence(key: str, since: date, council: str | None = None) -> tuple[
        str, str, dict[str, Any]]:
    return ("ordinary-residence.changed", key,
            {"council_code": council or COUNCIL_OF[key], "date": since.isoformat()})


def build_scenario(today: date) -> list[Step]:
    """Every step, oldest first (same-day steps in the order they are listed)."""
    b = _Builder(today)
    years_ago = b.day(900)
    west_people = [k for k in PEOPLE if COUNCIL_OF[k] == COUNCIL_WEST_GSS and k != "morgan"]
    b.west(115, [_residence(k, years_ago) for k in west_people]
           + [_residence("morgan", b.day(200))],
           "Westmere's open cases: ordinary residence of 11 people")
    b.east(114, [(t, k, {"council_code": COUNCIL_EAST_GSS, "date": b.day(900)})
                 for t, k in (("ordinary-residence.changed", "jordan"),
                              ("ordinary-residence.changed", "riley"),
                              ("ordinary-residence.changed", "jamie"),
                              ("ordinary-residence.changed", "kit"))]
           + [("ordinary-residence.changed", "morgan",
               {"council_code": COUNCIL_EAST_GSS, "date": b.day(200)}),
              ("detention.notified", "kit", {"section": "03", "start": b.day(150),
                                             "end": b.day(60)}),
              ("s117.confirmed", "kit", {"start": b.day(60)}),
              ("aftercare-plan.agreed", "kit", {"date": b.day(60)}),
              ("named-practitioner.set", "kit", {"name": "Pat Demo-Worker",
                                                 "role": "social worker"})],
           "Eastbrook's weekly export: residences, and Kit's out-of-area s3")
    b.hl7(113, "A01", "robin", "V2013", 113, "S3", what="admitted under s3")
    b.fhir(112, "casey", "SP-4004", "10", 290, 112,
           what="s37 stay finished: left hospital")
    b.west(110, b.confirm("casey", 112, "Lee Demo-Coordinator"),
           "Casey: s117 confirmed, plan agreed, care coordinator named")
    b.hl7(110, "A01", "charlie", "V2011", 110, "S3", what="admitted under s3")
    b.hl7(105, "A03", "robin", "V2013", 113, "S3", discharged=True, what="discharged")
    b.west(104, b.confirm("robin", 105, "Lee Demo-Coordinator"), "Robin: s117 confirmed")
    b.hl7(95, "A03", "charlie", "V2011", 110, "S3", discharged=True, what="discharged")
    b.west(93, b.confirm("charlie", 95, "Ash Demo-Worker"), "Charlie: s117 confirmed")
    b.hl7(90, "A01", "riley", "V2005", 90, "S3", what="admitted under s3")
    b.hl7(84, "A01", "alex", "V2001", 84, "S2", what="admitted under s2")
    b.fhir(80, "jamie", "SP-4010", "03", 80, what="admitted under s3")
    b.hl7(77, "A08", "alex", "V2001", 84, "S3", legal_from=77, what="s2 regraded to s3")
    b.hl7(70, "A01", "jordan", "V2003", 70, "S3", what="admitted under s3")
    b.hl7(63, "A01", "morgan", "V2006", 63, "S3", what="admitted under s3")
    b.hl7(60, "A02", "alex", "V2001", 84, "S3", legal_from=77, what="moved to Cedar ward")
    b.hl7(56, "A01", "sam", "V2002", 56, "S3", what="admitted under s3")
    b.west(54, [("detention.notified", "sam", {"section": "02", "start": b.day(56).isoformat()}),
                ("named-practitioner.set", "sam", {"name": "Ash Demo-Worker",
                                                   "role": "AMHP"})],
           "Sam: the AMHP's record says s2, not s3")
    b.fhir(45, "avery", "SP-4007", "02", 45, what="admitted under s2")
    b.fhir(42, "jamie", "SP-4010", "03", 80, 42, what="left hospital")
    b.west(40, [("review.completed", "robin", {"date": b.day(40).isoformat(),
                                               "kind": "scheduled", "joint": True})],
           "Robin: joint review held")
    b.fhir(40, "quinn", "SP-4008", "03", 40, what="admitted under s3")
    b.hl7(40, "A01", "drew", "V2012", 40, "S3", what="admitted under s3")
    b.west(38, [("named-practitioner.set", "quinn", {"name": "Lee Demo-Coordinator",
                                                     "role": "care coordinator"})],
           "Quinn: care coordinator named before discharge")
    # The export holds the admission, not the discharge: were the council's detention row to
    # carry the end too, the register would credit the discharge to the council alone and
    # then not count its own confirmation (a missed entitlement that is not one).
    b.east(35, [("detention.notified", "jamie", {"section": "03", "start": b.day(80)}),
                ("s117.confirmed", "jamie", {"start": b.day(42)}),
                ("aftercare-plan.agreed", "jamie", {"date": b.day(42)}),
                ("named-practitioner.set", "jamie", {"name": "Pat Demo-Worker",
                                                     "role": "social worker"}),
                ("named-practitioner.set", "jordan", {"name": "Pat Demo-Worker",
                                                      "role": "social worker"})],
           "Jamie confirmed (agrees with the trust); Jordan allocated a social worker")
    b.hl7(35, "A03", "morgan", "V2006", 63, "S3", discharged=True, what="discharged")
    b.west(33, b.confirm("morgan", 35, "Ash Demo-Worker"),
           "Morgan: confirmed by Westmere while Eastbrook also claims residence")
    b.hl7(30, "A03", "riley", "V2005", 90, "CTO", legal_from=30, discharged=True,
          what="discharged onto a community treatment order")
    b.west(30, [("review.completed", "charlie", {"date": b.day(30).isoformat(),
                                                 "kind": "scheduled"})],
           "Charlie: 3-month review held")
    b.hl7(28, "A03", "jordan", "V2003", 70, "S3", discharged=True,
          what="discharged (Eastbrook never confirms)")
    b.west(25, [("named-practitioner.set", "alex", {"name": "Lee Demo-Coordinator",
                                                    "role": "care coordinator"}),
                ("aftercare-plan.agreed", "alex", {"date": b.day(23).isoformat()})],
           "Alex: care coordinator named, aftercare plan agreed")
    b.fhir(24, "avery", "SP-4007", "02", 45, 24, what="left hospital after s2")
    b.hl7(21, "A03", "alex", "V2001", 84, "S3", legal_from=77, discharged=True,
          what="discharged: s117 starts")
    b.east(21, [("s117.confirmed", "riley", {"start": b.day(30)}),
                ("aftercare-plan.agreed", "riley", {"date": b.day(30)}),
                ("named-practitioner.set", "riley", {"name": "Pat Demo-Worker",
                                                     "role": "social worker"})],
           "Riley: s117 confirmed")
    b.add(20, 15, OpenDispute(
        "morgan", "responsibility",
        "Westmere and Eastbrook each record ordinary residence before the s3 detention; "
        "who is the responsible council? Westmere funds the placement meanwhile.",
        b.day(20)), "dispute logged: which council is responsible for Morgan")
    b.west(19, [("s117.confirmed", "alex", {"start": b.day(21).isoformat()})],
           "Alex: s117 confirmed")
    b.west(14, [("s117.ended", "charlie", {
        "date": b.day(14).isoformat(), "reason": "person no longer engaging with services",
        "council_signoff": {"by": "Westmere team manager", "date": b.day(15).isoformat()},
        "icb_signoff": None, "grounds": ["disengaged"]})],
        "Charlie: s117 ended by the council alone")
    b.west(12, [("s117.ended", "robin", {
        "date": b.day(12).isoformat(),
        "reason": "joint review found the s117 services are no longer needed",
        "council_signoff": {"by": "Westmere team manager", "date": b.day(13).isoformat()},
        "icb_signoff": {"by": "ICB s117 lead", "date": b.day(12).isoformat()},
        "grounds": ["needs-met"]})], "Robin: lawful joint ending")
    b.west(10, [("named-practitioner.set", "drew", {"name": "Ash Demo-Worker",
                                                    "role": "care coordinator"}),
                ("aftercare-plan.agreed", "drew", {"date": b.day(10).isoformat()})],
           "Drew: plan agreed before discharge")
    b.hl7(3, "A01", "taylor", "V2009", 3, UNMAPPED_HL7_CODE, expect_ack="AE",
          what=f"admitted under the local code {UNMAPPED_HL7_CODE}, not in the code map")
    b.hl7(0, "A03", "drew", "V2012", 40, "S3", discharged=True, what="discharged today")
    return sorted(b.steps, key=lambda s: -s.days_ago)  # stable: same-day order kept
