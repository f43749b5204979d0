"""MHA legal-status codes (England, MHSDS) and which of them entitle to s117.

Joint policy 1.1, 2.2 and 3.3 name the treatment sections s3, s37, s45A, s47 and s48;
standards.md section 1 gives their England codes.
"""

from __future__ import annotations

from datetime import date

import pytest

from register_core.domain import legal_status
from register_core.domain.errors import InvalidValue
from register_core.domain.model import Person

from .builders import detention, legal, position_of

# standards.md section 1, typed from the table (not read from the module under test).
ENTITLING = {
    "03": "Section 3",
    "09": "Section 37",  # with s41 restrictions
    "10": "Section 37",
    "15": "Section 47",  # with s49 restrictions
    "16": "Section 47",
    "17": "Section 48",  # with s49 restrictions
    "18": "Section 48",
    "37": "Section 45A",  # limitation direction in force
    "38": "Section 45A",  # limitation direction ended
}
NOT_ENTITLING = {
    "01": "Informal", "02": "Section 2", "04": "Section 4", "05": "Section 5(2)",
    "06": "Section 5(4)", "07": "Section 35", "08": "Section 36", "12": "Section 38",
    "13": "Section 44", "14": "Section 46", "19": "Section 135", "20": "Section 136",
    "31": "Criminal Procedure", "32": "other Acts", "35": "Guardianship",
    "36": "Guardianship", "98": "Not applicable", "99": "Not known",
}


@pytest.mark.parametrize(("code", "meaning"), sorted(ENTITLING.items()))
def test_treatment_sections_entitle__joint_policy_3_3(code, meaning):
    assert legal_status.is_entitling(code)
    assert meaning in legal_status.describe(code)
    assert legal_status.validate_code(code) == code


@pytest.mark.parametrize(("code", "meaning"), sorted(NOT_ENTITLING.items()))
def test_other_sections_do_not_entitle_on_their_own__s117_rules_who_is_entitled(code, meaning):
    assert not legal_status.is_entitling(code)
    assert meaning in legal_status.describe(code)
    assert legal_status.validate_code(code) == code


def test_the_entitling_set_is_exactly_the_standards_table__standards_1():
    assert set(ENTITLING) == legal_status.ENTITLING_CODES
    assert set(ENTITLING) | set(NOT_ENTITLING) == set(legal_status.LEGAL_STATUS)


def test_informal_and_guardianship_are_not_detentions_but_s2_and_s136_are():
    for code in ("01", "35", "36", "98", "99"):
        assert code not in legal_status.DETAINED_CODES
    for code in ("02", "03", "20", "37"):
        assert code in legal_status.DETAINED_CODES


@pytest.mark.parametrize(("sent", "canonical"), [("3", "03"), (" 37 ", "37"), ("02 ", "02")])
def test_codes_as_sources_send_them_are_normalised(sent, canonical):
    assert legal_status.validate_code(sent) == canonical


@pytest.mark.parametrize("sent", ["3", " 03", "9 "])
def test_an_unpadded_entitling_code_still_entitles__joint_policy_3_3(sent):
    # Was a bug: validate_code accepted "3" but is_entitling("3") was False, so a source
    # sending "3" put an s3 patient on no register at all.
    assert legal_status.is_entitling(sent)


@pytest.mark.parametrize("code", ["11", "34", "00", "CTO", "", "s3", "003", "100"])
def test_unknown_codes_are_refused_naming_field_and_rule__standards_1(code):
    # 34 is s45A and 35 a CTO in the *Wales* list only (standards.md section 1).
    with pytest.raises(InvalidValue) as err:
        legal_status.validate_code(code, field="legal_status.section")
    assert err.value.field == "legal_status.section"
    assert err.value.rule == "mhsds-legal-status-code"


def test_wales_35_is_guardianship_in_england_and_does_not_entitle__standards_1():
    assert not legal_status.is_entitling("35")
    assert "Guardianship" in legal_status.describe("35")


def test_none_is_not_entitling():
    assert not legal_status.is_entitling(None)


def test_recording_a_detention_with_an_unknown_code_is_refused_and_writes_nothing():
    person = Person(id="p1")
    with pytest.raises(InvalidValue) as err:
        person.record(detention("2024-01-01", "11"))
    assert (err.value.field, err.value.rule) == ("section", "mhsds-legal-status-code")
    assert person.facts == []


def test_a_regrade_to_an_unknown_code_is_refused():
    person = Person(id="p1")
    person.record(detention("2024-01-01", "02"))
    with pytest.raises(InvalidValue) as err:
        person.record(legal("section-change", "2024-01-10", section="34"))
    assert (err.value.field, err.value.rule) == ("section", "mhsds-legal-status-code")
    assert len(person.facts) == 1


def test_a_regrade_without_the_new_section_is_refused():
    person = Person(id="p1")
    with pytest.raises(InvalidValue) as err:
        person.record(legal("section-change", "2024-01-10"))
    assert (err.value.field, err.value.rule) == ("section", "section-change-needs-section")


def test_the_section_in_force_told_again_is_no_regrade_and_no_event():
    """Trusts repeat the current legal status on every message (an A08 with ZLS 03 on an
    s3 stay): the register's detention and events are as if it had not been sent."""
    once = position_of([detention("2024-01-01", "02"),
                        legal("section-change", "2024-01-10", section="03")], today="2024-02-01")
    repeated = position_of([detention("2024-01-01", "02"),
                            legal("section-change", "2024-01-10", section="03"),
                            legal("section-change", "2024-01-20", section="3"),
                            legal("section-change", "2024-01-01", section="02")],
                           today="2024-02-01")
    assert [(e.kind, e.date, e.section) for e in repeated.legal_status_events] == [
        (e.kind, e.date, e.section) for e in once.legal_status_events] == [
        ("section-change", date(2024, 1, 10), "03")]
    assert repeated.detentions[0].sections == once.detentions[0].sections == [
        ("02", date(2024, 1, 1)), ("03", date(2024, 1, 10))]
    assert len(repeated.detentions[0].facts) == 4  # the repeats stay with their detention


def test_the_register_shows_the_two_digit_code_whatever_the_source_sent__architecture_7():
    pos = position_of([detention("2024-01-01", "3")], today="2024-02-01")
    assert pos.detentions[0].section == "03"
    assert pos.entitlement.trigger_section == "03"
