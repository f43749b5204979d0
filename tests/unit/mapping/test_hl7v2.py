"""HL7 v2 ADT → commands: every trigger, both legal-status locations, and the bad inputs."""

from __future__ import annotations

from datetime import date

import pytest

from mapping.config import LegalStatusLocation, SourceMappingConfig
from mapping.errors import MappingError
from mapping.hl7v2 import map_adt, parse_adt
from register_core.domain.commands import (
    CancelEvent,
    Command,
    MergePersons,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordPersonDetails,
)

from . import samples as s
from .conftest import RECEIVED


def run(raw: str, config: SourceMappingConfig) -> list[Command]:
    return map_adt(parse_adt(raw), config, RECEIVED, "system")


def kinds(commands: list[Command]) -> list[str]:
    return [getattr(c, "event", c.kind) for c in commands]


def test_parse_reads_the_header() -> None:
    parsed = parse_adt(s.A01_SECTION_3)
    assert (parsed.control_id, parsed.sending_application, parsed.sending_facility) == (
        "MSG-A01", "EPR", "RX1")
    assert (parsed.receiving_application, parsed.receiving_facility) == ("S117HUB", "HUB")
    assert (parsed.message_type, parsed.trigger_event, parsed.version) == ("ADT", "A01", "2.4")
    assert (parsed.accept_ack_type, parsed.application_ack_type) == ("AL", "NE")
    assert parsed.processing_id == "P"
    assert parsed.segment("ZLS") is not None


def test_a01_under_section_3_starts_a_detention(trust: SourceMappingConfig) -> None:
    [command] = run(s.A01_SECTION_3, trust)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.section, command.start, command.episode_ref, command.provider_ods) == (
        "03", date(2026, 1, 5), "V0001", "RX1")
    person = command.person
    assert (person.nhs_number, person.nhs_number_verified, person.local_id) == (
        s.NHS_1, True, s.LOCAL_1)
    assert (person.family_name, person.given_name, person.birth_date, person.sex) == (
        "Testwood", "Robin", date(1980, 1, 1), "female")
    assert (person.postcode, person.gp_practice_ods, person.death_date) == (
        "AB1 2CD", "M85019", None)
    assert command.provenance.source == "trust-a"
    assert command.provenance.source_ref == "MSG-A01"
    assert command.provenance.received_at == RECEIVED


@pytest.mark.parametrize("raw", [s.A01_INFORMAL, s.A01_NO_LEGAL_STATUS])
def test_informal_admission_is_demographics_only(raw: str, trust: SourceMappingConfig) -> None:
    [command] = run(raw, trust)
    assert isinstance(command, RecordPersonDetails)
    assert command.as_of == date(2026, 1, 5)


def test_a04_start_falls_back_to_the_admit_date(trust: SourceMappingConfig) -> None:
    [command] = run(s.A04_SECTION_136, trust)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.section, command.start) == ("20", date(2026, 1, 4))


def test_a02_transfer(trust: SourceMappingConfig) -> None:
    [command] = run(s.A02_TRANSFER, trust)
    assert isinstance(command, RecordLegalStatusChanged)
    assert (command.event, command.date, command.section, command.provider_ods) == (
        "transfer", date(2026, 1, 10), "03", "RX2")


def test_a03_discharge_uses_pv1_45(trust: SourceMappingConfig) -> None:
    [command] = run(s.A03_DISCHARGE, trust)
    assert isinstance(command, RecordLeftHospital)
    assert (command.date, command.episode_ref) == (date(2026, 3, 1), "V0001")


def test_a03_onto_a_cto_adds_cto_start(trust: SourceMappingConfig) -> None:
    left, cto = run(s.A03_ONTO_CTO, trust)
    assert isinstance(left, RecordLeftHospital)
    assert isinstance(cto, RecordLegalStatusChanged)
    assert (cto.event, cto.date) == ("cto-start", date(2026, 3, 1))


def test_a03_onto_conditional_discharge_dates_it_at_discharge(
        trust: SourceMappingConfig) -> None:
    commands = run(s.A03_ONTO_CD, trust)
    assert kinds(commands) == ["left-hospital", "conditional-discharge-start"]
    assert commands[1].effective == date(2026, 3, 1)


# --- a regrade told on a transfer, discharge or leave message (s117-rules.md "Who is
# entitled": a person on s2 regraded to s3 becomes entitled; joint policy 3.3) -------------

def test_a03_carries_a_regrade_before_the_leaving(trust: SourceMappingConfig) -> None:
    """The audit's A03: s3 from 20 June (ZLS-2) on a stay admitted 1 June (PV1-44), ZLS-3 the
    discharge date. The section change comes first, as A08 sends it, on the same episode."""
    change, left = run(s.A03_REGRADED_S3, trust)
    assert isinstance(change, RecordLegalStatusChanged)
    assert isinstance(left, RecordLeftHospital)
    assert (change.event, change.section, change.date, change.end) == (
        "section-change", "03", date(2026, 6, 20), date(2026, 8, 3))
    assert left.date == date(2026, 8, 3)
    # Same episode and message as the leaving, so an A13 takes both back.
    assert change.episode_ref == left.episode_ref == "V0001"
    assert change.provenance == left.provenance
    assert change.provider_ods == "RX1"


def test_a03_repeating_the_admission_section_is_no_regrade(trust: SourceMappingConfig) -> None:
    """Trusts send the current status on every message: s3 since the admission day, ended on
    the discharge date, is the detention the A01 told, not a change to it."""
    for raw in (s.A03_DISCHARGE, s.A03_SAME_SECTION):
        assert kinds(run(raw, trust)) == ["left-hospital"]


@pytest.mark.parametrize(("code", "expected"), [
    ("CTO", ["left-hospital", "cto-start"]),
    ("CD", ["left-hospital", "conditional-discharge-start"]),
    ("01", ["left-hospital"]),  # stayed informally after the section ended (5.5)
])
def test_a03_onto_a_cto_cd_or_informal_has_no_regrade(code: str, expected: list[str],
                                                      trust: SourceMappingConfig) -> None:
    raw = s.adt("A03", s.evn("A03"), s.pid(), s.pv1(admit="202606010930",
                                                    discharge="202608031100"),
                s.zls(code, "20260803"), structure="ADT_A03")
    assert kinds(run(raw, trust)) == expected


def test_a03_regrade_through_the_code_map(trust: SourceMappingConfig) -> None:
    raw = s.A03_REGRADED_S3.replace("ZLS|03|", "ZLS|SEC3|")
    change, _left = run(raw, trust)
    assert (change.event, change.section) == ("section-change", "03")  # type: ignore[attr-defined]


def test_a02_carries_a_regrade_before_the_transfer(trust: SourceMappingConfig) -> None:
    change, transfer = run(s.A02_REGRADED_S3, trust)
    assert isinstance(change, RecordLegalStatusChanged)
    assert isinstance(transfer, RecordLegalStatusChanged)
    assert (change.event, change.section, change.date, change.episode_ref) == (
        "section-change", "03", date(2026, 6, 20), "V0001")
    assert (transfer.event, transfer.date) == ("transfer", date(2026, 7, 1))


@pytest.mark.parametrize("trigger", ["A21", "A22"])
def test_leave_messages_carry_a_regrade(trigger: str, trust: SourceMappingConfig) -> None:
    raw = s.adt(trigger, s.evn(trigger, "20260701090000"), s.pid(),
                s.pv1(admit="202606010930"), s.zls("03", "20260620"), structure="ADT_A21")
    leave = "s17-leave-start" if trigger == "A21" else "s17-leave-end"
    assert kinds(run(raw, trust)) == ["section-change", leave]
    # A source whose leave of absence is not s17 leave still tells the regrade.
    config = trust.model_copy(update={"s17_leave_event": None})
    assert kinds(run(raw, config)) == ["person-details", "section-change"]


def test_a_status_without_a_start_date_is_no_regrade(trust: SourceMappingConfig) -> None:
    """No ZLS-2: nothing dates a change, and the status may be the admission's repeated."""
    raw = s.adt("A03", s.evn("A03"), s.pid(), s.pv1(discharge="202603011100"), s.zls("03"),
                structure="ADT_A03")
    assert kinds(run(raw, trust)) == ["left-hospital"]


def test_without_an_admit_date_a_dated_section_is_a_regrade(trust: SourceMappingConfig) -> None:
    """No PV1-44 to tell a repeat from a change: the dated status is told, as A08 tells it
    (a repeat then adds a same-section span to the register's history)."""
    for pv1_44 in ("", "2026"):  # absent, and unreadable (never a reason to refuse an A03)
        raw = s.adt("A03", s.evn("A03"), s.pid(), s.pv1(admit=pv1_44,
                                                        discharge="202608031100"),
                    s.zls("03", "20260620"), structure="ADT_A03")
        assert kinds(run(raw, trust)) == ["section-change", "left-hospital"]


def test_a08_section_change(trust: SourceMappingConfig) -> None:
    details, change = run(s.A08_SECTION_CHANGE, trust)
    assert isinstance(details, RecordPersonDetails)
    assert isinstance(change, RecordLegalStatusChanged)
    assert (change.event, change.section, change.date) == ("section-change", "03",
                                                            date(2026, 1, 12))


def test_a08_demographics_only(trust: SourceMappingConfig) -> None:
    [details] = run(s.A08_DEMOGRAPHICS, trust)
    assert isinstance(details, RecordPersonDetails)
    assert details.person.family_name == "Testwood-Hale"


@pytest.mark.parametrize(("raw", "expected"), [
    (s.A08_CTO_START, [("cto-start", date(2026, 3, 1), None)]),
    (s.A08_CTO_END, [("cto-start", date(2026, 3, 1), None), ("cto-end", date(2026, 9, 1), "01")]),
    (s.A08_CTO_REVOKED, [("cto-revoked", date(2026, 6, 1), "02")]),
    (s.A08_CD_END, [("conditional-discharge-end", date(2027, 1, 1), None)]),
])
def test_a08_cto_and_conditional_discharge(raw: str, expected: list[tuple[object, ...]],
                                           trust: SourceMappingConfig) -> None:
    details, *events = run(raw, trust)
    assert isinstance(details, RecordPersonDetails)
    assert [(e.event, e.date, e.end_reason) for e in events] == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(("raw", "cancels", "when", "scope"), [
    # a cancelled admission withdraws the visit; a cancelled discharge, that discharge
    (s.A11_CANCEL_ADMIT, "detention-started", date(2026, 1, 5), "episode"),
    (s.A13_CANCEL_DISCHARGE, "left-hospital", date(2026, 3, 2), "message"),
])
def test_cancellations(raw: str, cancels: str, when: date, scope: str,
                       trust: SourceMappingConfig) -> None:
    [command] = run(raw, trust)
    assert isinstance(command, CancelEvent)
    assert (command.cancels, command.episode_ref, command.date, command.scope) == (
        cancels, "V0001", when, scope)


def test_s17_leave_out_and_back(trust: SourceMappingConfig) -> None:
    [out] = run(s.A21_LEAVE_OUT, trust)
    [back] = run(s.A22_LEAVE_BACK, trust)
    assert isinstance(out, RecordLegalStatusChanged)
    assert isinstance(back, RecordLegalStatusChanged)
    assert (out.event, out.date, out.section) == ("s17-leave-start", date(2026, 2, 1), "03")
    assert (back.event, back.date) == ("s17-leave-end", date(2026, 2, 3))


def test_leave_of_an_informal_patient_is_not_s17_leave(trust: SourceMappingConfig) -> None:
    assert kinds(run(s.A21_INFORMAL_LEAVE, trust)) == ["person-details"]


def test_a_source_can_say_leave_of_absence_is_not_s17(trust: SourceMappingConfig) -> None:
    config = trust.model_copy(update={"s17_leave_event": None})
    assert kinds(run(s.A21_LEAVE_OUT, config)) == ["person-details"]


def test_a28_and_a31_are_demographics(trust: SourceMappingConfig) -> None:
    [added] = run(s.A28_ADD_PERSON, trust)
    [updated] = run(s.A31_UPDATE_PERSON, trust)
    assert isinstance(added, RecordPersonDetails)
    assert isinstance(updated, RecordPersonDetails)
    assert added.person.gp_practice_ods == "M85019"
    assert (updated.person.death_date, updated.person.nhs_number_verified) == (
        date(2026, 2, 28), False)
    assert updated.as_of == date(2026, 3, 1)


def test_a40_merge(trust: SourceMappingConfig) -> None:
    [merge] = run(s.A40_MERGE, trust)
    assert isinstance(merge, MergePersons)
    assert (merge.person.local_id, merge.person.nhs_number) == (s.LOCAL_1, s.NHS_1)
    assert (merge.merged_local_id, merge.merged_nhs_number) == (s.LOCAL_2, s.NHS_2)


@pytest.mark.parametrize("raw", [s.A01_LF, s.A01_CRLF, s.A01_V23, s.A01_V251,
                                 "\x0b" + s.A01_SECTION_3 + "\x1c\r"])
def test_line_endings_versions_and_framing(raw: str, trust: SourceMappingConfig) -> None:
    [command] = run(raw, trust)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.section, command.start, command.person.nhs_number) == (
        "03", date(2026, 1, 5), s.NHS_1)


def test_escaped_values_are_unescaped(trust: SourceMappingConfig) -> None:
    [command] = run(s.A01_ESCAPED, trust)
    assert command.person.family_name == "O&Brien|Smythe"
    assert command.person.given_name == "Ann^Jo"


def test_nhs_number_without_identifier_type(trust: SourceMappingConfig) -> None:
    [command] = run(s.A01_NHS_TYPE_OMITTED, trust)
    assert command.person.nhs_number == s.NHS_1


def test_local_code_through_the_code_map(trust: SourceMappingConfig) -> None:
    [command] = run(s.A01_LOCAL_CODE, trust)
    assert isinstance(command, RecordDetentionStarted)
    assert command.section == "03"


def test_legal_status_in_pv2_3_with_a_local_code_map() -> None:
    config = SourceMappingConfig(
        source_id="trust-b", kind="hl7v2-mllp", code_map={"MHA-S2": "02"},
        legal_status_location=LegalStatusLocation(segment="PV2", code_field=3, start_field=None,
                                                  end_field=None, end_reason_field=None))
    [command] = run(s.A01_PV2_LOCAL_CODE, config)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.section, command.start) == ("02", date(2026, 1, 5))
    # ZLS is not looked at once another place is configured
    assert kinds(run(s.A01_SECTION_3, config)) == ["person-details"]


def test_legal_status_in_a_zu1_field() -> None:
    config = SourceMappingConfig(
        source_id="trust-c", kind="hl7v2-mllp", code_map={"T3": "3"},
        legal_status_location=LegalStatusLocation(segment="zu1", code_field=6, start_field=7,
                                                  end_field=None, end_reason_field=None))
    [command] = run(s.A01_ZU1_LOCAL_CODE, config)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.section, command.start) == ("03", date(2026, 1, 6))


@pytest.mark.parametrize(("raw", "code", "location"), [
    (s.A01_BAD_NHS, "invalid-value", "PID-3"),
    (s.A01_UNKNOWN_CODE, "unknown-code", "ZLS-1"),
    (s.A01_BAD_DATE, "invalid-value", "ZLS-2"),
    (s.A01_NO_PID, "missing-field", "PID"),
    (s.A05_PREADMIT, "unsupported-event", "MSH-9.2"),
    (s.ORU_R01, "unsupported-message-type", "MSH-9.1"),
])
def test_mapping_errors_name_the_field(raw: str, code: str, location: str,
                                       trust: SourceMappingConfig) -> None:
    with pytest.raises(MappingError) as caught:
        run(raw, trust)
    assert (caught.value.code, caught.value.location) == (code, location)


def test_unknown_local_code_without_a_code_map() -> None:
    config = SourceMappingConfig(source_id="trust-d", kind="hl7v2-mllp")
    with pytest.raises(MappingError, match="SEC3") as caught:
        run(s.A01_LOCAL_CODE, config)
    assert (caught.value.code, caught.value.location) == ("unknown-code", "ZLS-1")


@pytest.mark.parametrize(("raw", "code", "location"), [
    (s.GARBAGE, "unparseable", "MSH"),
    ("", "unparseable", "MSH"),
    ("MSH", "unparseable", "MSH"),
    (s.MSH_WITHOUT_CONTROL_ID, "missing-field", "MSH-10"),
])
def test_parse_errors(raw: str, code: str, location: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_adt(raw)
    assert (caught.value.code, caught.value.location) == (code, location)


def test_trigger_from_evn_1_when_msh_9_has_none() -> None:
    raw = s.A28_ADD_PERSON.replace("ADT^A28^ADT_A05", "ADT")
    assert parse_adt(raw).trigger_event == "A28"


def test_a_reduced_precision_header_time_is_no_reason_to_refuse(
        trust: SourceMappingConfig) -> None:
    raw = s.adt("A31", s.pid()).replace("20260105093000", "2026")
    [details] = run(raw, trust)
    assert isinstance(details, RecordPersonDetails)
    assert details.as_of is None
