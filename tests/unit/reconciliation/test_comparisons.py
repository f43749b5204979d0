"""Every comparison level of every field, on the smallest pair that reaches it."""

from __future__ import annotations

from datetime import date

import pytest

from reconciliation.comparisons import (
    LEVELS,
    NULL,
    Prepared,
    birth_date_level,
    comparison_vector,
    gp_level,
    name_levels,
    postcode_level,
    sex_level,
    valid_nhs_number,
)
from register_core.domain import nhs_number

from .builders import prep, record


def level(field: str, value: int) -> str:
    return "missing" if value == NULL else LEVELS[field][value]


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("Thornley", "THORNLEY", "exact"),
    ("O'Brien", "OBRIEN", "exact"),  # punctuation and case are not evidence
    ("Thornley", "Thornely", "jaro-winkler-or-one-edit"),  # transposition
    ("Smith", "Smyth", "jaro-winkler-or-one-edit"),  # one substitution: one edit away
    ("Schofield", "Skofield", "phonetic"),  # Soundex S143 both; JW 0.90, two edits
    ("Leighton", "Layton", "phonetic"),  # Metaphone LTN both; Soundex differs
    ("Knight", "Night", "jaro-winkler-or-one-edit"),
    ("Philips", "Fillips", "phonetic"),  # Metaphone FLPS both; Soundex differs
    ("Thornley", "Ashworth", "else"),
    ("Thornley", None, "missing"),
])
def test_family_name_levels(a, b, expected):
    fam, _ = name_levels(prep(family_name=a), prep(family_name=b))
    assert level("family_name", fam) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("Margaret", "MARGARET", "exact"),
    ("Margaret Ann", "Margaret", "exact"),  # the first given name is the one compared
    ("Margaret", "Margeret", "jaro-winkler-or-one-edit"),
    ("Emma", "Ekma", "jaro-winkler-or-one-edit"),  # short name, one slip: JW 0.87 but one edit
    ("Margaret", "Peggy", "nickname-or-initial"),
    ("Margaret", "M", "nickname-or-initial"),
    ("Elizabeth", "Beth", "nickname-or-initial"),
    ("Margaret", "Susan", "else"),
    ("Emma", "Gemma", "else"),  # one edit, but both are names: twins are called that
    ("John", "Joan", "else"),
    ("Steven", "Stephen", "nickname-or-initial"),  # spellings of one name
    ("Gemma", "Gemmma", "jaro-winkler-or-one-edit"),  # a slip: not a name
    ("Margaret", "P", "else"),  # an initial that disagrees is a disagreement
    (None, "Margaret", "missing"),
])
def test_given_name_levels(a, b, expected):
    _, giv = name_levels(prep(given_name=a), prep(given_name=b))
    assert level("given_name", giv) == expected


@pytest.mark.parametrize(("a_family", "a_given", "family_level"), [
    ("Margaret", "Thornley", "exact"),
    ("Margaret", "Thornly", "jaro-winkler-or-one-edit"),
    ("M", "Thornley", "exact"),  # swapped and reduced to an initial
    ("Peggy", "Thornley", "exact"),  # swapped and a nickname
])
def test_swapped_names_read_as_one_piece_of_evidence(a_family, a_given, family_level):
    fam, giv = name_levels(prep(family_name=a_family, given_name=a_given), prep())
    assert level("given_name", giv) == "swapped"
    assert level("family_name", fam) == family_level


def test_names_not_swapped_when_the_straight_reading_is_good():
    fam, giv = name_levels(prep(family_name="Thomas", given_name="Thomas"),
                           prep(family_name="Thomas", given_name="Thomas"))
    assert (level("family_name", fam), level("given_name", giv)) == ("exact", "exact")


@pytest.mark.parametrize(("b", "expected"), [
    (date(1961, 4, 23), "exact"),
    (date(1961, 4, 28), "one-component-or-transposed"),  # day
    (date(1961, 9, 23), "one-component-or-transposed"),  # month
    (date(1916, 4, 23), "one-component-or-transposed"),  # year digits swapped
    (date(1962, 5, 23), "year-within-1"),
    (date(1960, 12, 1), "year-within-1"),
    (date(1988, 4, 2), "else"),  # a parent and child
    (None, "missing"),
])
def test_birth_date_levels(b, expected):
    assert level("birth_date", birth_date_level(prep(), prep(birth_date=b))) == expected


def test_day_and_month_transposed():
    a, b = prep(birth_date=date(1961, 4, 7)), prep(birth_date=date(1961, 7, 4))
    assert level("birth_date", birth_date_level(a, b)) == "one-component-or-transposed"


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("female", "F", "equal"), ("male", "female", "differs"), ("female", None, "missing"),
    ("other", "female", "missing"), ("unknown", "male", "missing"),
])
def test_sex_levels(a, b, expected):
    assert level("sex", sex_level(prep(sex=a), prep(sex=b))) == expected


@pytest.mark.parametrize(("b", "expected"), [
    ("LS6 2AB", "exact"), ("ls62ab", "exact"), ("LS6 2XY", "sector"), ("LS6 9AB", "district"),
    ("LS16 2AB", "else"), ("M1 1AE", "else"), (None, "missing"), ("  ", "missing"),
])
def test_postcode_levels(b, expected):
    assert level("postcode", postcode_level(prep(), prep(postcode=b))) == expected


def test_partial_postcode_compares_only_exactly():
    assert level("postcode", postcode_level(prep(postcode="LS6"), prep(postcode="ls6"))) == "exact"
    assert level("postcode", postcode_level(prep(postcode="LS6"), prep())) == "else"


@pytest.mark.parametrize(("b", "expected"), [
    ("B86001", "exact"), (" b86001 ", "exact"), ("B86002", "else"), (None, "missing")])
def test_gp_practice_levels(b, expected):
    assert level("gp_practice", gp_level(prep(), prep(gp_practice_ods=b))) == expected


def test_vector_covers_every_field_in_order():
    assert comparison_vector(prep(), prep()) == (0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("raw", ["9434765919", "943 476 5919", "943-476-5919", "9990500002",
                                 "9434765918", "943476591", "94347659190", "", "abcdefghij",
                                 "９434765919", "999 050 0002"])
def test_fast_nhs_check_agrees_with_the_domain_rule__standards_4(raw):
    expected = nhs_number.normalise(raw) if nhs_number.is_valid(raw) else None
    assert valid_nhs_number(raw) == expected


def test_every_ten_digit_stem_agrees_with_the_domain_rule__standards_4():
    for stem in range(0, 10_000_000, 7_919):
        for last in "0123456789":
            raw = f"{stem:09d}{last}"
            assert (valid_nhs_number(raw) is not None) == nhs_number.is_valid(raw), raw


def test_invalid_nhs_number_is_dropped_when_prepared():
    assert Prepared(record(nhs_number="9434765918")).nhs is None
    assert Prepared(record(nhs_number="943 476 5919")).nhs == "9434765919"
