"""Identity matching: exact on a valid NHS number, otherwise a Fellegi–Sunter score.

Why a Fellegi–Sunter scorer on rapidfuzz/jellyfish rather than Splink:
- Splink needs a SQL engine (DuckDB or Spark) at run time; the worker would carry DuckDB and a
  pinned Splink 5 API for what is, per message, a few dozen comparisons.
- The hub matches *online*: one incoming person against the handful of register records a
  blocking query returns, inside the worker's unit of work. Splink is built to link whole
  tables in batch.
- Every weight here is ``log2(m/u)`` of a named level, so the console can show why two records
  linked or went to review ("birth date: one component differs, +2.9").
What Splink would add is estimation; ``estimation.py`` fits m and u from the register itself
(m from pairs sharing an NHS number, u from random pairs) over these level definitions, and
parameters fitted offline by any tool load as ``MatchParams``.

Score = log2(prior odds) + Σ log2(m/u) over the fields both sides hold; probability =
2^score / (1 + 2^score). Rules over it (``IdentityMatcher.triage``):
1. Equal valid NHS numbers link. A valid number beats everything, except that an *unverified*
   number with a different name and birth date goes to review (a number keyed to the wrong
   person is the likelier story).
2. Different valid NHS numbers never link: that candidate is out (contribution -inf).
3. Otherwise the best candidate links at or above ``threshold_link``; in the review band it
   opens an identity-uncertain exception instead; below, the person is new.
4. Guards cap at review: a given name or birth date that disagrees outright, or a given name
   that agrees only inexactly while the sex differs or is unknown on either side ("Francis"
   / "Frances" with no sex from the council). Twins and parents with a child's name share
   surname, postcode and practice — correlated agreement the independence assumption
   over-counts. Two linkable candidates within ``ambiguity_margin`` bits of each other are
   ambiguous: review.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal, NamedTuple

from .comparisons import (
    DOB_ELSE,
    EXACT,
    FIELDS,
    FUZZY,
    LEVELS,
    NAME_ELSE,
    NICK_OR_INITIAL,
    NULL,
    SWAPPED,
    Prepared,
    comparison_vector,
)

Outcome = Literal["link", "review", "new"]
#: The exception a "review" outcome opens (architecture.md section 5 kinds).
REVIEW_EXCEPTION_KIND = "identity-uncertain"
_GIVEN_ELSE = NAME_ELSE["given_name"]
_FAMILY_ELSE = NAME_ELSE["family_name"]

#: (m, u) per level, in ``comparisons.LEVELS`` order. m: how often a true match lands on the
#: level (slips in demographic feeds: a few % typos, ~10% moved); u: how often two random
#: people do (common-name shares, 1 day in ~75 years, 1 postcode in ~20,000, 1 practice in 100).
DEFAULT_LEVELS: Mapping[str, tuple[tuple[float, float], ...]] = {
    "family_name": ((0.90, 0.0015), (0.04, 0.0005), (0.035, 0.01), (0.025, 0.988)),
    "given_name": ((0.86, 0.012), (0.03, 0.001), (0.08, 0.01), (0.01, 0.00005), (0.02, 0.977)),
    "birth_date": ((0.95, 0.00004), (0.03, 0.004), (0.008, 0.035), (0.012, 0.961)),
    "sex": ((0.99, 0.5), (0.01, 0.5)),
    "postcode": ((0.80, 0.00005), (0.04, 0.0008), (0.06, 0.006), (0.10, 0.993)),
    "gp_practice": ((0.85, 0.01), (0.15, 0.99)),
}


@dataclass(frozen=True)
class MatchParams:
    """Fellegi–Sunter parameters. ``prior``: chance a random pair of records is one person.

    With name frequencies, an exact name scores against its own share of the register
    (term-frequency adjustment: "Smith" is weaker evidence than "Thornley"); names absent from
    the table count as rare (``tf_floor``).
    """

    levels: Mapping[str, tuple[tuple[float, float], ...]] = field(
        default_factory=lambda: dict(DEFAULT_LEVELS))
    prior: float = 1e-6  # about one register of a million: sets what "random pair" means
    family_frequencies: Mapping[str, float] | None = None
    given_frequencies: Mapping[str, float] | None = None
    tf_floor: float = 1e-4

    def __post_init__(self) -> None:
        for name in FIELDS:
            got = self.levels.get(name)
            if got is None or len(got) != len(LEVELS[name]):
                raise ValueError(f"{name}: need (m, u) for levels {LEVELS[name]}")
            if not all(0 < m <= 1 and 0 < u <= 1 for m, u in got):
                raise ValueError(f"{name}: m and u must be probabilities in (0, 1]")
        if not 0 < self.prior < 1:
            raise ValueError("prior must be in (0, 1)")

    def with_frequencies(self, records: Iterable[Prepared]) -> MatchParams:
        """Term frequencies of family and given names taken from the records to be searched."""
        family: Counter[str] = Counter()
        given: Counter[str] = Counter()
        for p in records:
            if p.family:
                family[p.family] += 1
            if p.given:
                given[p.given] += 1
        return self.with_name_counts(family, given)

    def with_name_counts(self, family: Counter[str], given: Counter[str]) -> MatchParams:
        """Term frequencies from counts of normalised names (``Prepared.family``/``given``)."""
        return replace(self, family_frequencies=_shares(family),
                       given_frequencies=_shares(given))


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in counts.items()}


DEFAULT_PARAMS = MatchParams()


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A register record that blocking returned: its id plus what ``PersonRef`` carries."""

    id: str
    nhs_number: str | None = None
    nhs_number_verified: bool | None = None
    family_name: str | None = None
    given_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    postcode: str | None = None
    gp_practice_ods: str | None = None

    @classmethod
    def from_person(cls, id: str, person: Any) -> Candidate:
        return cls(id=id, nhs_number=person.nhs_number,
                   nhs_number_verified=person.nhs_number_verified,
                   family_name=person.family_name, given_name=person.given_name,
                   birth_date=person.birth_date, sex=person.sex, postcode=person.postcode,
                   gp_practice_ods=person.gp_practice_ods)


@dataclass(frozen=True)
class MatchDecision:
    """What to do with an incoming person, and why (``contributions`` in log2 weight)."""

    outcome: Outcome
    candidate_id: str | None
    score: float
    probability: float
    contributions: Mapping[str, float]
    levels: Mapping[str, str]
    reason: str


class Verdict(NamedTuple):
    """The light result the bulk linker keeps: ``index`` into the candidates, or -1."""

    outcome: Outcome
    index: int
    score: float
    reason: str


def _log2_odds(p: float) -> float:
    return math.log2(p / (1 - p))


def probability(score: float) -> float:
    if score == math.inf:
        return 1.0
    if score == -math.inf:
        return 0.0
    return 1 / (1 + 2 ** -score) if score > -1000 else 0.0


class IdentityMatcher:
    """Decides link / review / new for one incoming person against blocked candidates."""

    def __init__(self, threshold_link: float = 0.95, threshold_review: float = 0.5,
                 params: MatchParams = DEFAULT_PARAMS, *,
                 review_unverified_nhs_conflict: bool = True,
                 ambiguity_margin: float = 10.0) -> None:
        if not 0 < threshold_review <= threshold_link < 1:
            raise ValueError("need 0 < threshold_review <= threshold_link < 1")
        self.threshold_link = threshold_link
        self.threshold_review = threshold_review
        self.params = params
        self.review_unverified_nhs_conflict = review_unverified_nhs_conflict
        self.ambiguity_margin = ambiguity_margin
        self._link_w = _log2_odds(threshold_link)
        self._review_w = _log2_odds(threshold_review)
        self._prior_w = _log2_odds(params.prior)
        self._w = [tuple(math.log2(m / u) for m, u in params.levels[f]) for f in FIELDS]
        self._fam_m = params.levels["family_name"][EXACT][0]
        self._giv_m = params.levels["given_name"][EXACT][0]

    def with_frequencies(self, records: Iterable[Prepared]) -> IdentityMatcher:
        """The same matcher with name frequencies of ``records`` (the register searched)."""
        return self.with_params(self.params.with_frequencies(records))

    def with_params(self, params: MatchParams) -> IdentityMatcher:
        return IdentityMatcher(
            self.threshold_link, self.threshold_review, params,
            review_unverified_nhs_conflict=self.review_unverified_nhs_conflict,
            ambiguity_margin=self.ambiguity_margin)

    # -- scoring ---------------------------------------------------------------------------
    def _weights(self, a: Prepared, vec: Sequence[int]) -> list[float]:
        """Per-field log2 weight, in ``FIELDS`` order; a missing side weighs 0."""
        out = [0.0 if lvl == NULL else self._w[i][lvl] for i, lvl in enumerate(vec)]
        p = self.params
        if vec[1] == SWAPPED:  # names sit in the other fields: no frequency lookup
            return out
        if vec[0] == EXACT and p.family_frequencies is not None and a.family:
            share = p.family_frequencies.get(a.family, 0.0)
            out[0] = math.log2(self._fam_m / max(share, p.tf_floor))
        if vec[1] == EXACT and p.given_frequencies is not None and a.given:
            share = p.given_frequencies.get(a.given, 0.0)
            out[1] = math.log2(self._giv_m / max(share, p.tf_floor))
        return out

    def score(self, a: Prepared, b: Prepared) -> tuple[float, tuple[int, ...]]:
        """Match weight (prior included) and the comparison vector behind it."""
        vec = comparison_vector(a, b)
        return self._prior_w + sum(self._weights(a, vec)), vec

    @staticmethod
    def _guard(vec: Sequence[int]) -> str | None:
        if vec[1] == _GIVEN_ELSE:
            return "given-name-disagrees"
        if vec[2] == DOB_ELSE:
            return "birth-date-disagrees"
        # "JAMES"/"J" or "JAMES"/"JAMSE" and the sex differs: a slip, or a twin of the other sex.
        if vec[1] in (FUZZY, NICK_OR_INITIAL) and vec[3] == 1:
            return "given-name-inexact-sex-differs"
        # The same with the sex unknown on a side: "Francis"/"Frances" twins look alike to the
        # name comparison, and only the sex would tell them apart (a person decides).
        if vec[1] in (FUZZY, NICK_OR_INITIAL) and vec[3] == NULL:
            return "given-name-inexact-sex-unknown"
        return None

    # -- deciding --------------------------------------------------------------------------
    def triage(self, incoming: Prepared, candidates: Sequence[Prepared]) -> Verdict:
        """The decision without the explanation: what the bulk linker calls per record."""
        if incoming.nhs is not None:
            for i, c in enumerate(candidates):
                if c.nhs == incoming.nhs:
                    return self._nhs_exact(incoming, c, i)
        scored: list[tuple[float, int, tuple[int, ...]]] = []
        conflicts = 0
        for i, c in enumerate(candidates):
            if incoming.nhs is not None and c.nhs is not None:
                conflicts += 1  # different valid numbers: never the same person
                continue
            w, vec = self.score(incoming, c)
            scored.append((w, i, vec))
        if not scored:
            return Verdict("new", -1, -math.inf,
                           "nhs-number-conflict" if conflicts else "no-candidates")
        # Highest weight first; ties keep the caller's order so the result is deterministic.
        scored.sort(key=lambda t: -t[0])
        w, i, vec = scored[0]
        if w >= self._link_w:
            guard = self._guard(vec)
            if guard:
                return Verdict("review", i, w, guard)
            # A rival that could link on its own, not far behind: a duplicate or a namesake.
            if any(w2 >= self._link_w and w - w2 < self.ambiguity_margin
                   and not self._guard(v2) for w2, _, v2 in scored[1:]):
                return Verdict("review", i, w, "ambiguous-candidates")
            return Verdict("link", i, w, "score-above-link-threshold")
        if w >= self._review_w:
            return Verdict("review", i, w, "score-in-review-band")
        return Verdict("new", i, w, "score-below-review-threshold")

    def _nhs_exact(self, a: Prepared, b: Prepared, i: int) -> Verdict:
        if self.review_unverified_nhs_conflict and not (a.verified or b.verified):
            w, vec = self.score(a, b)
            if vec[0] == _FAMILY_ELSE and vec[2] == DOB_ELSE:
                # The score shown is what the demographics alone say.
                return Verdict("review", i, w, "nhs-number-exact-demographics-disagree")
        return Verdict("link", i, math.inf, "nhs-number-exact")

    def decide(self, incoming: Any, candidates: Sequence[Candidate]) -> MatchDecision:
        """Link, review or new for ``incoming`` (a ``PersonRef``), with the explanation."""
        inc = Prepared(incoming)
        prepared = [Prepared(c) for c in candidates]
        verdict = self.triage(inc, prepared)
        if verdict.index < 0:
            contributions = {"nhs_number": -math.inf} if verdict.reason.startswith("nhs") else {}
            return MatchDecision(verdict.outcome, None, verdict.score, 0.0, contributions, {},
                                 verdict.reason)
        best = prepared[verdict.index]
        contributions, levels = self.explain(inc, best)
        return MatchDecision(verdict.outcome, candidates[verdict.index].id, verdict.score,
                             probability(verdict.score), contributions, levels, verdict.reason)

    def explain(self, a: Prepared, b: Prepared) -> tuple[dict[str, float], dict[str, str]]:
        """Per-field weights and level names for one pair (what the console shows)."""
        vec = comparison_vector(a, b)
        weights = self._weights(a, vec)
        contributions = {"prior": self._prior_w}
        levels: dict[str, str] = {}
        if a.nhs is not None and b.nhs is not None:
            contributions["nhs_number"] = math.inf if a.nhs == b.nhs else -math.inf
            levels["nhs_number"] = "exact" if a.nhs == b.nhs else "differs"
        for name, lvl, w in zip(FIELDS, vec, weights, strict=True):
            contributions[name] = w
            levels[name] = "missing" if lvl == NULL else LEVELS[name][lvl]
        return contributions, levels
