"""Council events refuse control characters in names, ids and codes, naming the field.

Audit D4: a council event whose ``family_name`` was ``O'Brien\\rOBX|…`` was accepted, and the
name later split the PID of the ADT^A08 sent to an HL7 partner. Names, ids and codes now
refuse every C0 control character (and DEL); free text (``s117.ended`` reason) keeps tab and
line breaks, which the outbound HL7 escapes. Synthetic data only.
"""

from __future__ import annotations

from typing import Any

import pytest

from mapping.config import SourceMappingConfig
from mapping.council import CsvColumnMap, map_council_event, map_csv_text
from mapping.council_models import control_character_in
from mapping.errors import MappingError
from register_core.domain.commands import RecordS117Ended, SetNamedPractitioner

from . import samples as s
from .conftest import RECEIVED

CONTROLS = ["\r", "\n", "\x00", "\x0b", "\x1c", "\x1b", "\t", "\x7f"]


def refusal(event: dict[str, Any], config: SourceMappingConfig) -> MappingError:
    with pytest.raises(MappingError) as caught:
        map_council_event(event, config, RECEIVED)
    return caught.value


@pytest.mark.parametrize("field", ["family_name", "given_name", "local_id", "postcode",
                                   "gp_practice_ods", "nhs_number"])
@pytest.mark.parametrize("char", CONTROLS)
def test_a_control_character_in_a_person_field_is_refused_naming_it(
        council: SourceMappingConfig, field: str, char: str) -> None:
    value = f"{s.COUNCIL_PERSON[field]}{char}OBX|1|ST|Injected"
    error = refusal(s.council_event("detention.notified", **{field: value}), council)
    assert (error.code, error.location) == ("invalid-value", f"person.{field}")
    assert f"U+{ord(char):04X}" in error.message
    assert "OBX" not in error.message and "Testwood" not in error.message  # not echoed


def test_the_audit_reproduction_is_refused(council: SourceMappingConfig) -> None:
    event = s.council_event("detention.notified", family_name="O'Brien\rOBX|1|ST|^^^|Injected",
                            given_name="Pat\nZSE|ended")
    error = refusal(event, council)
    assert error.location == "person.family_name" and "U+000D" in error.message
    event["person"]["family_name"] = "O'Brien"
    assert refusal(event, council).location == "person.given_name"


@pytest.mark.parametrize("event_type, data, location", [
    ("named-practitioner.set", {"name": "Sam\rCarer"}, "data.name"),
    ("named-practitioner.set", {"name": "Sam Carer", "role": "Care\ncoordinator"},
     "data.role"),
    ("detention.notified", {"section": "03\r", "start": "2026-01-05"}, "data.section"),
    ("service.charged", {"service": "Supported\x00living", "under_s117": True,
                         "amount": "1.00", "date": "2026-04-01"}, "data.service"),
    ("s117.ended", {"date": "2027-02-01", "council_signoff": {"by": "AMHP\rlead",
                                                             "date": "2027-02-01"}},
     "data.council_signoff.by"),
    ("s117.ended", {"date": "2027-02-01", "grounds": ["plan met", "x\ny"]},
     "data.grounds[1]"),
    ("s117.ended", {"date": "2027-02-01", "reason": "needs met\x00"}, "data.reason"),
    ("s117.ended", {"date": "2027-02-01", "reason": "needs met\x1c"}, "data.reason"),
])
def test_control_characters_in_data_are_refused_naming_the_field(
        council: SourceMappingConfig, event_type: str, data: dict[str, Any],
        location: str) -> None:
    error = refusal(s.council_event(event_type, data), council)
    assert (error.code, error.location) == ("invalid-value", location)


def test_an_event_id_with_a_line_break_is_refused(council: SourceMappingConfig) -> None:
    error = refusal(s.council_event("s117.confirmed", event_id="evt-1\r\nX"), council)
    assert error.location == "event_id"


def test_free_text_keeps_tabs_and_line_breaks(council: SourceMappingConfig) -> None:
    reason = "Needs met.\r\nAgreed at the joint review:\tcouncil and ICB."
    [ended] = map_council_event(s.council_event("s117.ended", {
        "date": "2027-02-01", "reason": reason}), council, RECEIVED)
    assert isinstance(ended, RecordS117Ended) and ended.reason == reason


def test_ordinary_text_is_untouched(council: SourceMappingConfig) -> None:
    [named] = map_council_event(s.council_event("named-practitioner.set", {
        "name": "Siân O'Brien-Smith", "role": "Care coordinator"}), council, RECEIVED)
    assert isinstance(named, SetNamedPractitioner) and named.name == "Siân O'Brien-Smith"


def test_a_csv_row_with_a_line_break_in_a_name_is_refused_by_line_and_column(
        council: SourceMappingConfig) -> None:
    text = ("type,nhs_number,family_name,start\n"
            "s117.confirmed,9990000018,\"O'Brien\nOBX|1\",2026-03-01\n"
            "s117.confirmed,9990000018,Testwood,2026-03-01\n")
    result = map_csv_text(text, CsvColumnMap(), council, RECEIVED)
    assert [row.line for row in result.rows] == [4]  # the quoted cell spans two lines
    assert [(e.code, e.location) for e in result.errors] == [
        ("invalid-value", "line 2, column family_name")]


def test_control_character_in() -> None:
    assert control_character_in("a\rb") == "U+000D"
    assert control_character_in("a\tb\r\nc", free_text=True) is None
    assert control_character_in("a\x00b", free_text=True) == "U+0000"
    assert control_character_in("Zoë Ñ €") is None
