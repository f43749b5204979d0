"""Fitting m and u to the hub's own data, instead of trusting the defaults.

- u (how often two *different* people land on a level): the level frequencies over random
  pairs of register records — a random pair is almost never one person (Splink's
  ``estimate_u_using_random_sampling``).
- m (how often the *same* person does): the level frequencies over pairs that share a valid
  NHS number. Nine records in ten carry one, so the register labels its own training pairs;
  that is why there is no EM here. EM (Splink's ``estimate_parameters_using_expectation_
  maximisation``) is the tool when no source carries NHS numbers, and must then be run per
  blocking rule, because blocked non-matches agree on the blocked fields far more than u says.

Both are smoothed (add-one) so no level gets m or u of zero, i.e. an infinite weight.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence

from .comparisons import FIELDS, LEVELS, NULL, Prepared, comparison_vector
from .identity import MatchParams

Vector = tuple[int, ...]


def level_frequencies(vectors: Iterable[Vector]) -> dict[str, tuple[float, ...]]:
    """Share of each level per field among the vectors where the field is present."""
    counts = [Counter[int]() for _ in FIELDS]
    for vec in vectors:
        for k, level in enumerate(vec):
            if level != NULL:
                counts[k][level] += 1
    out: dict[str, tuple[float, ...]] = {}
    for k, name in enumerate(FIELDS):
        n_levels = len(LEVELS[name])
        total = sum(counts[k].values()) + n_levels
        out[name] = tuple((counts[k][lvl] + 1) / total for lvl in range(n_levels))
    return out


def random_pair_vectors(records: Sequence[Prepared], pairs: int, seed: int = 0) -> list[Vector]:
    """Comparison vectors of ``pairs`` random pairs of distinct records (seeded)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    n = len(records)
    if n < 2:
        raise ValueError("need at least two records")
    out: list[Vector] = []
    for _ in range(pairs):
        i, j = rng.randrange(n), rng.randrange(n - 1)
        j += j >= i  # a distinct second record, uniformly
        out.append(comparison_vector(records[i], records[j]))
    return out


def nhs_pair_vectors(records_a: Iterable[Prepared],
                     records_b: Iterable[Prepared]) -> list[Vector]:
    """Comparison vectors of every A/B pair that shares a valid NHS number."""
    by_nhs = {p.nhs: p for p in records_b if p.nhs is not None}
    return [comparison_vector(a, by_nhs[a.nhs]) for a in records_a
            if a.nhs is not None and a.nhs in by_nhs]


def fit(records_a: Sequence[Prepared], records_b: Sequence[Prepared],
        params: MatchParams | None = None, *, random_pairs: int = 200_000,
        seed: int = 0) -> MatchParams:
    """Parameters with m from NHS-number pairs and u from random pairs of B.

    The pairs that share an NHS number are the matches the probabilistic path never sees, but
    their slips (typos, moves) are the same kind: that is the assumption this rests on.
    """
    base = params or MatchParams()
    matches = nhs_pair_vectors(records_a, records_b)
    if not matches:
        raise ValueError("no pairs share a valid NHS number: m cannot be estimated this way")
    m = level_frequencies(matches)
    u = level_frequencies(random_pair_vectors(records_b, random_pairs, seed))
    levels = {name: tuple(zip(m[name], u[name], strict=True)) for name in FIELDS}
    return MatchParams(levels=levels, prior=base.prior,
                       family_frequencies=base.family_frequencies,
                       given_frequencies=base.given_frequencies, tf_floor=base.tf_floor)
