"""NHS number: ten digits, modulus-11 check digit (standards.md section 4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from register_core.domain import nhs_number
from register_core.domain.errors import InvalidValue
from register_core.domain.model import Person

from .builders import details


def reference_check_digit(first_nine: str) -> int | None:
    """Independent statement of the standards.md rule: weights 10..2, 11 - (sum mod 11),
    11 -> 0, 10 -> no valid number."""
    total = sum(int(ch) * (10 - i) for i, ch in enumerate(first_nine))
    result = 11 - total % 11
    return {11: 0, 10: None}.get(result, result)


def test_published_examples_are_valid__standards_4():
    assert nhs_number.is_valid("9434765919")
    assert nhs_number.is_valid("9990500002")


def test_check_digit_arithmetic_of_9434765919__standards_4():
    # 9*10 + 4*9 + 3*8 + 4*7 + 7*6 + 6*5 + 5*4 + 9*3 + 1*2 = 299; 299 mod 11 = 2; 11 - 2 = 9
    assert nhs_number.check_digit("943476591") == 9


def test_changing_the_check_digit_makes_it_invalid__standards_4():
    for last in "012345678":
        assert not nhs_number.is_valid("943476591" + last)


def _stem_with_remainder(wanted: int) -> str:
    for n in range(10**6):
        stem = f"999{n:06d}"
        if sum(int(ch) * (10 - i) for i, ch in enumerate(stem)) % 11 == wanted:
            return stem
    raise AssertionError("no stem")


def test_a_check_digit_of_10_means_no_valid_number__standards_4():
    stem = _stem_with_remainder(1)  # 11 - 1 = 10
    assert nhs_number.check_digit(stem) is None
    assert not any(nhs_number.is_valid(stem + str(last)) for last in range(10))
    with pytest.raises(InvalidValue) as err:
        nhs_number.validate(stem + "0")
    assert err.value.rule == "nhs-number-check-digit"


def test_a_check_digit_of_11_becomes_0__standards_4():
    stem = _stem_with_remainder(0)  # 11 - 0 = 11 -> 0
    assert nhs_number.check_digit(stem) == 0
    assert nhs_number.is_valid(stem + "0")
    assert not nhs_number.is_valid(stem + "1")


@pytest.mark.parametrize("typed", ["943 476 5919", "943-476-5919", " 9434765919 "])
def test_spaces_and_dashes_people_type_are_accepted_and_stripped__standards_4(typed):
    assert nhs_number.is_valid(typed)
    assert nhs_number.validate(typed) == "9434765919"


@pytest.mark.parametrize("raw", ["", "943476591", "94347659190", "94347659l9", "ABCDEFGHIJ",
                                 "9434765919.0"])
def test_malformed_numbers_are_refused_naming_field_and_format_rule__standards_4(raw):
    assert not nhs_number.is_valid(raw)
    with pytest.raises(InvalidValue) as err:
        nhs_number.validate(raw, field="person.nhs_number")
    assert err.value.field == "person.nhs_number"
    assert err.value.rule == "nhs-number-format"


def test_none_is_not_valid():
    assert not nhs_number.is_valid(None)


@pytest.mark.parametrize("raw", [
    "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",  # 9434765919, Arabic-Indic
    "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",  # 9434765919, full width
    "\u00b2434765919",  # superscript two: isdigit() but not int()-able
])
def test_only_ascii_digits_make_an_nhs_number__standards_4(raw):
    # Was a bug: str.isdigit() let other scripts' digits through (stored as non-ASCII) and
    # a superscript raised a bare ValueError instead of InvalidValue.
    assert not nhs_number.is_valid(raw)
    with pytest.raises(InvalidValue) as err:
        nhs_number.validate(raw)
    assert err.value.rule == "nhs-number-format"


def test_recording_a_command_with_an_invalid_nhs_number_names_the_field_and_rule():
    person = Person(id="p1")
    bad = details(nhs_number="9434765918")
    with pytest.raises(InvalidValue) as err:
        person.record(bad)
    assert err.value.field == "person.nhs_number"
    assert err.value.rule == "nhs-number-check-digit"
    assert err.value.as_dict()["error"] == "invalid-value"
    assert person.facts == []  # nothing written


def test_recording_keeps_the_normalised_number():
    person = Person(id="p1")
    person.record(details(nhs_number="943 476 5919"))
    assert person.nhs_number == "9434765919"


@given(st.integers(min_value=0, max_value=499_999))
def test_make_synthetic_is_always_valid_and_in_the_999_range__standards_4(serial):
    number = nhs_number.make_synthetic(serial)
    assert len(number) == 10 and number.isdigit()
    assert number.startswith("999")
    assert nhs_number.is_valid(number)
    assert reference_check_digit(number[:9]) == int(number[9])


@given(st.lists(st.integers(min_value=0, max_value=499_999), min_size=2, max_size=30,
                unique=True))
def test_make_synthetic_gives_distinct_people_distinct_numbers(serials):
    numbers = {nhs_number.make_synthetic(s) for s in serials}
    assert len(numbers) == len(serials)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_check_digit_matches_the_standard_for_any_nine_digits__standards_4(stem):
    expected = reference_check_digit(stem)
    assert nhs_number.check_digit(stem) == expected
    valid_endings = [d for d in range(10) if nhs_number.is_valid(stem + str(d))]
    assert valid_endings == ([] if expected is None else [expected])


def test_redact_masks_nhs_number_shapes_but_not_digit_runs_inside_uuids():
    """Audit rows and logs carry ids, never NHS numbers (architecture section 6); a UUID whose
    last group holds ten digits (…-b030-0439610a8bfa) is an id, not a number to mask."""
    from register_core.domain.nhs_number import redact

    assert redact("nhs 943 476 5919, 9434765919.") == "nhs [nhs-number], [nhs-number]."
    path = "GET /api/v1/people/3ea75452-d43e-4bef-b030-0439610a8bfa"
    assert redact(path) == path
