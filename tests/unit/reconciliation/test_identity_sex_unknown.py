"""Opposite-sex twins when a source sends no sex (audit D7): "Francis" (male, trust) and
"Frances" (council, no sex) share surname, birth date, postcode and practice; only the sex
would tell them apart, so an inexact given name with the sex unknown is a review, never a link."""

from __future__ import annotations

import pytest

from reconciliation.identity import IdentityMatcher
from register_core.domain.commands import PersonRef

from .builders import BASE, record

matcher = IdentityMatcher()


def incoming(**changes: object) -> PersonRef:
    fields = {k: getattr(BASE, k) for k in ("family_name", "given_name", "birth_date", "sex",
                                           "postcode", "gp_practice_ods")}
    return PersonRef(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("unknown_side", ["incoming", "candidate", "both"])
def test_francis_and_frances_with_the_sex_unknown_go_to_review(unknown_side: str) -> None:
    sexes = {"incoming": (None, "male"), "candidate": ("female", None),
             "both": (None, None)}[unknown_side]
    got = matcher.decide(incoming(given_name="Frances", sex=sexes[0]),
                         [record("brother", given_name="FRANCIS", sex=sexes[1])])
    assert (got.levels["sex"], got.levels["given_name"]) == ("missing",
                                                             "jaro-winkler-or-one-edit")
    assert (got.outcome, got.reason) == ("review", "given-name-inexact-sex-unknown"), got


@pytest.mark.parametrize(("brother", "sister"), [("ALEXANDER", "Alexandra"),
                                                 ("DANIEL", "Danielle")])
def test_other_twin_names_never_link_with_the_sex_unknown(brother: str, sister: str) -> None:
    got = matcher.decide(incoming(given_name=sister, sex=None),
                         [record("brother", given_name=brother, sex="male")])
    assert got.outcome == "review", got


def test_a_nickname_with_the_sex_unknown_goes_to_review_too() -> None:
    got = matcher.decide(incoming(given_name="Peggy", sex=None), [record("R9")])
    assert (got.outcome, got.reason) == ("review", "given-name-inexact-sex-unknown")


def test_an_exact_given_name_with_the_sex_unknown_still_links() -> None:
    """Missing sex is no evidence either way: the guard is about the inexact name only."""
    got = matcher.decide(incoming(sex=None), [record("R9")])
    assert (got.outcome, got.candidate_id) == ("link", "R9")


def test_an_inexact_given_name_with_the_same_sex_still_links() -> None:
    got = matcher.decide(incoming(given_name="Margret"), [record("R9")])
    assert got.levels["given_name"] == "jaro-winkler-or-one-edit" and got.outcome == "link"
