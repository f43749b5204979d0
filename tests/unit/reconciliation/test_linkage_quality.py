"""The labelled synthetic set, and the matcher measured on it.

Floors (issue 4): on the records without a shared valid NHS number, precision >= 0.99 and
recall >= 0.97. Measured when set (30,000 people, ~2,950 such pairs, default thresholds
0.95 / 0.5): seed 117 precision 1.0, recall 0.978; seeds 1-8 precision 0.9997-1.0, recall
0.974-0.982 (seeds 117, 1, 2 lost 0.001-0.003 of recall when an inexact first name with the
sex unknown went to review instead of linking) — close enough to the floors to catch a
regression.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace

import pytest

from reconciliation.blocking import BatchResult, link_batch
from reconciliation.comparisons import Prepared, valid_nhs_number
from reconciliation.estimation import fit
from reconciliation.identity import IdentityMatcher
from reconciliation.linkage_data import LinkageSet, generate_linkage_set, nhs_numbers

PEOPLE = 30_000
PRECISION_FLOOR = 0.99
RECALL_FLOOR = 0.97


@pytest.fixture(scope="module")
def data() -> LinkageSet:
    return generate_linkage_set(PEOPLE, seed=117)


def needed_pairs(data: LinkageSet) -> dict[str, str]:
    """True pairs the probabilistic path must find: no valid NHS number in common."""
    nhs_a = {r.id: valid_nhs_number(r.nhs_number) for r in data.source_a}
    nhs_b = {r.id: valid_nhs_number(r.nhs_number) for r in data.source_b}
    return {a: b for a, b in data.true_pairs().items()
            if nhs_a[a] is None or nhs_a[a] != nhs_b[b]}


@pytest.fixture(scope="module")
def linked(data: LinkageSet) -> BatchResult:
    return link_batch(data.source_a, data.source_b, IdentityMatcher())


def precision_recall(data: LinkageSet, result: BatchResult) -> tuple[float, float, int]:
    needed = needed_pairs(data)
    prob = [(a, b) for a, b, how, _ in result.links if how == "probabilistic"]
    correct = sum(needed.get(a) == b for a, b in prob)
    return correct / len(prob), correct / len(needed), len(needed)


# -- the generator ---------------------------------------------------------------------------
def test_same_seed_same_set_other_seed_other_set(data):
    again = generate_linkage_set(2000, seed=117)
    assert again == generate_linkage_set(2000, seed=117)
    assert again.source_a != generate_linkage_set(2000, seed=118).source_a


def test_nhs_numbers_are_valid_distinct_and_in_the_test_range(data):
    numbers = [p.nhs_number for p in data.people if p.nhs_number]
    assert len(numbers) == len(set(numbers))
    assert all(n.startswith("999") and valid_nhs_number(n) == n for n in numbers)
    untraced = 1 - len(numbers) / len(data.people)
    assert 0.09 < untraced < 0.11
    first = list(itertools.islice(nhs_numbers(), 1100))  # 1 stem in 11 has no check digit
    assert first[0] == "9990000018" and first[-1] < "9990012200"
    assert all(valid_nhs_number(n) == n for n in first) and first == sorted(set(first))


def test_the_set_holds_what_makes_linkage_hard(data):
    a_by_id = {r.id: r for r in data.source_a}
    b_by_id = {r.id: r for r in data.source_b}
    pairs = [(a_by_id[a], b_by_id[b]) for a, b in data.true_pairs().items()]
    slips = Counter()
    for a, b in pairs:
        pa, pb = Prepared(a), Prepared(b)
        slips["family differs"] += pa.family != pb.family
        slips["given differs"] += pa.given != pb.given
        slips["birth date differs"] += a.birth_date != b.birth_date
        slips["postcode differs"] += pa.postcode != pb.postcode
        slips["swapped"] += pa.family == pb.given and pa.given == pb.family
        slips["no valid NHS number"] += pa.nhs is None or pb.nhs is None
    for what, count in slips.items():
        assert count > 0.005 * len(pairs), what
    in_one_only = len(data.source_a) + len(data.source_b) - 2 * len(pairs)
    assert in_one_only > 0.15 * len(data.people)
    twins, namesakes = hard_negatives(data)
    assert len(twins) > 100 and len(namesakes) > 50


def hard_negatives(data: LinkageSet) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Twins (same surname, birthday, postcode) and parent/child with the same name."""
    twins, namesakes = [], []
    people = data.people
    for k in range(1, len(people)):
        p, q = people[k - 1], people[k]
        if p.family_name == q.family_name and p.postcode == q.postcode:
            if p.birth_date == q.birth_date and p.given_name != q.given_name:
                twins.append((k - 1, k))
            elif p.given_name == q.given_name and p.birth_date != q.birth_date:
                namesakes.append((k - 1, k))
    return twins, namesakes


# -- the matcher on it -----------------------------------------------------------------------
def test_precision_at_least_0_99_and_recall_at_least_0_97_without_nhs_numbers(data, linked):
    precision, recall, pairs = precision_recall(data, linked)
    assert pairs > 2500  # "a few thousand pairs"
    assert precision >= PRECISION_FLOOR, precision
    assert recall >= RECALL_FLOOR, recall


def test_nhs_number_links_are_all_right(data, linked):
    truth = data.true_pairs()
    by_nhs = [(a, b) for a, b, how, _ in linked.links if how == "nhs-number"]
    assert len(by_nhs) > 0.8 * len(truth)
    assert all(truth.get(a) == b for a, b in by_nhs)


def test_twins_and_namesakes_are_never_linked_even_without_nhs_numbers(data):
    """Each twin's record against the other twin's alone — no right answer on offer.

    Known limits, left out here: a record holding only an initial that both twins share
    ("S Eastwood": Simon or Stephen?), and a parent and child when one birth date is missing.
    """
    matcher = IdentityMatcher().with_frequencies(Prepared(r) for r in data.source_b)
    a_of = {k: i for i, k in enumerate(data.person_a)}
    b_of = {k: j for j, k in enumerate(data.person_b)}
    twins, namesakes = hard_negatives(data)
    tried = Counter()
    for kind, pairs in (("twin", twins), ("namesake", namesakes)):
        for x, y in pairs:
            for s, t in ((x, y), (y, x)):
                if s not in a_of or t not in b_of:
                    continue
                a = replace(data.source_a[a_of[s]], nhs_number=None)
                b = replace(data.source_b[b_of[t]], nhs_number=None)
                pa, pb = Prepared(a), Prepared(b)
                if kind == "twin" and (len(pa.given or "") < 2 or len(pb.given or "") < 2):
                    continue
                if kind == "namesake" and (a.birth_date is None or b.birth_date is None):
                    continue
                got = matcher.decide(a, [b])
                assert got.outcome != "link", (kind, a, b, got.levels)
                tried[kind] += 1
    assert tried["twin"] > 200 and tried["namesake"] > 100


def test_parameters_fitted_to_the_set_recover_its_error_rates(data):
    """m from the NHS-number pairs, u from random pairs: near what the generator put in."""
    prep_a = [Prepared(r) for r in data.source_a]
    prep_b = [Prepared(r) for r in data.source_b]
    params = fit(prep_a, prep_b, random_pairs=50_000)
    m_dob, u_dob = params.levels["birth_date"][0]
    assert 0.94 < m_dob < 0.98  # 2% slips + 0.5% missing per source, both sources
    assert u_dob < 0.001
    m_sex, u_sex = params.levels["sex"][0]
    assert m_sex > 0.99 and 0.45 < u_sex < 0.55
    m_postcode, _ = params.levels["postcode"][0]
    assert 0.80 < m_postcode < 0.88  # 8% move per source
    result = link_batch(data.source_a, data.source_b, IdentityMatcher(params=params))
    precision, recall, _ = precision_recall(data, result)
    assert precision >= PRECISION_FLOOR and recall > 0.95
