"""Blocking keys survive the usual slips; the batch linker keeps the matcher's rules."""

from __future__ import annotations

from datetime import date

from reconciliation.blocking import blocking_keys, link_batch, person_blocking_keys
from reconciliation.identity import IdentityMatcher
from reconciliation.linkage_data import generate_linkage_set
from register_core.domain.commands import PersonRef

from .builders import prep, record

NHS_1, NHS_2 = "9434765919", "9990500002"


def shared(a, b) -> set[str]:
    return set(blocking_keys(a)) & set(blocking_keys(b))


def test_a_full_record_has_five_keys():
    keys = blocking_keys(prep())
    assert len(keys) == 5 and len(set(keys)) == 5
    assert sorted(k[0] for k in keys) == ["d", "d", "m", "n", "p"]


def test_keys_survive_the_usual_slips():
    base = prep()
    assert shared(base, prep(family_name="Thornely"))  # typo after the first letter
    assert shared(base, prep(family_name="Margaret", given_name="Thornley"))  # swapped
    assert shared(base, prep(birth_date=date(1961, 4, 28)))  # wrong day
    assert shared(base, prep(birth_date=date(1962, 4, 23), family_name="Ashworth"))  # +moved
    assert shared(base, prep(postcode="M1 1AE"))  # moved
    assert shared(base, prep(given_name="Peggy", postcode="M1 1AE"))  # nickname and moved
    assert shared(base, prep(birth_date=date(1960, 4, 23), postcode="M1 1AE"))  # year, moved


def test_missing_fields_give_fewer_keys_not_errors():
    assert blocking_keys(prep(birth_date=None, postcode=None)) == []
    assert blocking_keys(prep(birth_date=None)) == ["pLS6 2ABM"]


def test_keys_for_a_person_ref():
    ref = PersonRef(family_name="Thornley", given_name="Margaret", birth_date=date(1961, 4, 23),
                    postcode="LS6 2AB")
    assert person_blocking_keys(ref) == blocking_keys(prep())


def test_batch_links_by_nhs_number_then_by_score():
    a = [record("a1", nhs_number=NHS_1, postcode="M1 1AE"),  # NHS number, moved
         record("a2", family_name="Ashworth", given_name="Susan", sex="female"),  # no number
         record("a3", family_name="Quenby", given_name="Oliver", sex="male")]  # nobody
    b = [record("b1", nhs_number=NHS_1),
         record("b2", family_name="ASHWORTH", given_name="SUSAN", postcode="LS62AB"),
         record("b3", family_name="Quenby", given_name="Oliver", sex="male",
                nhs_number=NHS_2, birth_date=date(1990, 1, 1))]
    got = link_batch(a, b)
    assert [(x, y, how) for x, y, how, _ in got.links] == [
        ("a1", "b1", "nhs-number"), ("a2", "b2", "probabilistic")]
    assert got.new + len(got.reviews) == 1


def test_batch_never_links_conflicting_nhs_numbers():
    got = link_batch([record("a1", nhs_number=NHS_1)], [record("b1", nhs_number=NHS_2)])
    assert got.links == [] and got.new == 1


def test_one_to_one_sends_the_weaker_claim_to_review():
    a = [record("a1"), record("a2", postcode="LS6 2AD")]
    got = link_batch(a, [record("b1")])
    assert [(x, y) for x, y, _, _ in got.links] == [("a1", "b1")]
    assert [(x, y, why) for x, y, why, _ in got.reviews] == [("a2", "b1", "record-already-linked")]
    both = link_batch(a, [record("b1")], one_to_one=False)
    assert len(both.links) == 2


def test_forked_workers_give_the_same_answer():
    data = generate_linkage_set(3000, seed=5)
    one = link_batch(data.source_a, data.source_b, IdentityMatcher())
    two = link_batch(data.source_a, data.source_b, IdentityMatcher(), workers=2)
    assert one == two


def test_the_bulk_index_uses_the_same_keys_as_prepared_records():
    from reconciliation.blocking import _raw_keys
    from reconciliation.comparisons import Prepared

    data = generate_linkage_set(2000, seed=9)
    for r in [*data.source_a, record(postcode="  ", given_name=" ", family_name="'")]:
        p = Prepared(r)
        assert _raw_keys(r) == (blocking_keys(p), p.family, p.given)
