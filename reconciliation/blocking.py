"""Blocking: which register records are worth comparing with an incoming person.

Scoring every pair is quadratic; instead each record emits a few keys and only records that
share a key are compared. Each key survives a different kind of error, so a true pair is lost
only when every key breaks at once:

- ``d``: birth date + Soundex of either name (survives most typos, a nickname or a new
  surname — not both —, swaps, a moved postcode). The first letter alone would survive a
  little more (+0.05% recall) for twice the comparisons at a million records;
- ``n`` / ``m``: both names' Soundex, sorted, + birth year / + month and day (survive a
  mistyped day or month / year, swaps, a move);
- ``p``: postcode + first letter of the given name (survives a wrong or missing birth date, a
  new surname at the same address).

The repository (later) indexes the same keys in a table; ``link_batch`` keeps them in dicts for
the bulk benchmark and for tests.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .comparisons import (
    Prepared,
    family_features,
    given_features,
    postcode_parts,
    valid_nhs_number,
)
from .identity import Candidate, IdentityMatcher


def blocking_keys(p: Prepared) -> list[str]:
    return _keys(p.dob, p.family, p.given, p.family_sx, p.given_sx, p.postcode)


def _keys(dob: date | None, fam: str | None, giv: str | None, fam_sx: str | None,
          giv_sx: str | None, postcode: str | None) -> list[str]:
    keys: list[str] = []
    if dob is not None:
        iso = dob.isoformat()
        if fam_sx:
            keys.append(f"d{iso}{fam_sx}")
        if giv_sx and giv_sx != fam_sx:
            keys.append(f"d{iso}{giv_sx}")
        if fam_sx and giv_sx:
            low, high = (fam_sx, giv_sx) if fam_sx <= giv_sx else (giv_sx, fam_sx)
            keys.append(f"n{low}{high}{iso[:4]}")
            keys.append(f"m{low}{high}{iso[5:]}")
    if postcode and giv:
        keys.append(f"p{postcode}{giv[0]}")
    return keys


def _raw_keys(r: Candidate) -> tuple[list[str], str | None, str | None]:
    """``blocking_keys(Prepared(r))`` and the two names, without building ``Prepared``: the
    bulk linker indexes every B record but compares only a few (same cached functions)."""
    fam, fam_sx, _ = family_features(r.family_name) if r.family_name else _NONE3
    giv, giv_sx, _ = given_features(r.given_name) if r.given_name else _NONE3
    pc = r.postcode
    postcode = postcode_parts(pc)[0] if pc and pc.strip() else None
    return _keys(r.birth_date, fam, giv, fam_sx, giv_sx, postcode), fam, giv


_NONE3 = (None, None, None)


def person_blocking_keys(person: Any) -> list[str]:
    """Keys for a ``PersonRef`` or ``Candidate``: what a repository stores and looks up."""
    return blocking_keys(Prepared(person))


@dataclass
class BatchResult:
    """Per record of source A: links, reviews (identity-uncertain) and the count left new."""

    links: list[tuple[str, str, str, float]] = field(default_factory=list)  # a, b, how, score
    reviews: list[tuple[str, str | None, str, float]] = field(default_factory=list)  # +reason
    new: int = 0


def link_batch(records_a: Sequence[Candidate], records_b: Sequence[Candidate],
               matcher: IdentityMatcher | None = None, *, one_to_one: bool = True,
               term_frequencies: bool = True, workers: int = 1) -> BatchResult:
    """Link every record of A to at most one of B, with the same rules as ``decide``.

    ``one_to_one``: each source holds a person once, so when two A records claim one B record
    the NHS-number link, then the higher score, keeps it and the other goes to review.
    ``workers`` > 1 forks processes for the A side once B is indexed (POSIX only; the bulk
    benchmark's use — the online worker calls ``IdentityMatcher.decide``).
    """
    with _gc_paused():
        return _link_batch(records_a, records_b, matcher or IdentityMatcher(), one_to_one,
                           term_frequencies, workers)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of small objects, none of them cyclic: the cyclic collector would rescan them
    again and again and double the run time. Restored afterwards, as it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _link_batch(records_a: Sequence[Candidate], records_b: Sequence[Candidate],
                matcher: IdentityMatcher, one_to_one: bool, term_frequencies: bool,
                workers: int) -> BatchResult:
    by_nhs: dict[str, int] = {}
    # key -> one B position, or a list of them: most keys are unique, and a million
    # one-element lists cost seconds and hundreds of MiB.
    index: dict[str, int | list[int]] = {}
    family: Counter[str] = Counter()
    given: Counter[str] = Counter()
    for j, r in enumerate(records_b):
        nhs = valid_nhs_number(r.nhs_number)
        if nhs is not None:
            by_nhs.setdefault(nhs, j)
        keys, fam, giv = _raw_keys(r)
        for key in keys:
            held = index.get(key)
            if held is None:
                index[key] = j
            elif type(held) is int:
                index[key] = [held, j]
            else:
                held.append(j)  # type: ignore[union-attr]
        if fam:
            family[fam] += 1
        if giv:
            given[giv] += 1
    if term_frequencies:
        matcher = matcher.with_params(matcher.params.with_name_counts(family, given))
    prep_b: list[Prepared | None] = [None] * len(records_b)  # prepared when first compared
    state = _State(records_a, records_b, prep_b, by_nhs, index, matcher)
    if workers <= 1 or len(records_a) < 2_000:  # forking costs more than it saves
        outcomes = _link_range(state, 0, len(records_a))
    else:
        outcomes = _link_forked(state, workers)
    return _collect(outcomes, records_a, records_b, one_to_one)


@dataclass
class _State:
    records_a: Sequence[Candidate]
    records_b: Sequence[Candidate]
    prep_b: list[Prepared | None]
    by_nhs: dict[str, int]
    index: dict[str, int | list[int]]
    matcher: IdentityMatcher


# (a position, outcome, b position or -1, score, reason): small, so workers can send it back.
_Outcome = tuple[int, str, int, float, str]


def _link_range(state: _State, start: int, stop: int) -> list[_Outcome]:
    records_a, records_b, prep_b = state.records_a, state.records_b, state.prep_b
    by_nhs, index, matcher = state.by_nhs, state.index, state.matcher
    check = matcher.review_unverified_nhs_conflict
    out: list[_Outcome] = []
    for i in range(start, stop):
        a = records_a[i]
        nhs = valid_nhs_number(a.nhs_number)
        j = by_nhs.get(nhs, -1) if nhs is not None else -1
        # Equal birth dates cannot trip the "unverified number, other person" check: skip
        # preparing the record (most of a bulk run links this way).
        if j >= 0 and (not check or (a.birth_date is not None
                                     and a.birth_date == records_b[j].birth_date)):
            out.append((i, "link", j, math.inf, "nhs-number-exact"))
            continue
        pa = Prepared(a)
        if j >= 0:
            chosen = [j]
        else:
            found: set[int] = set()
            for key in blocking_keys(pa):
                held = index.get(key)
                if held is None:
                    continue
                if type(held) is int:
                    found.add(held)
                else:
                    found.update(held)  # type: ignore[arg-type]
            chosen = sorted(found)  # sorted: ties break the same way every run
        candidates = []
        for k in chosen:
            pb = prep_b[k]
            if pb is None:
                pb = prep_b[k] = Prepared(records_b[k])
            candidates.append(pb)
        verdict = matcher.triage(pa, candidates)
        out.append((i, verdict.outcome, chosen[verdict.index] if verdict.index >= 0 else -1,
                    verdict.score, verdict.reason))
    return out


_FORKED: _State | None = None  # what forked workers inherit (copy-on-write)


def _forked_range(bounds: tuple[int, int]) -> list[_Outcome]:
    assert _FORKED is not None
    return _link_range(_FORKED, *bounds)


def _link_forked(state: _State, workers: int) -> list[_Outcome]:
    global _FORKED
    n = len(state.records_a)
    step = -(-n // (workers * 4))  # a few chunks per worker evens out the load
    bounds = [(k, min(k + step, n)) for k in range(0, n, step)]
    _FORKED = state
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return [o for part in pool.map(_forked_range, bounds) for o in part]
    finally:
        _FORKED = None


def _collect(outcomes: list[_Outcome], records_a: Sequence[Candidate],
             records_b: Sequence[Candidate], one_to_one: bool) -> BatchResult:
    result = BatchResult()
    claims: list[_Outcome] = []
    for o in outcomes:
        if o[1] == "link":
            claims.append(o)
        elif o[1] == "review":
            result.reviews.append((records_a[o[0]].id, records_b[o[2]].id, o[4], o[3]))
        else:
            result.new += 1
    if one_to_one:  # NHS-number links first (score inf), then by score
        claims.sort(key=lambda o: -o[3])
    taken: set[int] = set()
    for i, _, j, score, reason in claims:
        a_id, b_id = records_a[i].id, records_b[j].id
        if one_to_one and j in taken:
            result.reviews.append((a_id, b_id, "record-already-linked", score))
            continue
        taken.add(j)
        how = "nhs-number" if reason == "nhs-number-exact" else "probabilistic"
        result.links.append((a_id, b_id, how, score))
    return result
