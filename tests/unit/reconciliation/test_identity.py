"""The decision rules: NHS number first and never against itself, then the score and its band."""

from __future__ import annotations

import math
from datetime import date

import pytest

from reconciliation.comparisons import FIELDS, Prepared
from reconciliation.identity import (
    DEFAULT_LEVELS,
    Candidate,
    IdentityMatcher,
    MatchParams,
    probability,
)
from register_core.domain.commands import PersonRef
from register_core.domain.nhs_number import make_synthetic

from .builders import BASE, record

NHS_1, NHS_2 = "9434765919", "9990500002"  # standards.md section 4 examples
matcher = IdentityMatcher()


def person(**changes) -> PersonRef:
    fields = {k: getattr(BASE, k) for k in ("nhs_number", "nhs_number_verified", "family_name",
                                           "given_name", "birth_date", "sex", "postcode",
                                           "gp_practice_ods")}
    return PersonRef(**{**fields, **changes})


# -- NHS number (standards.md section 4) -----------------------------------------------------
def test_equal_valid_nhs_numbers_link_whatever_else_differs():
    got = matcher.decide(person(nhs_number=NHS_1, postcode="M1 1AE", given_name="Peggy"),
                         [record("R9", nhs_number="943 476 5919")])
    assert (got.outcome, got.candidate_id, got.reason) == ("link", "R9", "nhs-number-exact")
    assert got.probability == 1.0 and got.contributions["nhs_number"] == math.inf


def test_the_nhs_number_match_wins_over_a_better_looking_candidate():
    got = matcher.decide(person(nhs_number=NHS_1),
                         [record("twin", nhs_number=None),
                          record("R9", nhs_number=NHS_1, postcode="M1 1AE")])
    assert (got.outcome, got.candidate_id) == ("link", "R9")


def test_different_valid_nhs_numbers_never_link_even_with_identical_demographics():
    got = matcher.decide(person(nhs_number=NHS_1), [record("R9", nhs_number=NHS_2)])
    assert (got.outcome, got.candidate_id, got.reason) == ("new", None, "nhs-number-conflict")
    assert got.contributions["nhs_number"] == -math.inf


def test_a_conflicting_number_drops_only_that_candidate():
    got = matcher.decide(person(nhs_number=NHS_1),
                         [record("other", nhs_number=NHS_2),
                          record("R9", nhs_number=None, postcode="LS6 2AD")])
    assert (got.outcome, got.candidate_id) == ("link", "R9")


def test_an_invalid_nhs_number_is_ignored_not_trusted():
    typo = "9434765918"  # fails modulus 11
    # Not a conflict with a valid number: the demographics decide.
    got = matcher.decide(person(nhs_number=typo), [record("R9", nhs_number=NHS_2)])
    assert (got.outcome, got.reason) == ("link", "score-above-link-threshold")
    # Nor an exact match with the same invalid string: that would trust it.
    same = matcher.decide(person(nhs_number=typo, family_name="Ashworth", given_name="Susan"),
                          [record("R9", nhs_number=typo)])
    assert same.outcome != "link" and "nhs_number" not in same.contributions


def test_unverified_number_on_a_different_person_goes_to_review():
    stranger = dict(family_name="Ashworth", given_name="Susan", birth_date=date(1990, 1, 2))
    got = matcher.decide(person(nhs_number=NHS_1, **stranger),
                         [record("R9", nhs_number=NHS_1, nhs_number_verified=False)])
    assert (got.outcome, got.reason) == ("review", "nhs-number-exact-demographics-disagree")
    assert got.probability < 0.5 and got.contributions["nhs_number"] == math.inf
    verified = matcher.decide(person(nhs_number=NHS_1, nhs_number_verified=True, **stranger),
                              [record("R9", nhs_number=NHS_1)])
    assert verified.outcome == "link"


# -- the probabilistic path ------------------------------------------------------------------
def test_identical_demographics_without_nhs_number_link():
    got = matcher.decide(person(), [record("R9")])
    assert (got.outcome, got.candidate_id) == ("link", "R9")
    assert got.probability > 0.999


def test_no_candidates_is_new():
    got = matcher.decide(person(), [])
    assert (got.outcome, got.candidate_id, got.reason) == ("new", None, "no-candidates")


def test_a_stranger_is_new():
    got = matcher.decide(person(), [record("R9", family_name="Ashworth", given_name="Susan",
                                           birth_date=date(1990, 1, 2), postcode="M1 1AE",
                                           gp_practice_ods="P84001")])
    assert (got.outcome, got.reason) == ("new", "score-below-review-threshold")


def test_the_review_band_sits_between_the_two_thresholds():
    # Same name and birth date but moved and a new practice: a middling score.
    candidate = record("R9", postcode="M1 1AE", gp_practice_ods="P84001")
    score, _ = matcher.score(Prepared(person()), Prepared(candidate))
    p = probability(score)
    assert 0.01 < p < 0.999
    outcomes = {
        (0.5 * p, 0.25 * p): "link",
        (min(0.9999, p + (1 - p) / 2), 0.5 * p): "review",
        (min(0.9999, p + (1 - p) / 2), p + (1 - p) / 4): "new",
    }
    for (link, review), expected in outcomes.items():
        got = IdentityMatcher(link, review).decide(person(), [candidate])
        assert got.outcome == expected, (link, review, p)
        assert got.candidate_id == "R9" and got.score == pytest.approx(score)


def test_twins_are_never_linked():
    # Same surname, birthday, home and practice; another first name (and maybe sex).
    for given, sex in (("Susan", "female"), ("Mark", "male"), ("Maragret", "male"),
                       ("Margery", "female"), ("M", "male")):
        got = matcher.decide(person(), [record("twin", given_name=given, sex=sex)])
        assert got.outcome == "review", (given, sex, got)
    emma = person(given_name="Emma")
    assert matcher.decide(emma, [record("twin", given_name="Gemma")]).outcome == "review"


def test_the_twin_is_passed_over_for_the_right_record():
    got = matcher.decide(person(), [record("twin", given_name="Susan"),
                                    record("R9", postcode="LS6 2AD")])
    assert (got.outcome, got.candidate_id) == ("link", "R9")


def test_a_parent_with_the_childs_name_and_address_is_not_linked():
    got = matcher.decide(person(), [record("mother", birth_date=date(1936, 8, 2))])
    assert got.outcome != "link" and got.reason == "birth-date-disagrees"


def test_two_records_equally_good_are_ambiguous():
    got = matcher.decide(person(), [record("R1"), record("R2", gp_practice_ods="B86002")])
    assert (got.outcome, got.reason) == ("review", "ambiguous-candidates")


def test_a_far_better_record_is_not_ambiguous():
    got = matcher.decide(person(), [record("R1"),
                                    record("R2", birth_date=None, gp_practice_ods=None)])
    assert (got.outcome, got.candidate_id) == ("link", "R1")


def test_candidates_from_person_refs():
    c = Candidate.from_person("R9", person(nhs_number=NHS_1))
    assert c.id == "R9" and c.nhs_number == NHS_1 and c.family_name == BASE.family_name


# -- explanation -----------------------------------------------------------------------------
def test_every_field_contributes_and_the_contributions_add_up_to_the_score():
    got = matcher.decide(person(given_name="Peggy", postcode="LS6 2XY", sex=None),
                         [record("R9")])
    assert set(got.contributions) == {"prior", *FIELDS}
    assert sum(got.contributions.values()) == pytest.approx(got.score)
    assert got.levels == {"family_name": "exact", "given_name": "nickname-or-initial",
                          "birth_date": "exact", "sex": "missing", "postcode": "sector",
                          "gp_practice": "exact"}
    assert got.contributions["sex"] == 0.0  # missing is no evidence
    assert got.contributions["given_name"] == pytest.approx(math.log2(0.08 / 0.01))


def test_common_names_weigh_less_than_rare_ones_with_term_frequencies():
    register = [Prepared(record(f"R{k}", family_name="Smith" if k % 10 else "Thornley"))
                for k in range(1000)]
    tf = matcher.with_frequencies(register)
    smith = tf.decide(person(family_name="Smith"), [record("R9", family_name="Smith")])
    rare = tf.decide(person(), [record("R9")])
    assert smith.contributions["family_name"] < rare.contributions["family_name"]
    unseen = tf.decide(person(family_name="Quenby"), [record("R9", family_name="Quenby")])
    assert unseen.contributions["family_name"] == pytest.approx(math.log2(0.90 / 1e-4))


# -- parameters ------------------------------------------------------------------------------
def test_parameters_are_checked():
    with pytest.raises(ValueError, match="sex"):
        MatchParams(levels={**DEFAULT_LEVELS, "sex": ((0.9, 0.5),)})
    with pytest.raises(ValueError, match="probabilities"):
        MatchParams(levels={**DEFAULT_LEVELS, "gp_practice": ((0.0, 0.5), (1.0, 0.5))})
    with pytest.raises(ValueError, match="prior"):
        MatchParams(prior=0.0)
    with pytest.raises(ValueError, match="threshold"):
        IdentityMatcher(threshold_link=0.5, threshold_review=0.9)


def test_synthetic_numbers_in_the_tests_are_valid():
    assert Prepared(record(nhs_number=make_synthetic(7))).nhs == make_synthetic(7)
