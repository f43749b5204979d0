"""Probabilistic identity in the write path (architecture section 1 step 3).

A command whose person is found neither by NHS number nor by the source's own identifier is
compared, through the blocking keys the repository indexes, with the people who share a key,
and ``reconciliation.identity.IdentityMatcher`` decides: link (the person is found), review
(a new person, and an ``identity-uncertain`` exception naming the candidate) or new.

A record that links (at or above ``identity.link_threshold``) joins its match as a merge
(``handlers``): it is first given a person of its own, which is merged into the match and
recorded in ``person_merges`` under ``identity-link:<source>:<message>``, so a register owner
undoes a wrong automatic link by un-merging that person (``merges.unmerge``).

A record linked by a valid NHS number whose birth date differs from the registered person's
is still linked (the NHS number is the identity) and raises an
``identity-demographics-conflict`` exception for a person to settle (``open_demographics_
conflict``): the detail names the field, both values and their sources; logs never do.

The matcher runs with its default parameters, without name frequencies: a frequency table of
the whole register would have to be kept in step on every write, and the defaults already
keep common names in the review band unless birth date and postcode agree too.
Logs carry person ids and probabilities, never names or NHS numbers.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, or_, select

from reconciliation.blocking import person_blocking_keys
from reconciliation.exceptions import DEMOGRAPHICS_KIND, DIFFERENT_PEOPLE, LIVE, SYSTEM
from reconciliation.findings import Finding, fingerprint
from reconciliation.identity import REVIEW_EXCEPTION_KIND, IdentityMatcher, MatchDecision
from register_core.adapters.exceptions_store import ExceptionStore
from register_core.adapters.tables import register_exceptions
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain import nhs_number
from register_core.domain.commands import Command, MergePersons
from register_core.domain.model import REGISTER_SOURCE, Fact, Person
from register_core.domain.position import Policy
from register_core.ports import Clock

log = logging.getLogger(__name__)

# What the register owner reads per field: the matcher's level names, in four words.
_AGREE = frozenset({"exact", "equal"})
_DISAGREE = frozenset({"else", "differs"})
SOURCE_ALREADY_LINKED = "candidate-holds-another-record-of-the-source"
# How a merge made by a link on arrival is recorded (``person_merges.source_ref`` prefix).
ARRIVAL_LINK = "identity-link"
# Demographics a record linked by NHS number must agree on, else a person is asked.
CHECKED_DEMOGRAPHICS = ("birth_date",)
_MAX_REF = 200  # person_merges.source_ref, register_changes.source_ref


def arrival_link_ref(source: str, source_ref: str) -> str:
    """``person_merges.source_ref`` of a link made on arrival: the message it came with."""
    return f"{ARRIVAL_LINK}:{source}:{source_ref}"[:_MAX_REF]


@lru_cache(maxsize=8)
def _matcher(link: float, review: float) -> IdentityMatcher:
    return IdentityMatcher(threshold_link=link, threshold_review=review)


def matcher_for(policy: Policy | None) -> IdentityMatcher | None:
    """The configured matcher, or None when the partnership turned probabilistic linking
    off (then only the exact keys link, as before)."""
    policy = policy or Policy()
    if not policy.probabilistic_identity:
        return None
    return _matcher(policy.identity_link_threshold, policy.identity_review_threshold)


@dataclass(frozen=True)
class Match:
    """The matcher's decision about an incoming person, and the person it would link to."""

    decision: MatchDecision
    candidate: Person | None


def identities_of(command: Command) -> list[tuple[str | None, str, str | None]]:
    """The (valid NHS number, source, local id) keys ``handlers.locate_person`` and an A40's
    merged record will look up, for ``SqlPersonRepository.prefetch``."""
    source = command.provenance.source
    ref = command.person
    keys = [(_valid_or_none(ref.nhs_number), source, ref.local_id or None)]
    if isinstance(command, MergePersons):
        keys.append((_valid_or_none(command.merged_nhs_number), source,
                     command.merged_local_id or None))
    return keys


def _valid_or_none(raw: str | None) -> str | None:
    return nhs_number.normalise(raw) if raw and nhs_number.is_valid(raw) else None


def prefetch_candidates(uow: SqlUnitOfWork, commands: Iterable[Command],
                        policy: Policy | None) -> None:
    """Read in one query the candidates of every command the exact keys do not place (after
    ``SqlPersonRepository.prefetch``, so ``locate`` answers from memory): a new person's
    candidate look-up was a round trip of its own."""
    if matcher_for(policy) is None:
        return
    keys: list[str] = []
    without_nhs_only: list[str] = []  # as match_incoming asks for a record with a number
    for command in commands:
        if isinstance(command, MergePersons):
            continue
        nhs, source, local_id = identities_of(command)[0]
        if uow.persons.locate(nhs, source, local_id) == (None, None):
            wanted = without_nhs_only if command.person.nhs_number else keys
            wanted += person_blocking_keys(command.person)
    uow.persons.prefetch_candidates(keys, without_nhs_only)


def match_incoming(uow: SqlUnitOfWork, command: Command, policy: Policy | None) -> Match | None:
    """Look for the command's person among those sharing a blocking key; None when there is
    nothing to compare (no demographics to block on, linking off, a merge, no candidate)."""
    if isinstance(command, MergePersons):
        return None  # a merge names both records exactly
    matcher = matcher_for(policy)
    if matcher is None:
        return None
    keys = person_blocking_keys(command.person)
    if not keys:
        return None
    # A record with a (validated) NHS number can link only to someone without one: the
    # exact look-up has already missed anyone holding the same number.
    candidates = uow.persons.candidates(
        keys, without_nhs_only=bool(command.person.nhs_number))
    if not candidates:
        return None
    decision = matcher.decide(command.person, candidates)
    if decision.outcome == "new" or decision.candidate_id is None:
        return Match(decision, None)
    # Locked only when it is to be written: a review leaves the candidate as it is.
    candidate = uow.persons.get(decision.candidate_id,
                                for_update=decision.outcome == "link")
    source = command.provenance.source
    if (decision.outcome == "link" and candidate is not None
            and any(ident.source == source for ident in candidate.identifiers)):
        # Each source holds a person once: this source's other record for the candidate
        # makes the incoming one a second person, or a duplicate the source should merge.
        decision = MatchDecision("review", decision.candidate_id, decision.score,
                                 decision.probability, decision.contributions,
                                 decision.levels, SOURCE_ALREADY_LINKED)
    return Match(decision, candidate)


def comparison(levels: dict[str, str] | Any) -> dict[str, str]:
    """Per field: agree, fuzzy, disagree or missing (what the console and the API show)."""
    out: dict[str, str] = {}
    for name, level in levels.items():
        if level == "missing":
            out[name] = "missing"
        elif level in _AGREE:
            out[name] = "agree"
        elif level in _DISAGREE:
            out[name] = "disagree"
        else:
            out[name] = "fuzzy"
    return out


def _weight(value: float) -> float | str:
    if math.isfinite(value):
        return round(value, 2)
    return "+inf" if value > 0 else "-inf"


def pair_fingerprint(person_a: str, person_b: str) -> str:
    """The same for (a, b) and (b, a): a decision about a pair holds whichever came first."""
    low, high = sorted((person_a, person_b))
    return fingerprint(REVIEW_EXCEPTION_KIND, (low, high))


def open_identity_review(uow: SqlUnitOfWork, person_id: str, decision: MatchDecision,
                         command: Command, clock: Clock, policy: Policy | None) -> str | None:
    """Open an identity-uncertain exception on the new person naming the candidate; None
    when the pair is known already (a live exception, or a person decided it)."""
    prov = command.provenance
    return open_pair_review(uow, person_id, decision, source=prov.source,
                            source_ref=prov.source_ref, clock=clock, policy=policy)


def pair_known(uow: SqlUnitOfWork, person_a: str, person_b: str) -> bool:
    """Whether the pair was raised already, live or decided (``different-people`` stays)."""
    fp = pair_fingerprint(person_a, person_b)
    return uow.connection.execute(select(register_exceptions.c.id).where(
        register_exceptions.c.fingerprint == fp).limit(1)).first() is not None


def open_pair_review(uow: SqlUnitOfWork, person_id: str, decision: MatchDecision, *,
                     source: str, source_ref: str, clock: Clock,
                     policy: Policy | None) -> str | None:
    """``open_identity_review`` for a record already on the register (the bulk pass of
    ``s117hub reconcile``): ``source``/``source_ref`` say what raised it."""
    candidate_id = decision.candidate_id
    assert candidate_id is not None
    fp = pair_fingerprint(person_id, candidate_id)
    conn = uow.connection
    uow.persons.flush()  # the exception's person row must exist (batch mode defers it)
    if pair_known(uow, person_id, candidate_id):
        return None
    policy = policy or Policy()
    detail = {
        "candidate_person_id": candidate_id,
        "probability": round(decision.probability, 4),
        "score": _weight(decision.score),
        "rule": decision.reason,
        "comparison": comparison(decision.levels),
        "levels": dict(decision.levels),
        "weights": {name: _weight(w) for name, w in decision.contributions.items()},
        "thresholds": {"link": policy.identity_link_threshold,
                       "review": policy.identity_review_threshold},
        "source": source,
        "source_ref": source_ref,
    }
    summary = (f"May be the same person as {candidate_id} (match probability "
               f"{decision.probability:.2f}, {decision.reason}): decide same-person or "
               "different-people")
    [(exception_id, _)] = ExceptionStore(conn).open_many(
        person_id, [Finding(REVIEW_EXCEPTION_KIND, fp, summary, detail)], clock.now())
    log.info("identity review opened", extra={
        "person_id": person_id, "candidate_person_id": candidate_id,
        "probability": round(decision.probability, 4), "rule": decision.reason})
    return exception_id


_PAIR_QUESTIONS = select(register_exceptions.c.status, register_exceptions.c.decision,
                         register_exceptions.c.closed_at).where(
    register_exceptions.c.fingerprint == bindparam("fp"))


def pair_kept_apart(uow: SqlUnitOfWork, person_a: str, person_b: str) -> bool:
    """Whether the last decision about the pair (by when it was taken) is ``different-
    people`` — a register owner's, or an un-merge — with no question about it open: no
    automatic merge may join them then. A pair asked again since (``reopen``) is open to the
    answer again. (By decision time, not by when raised: a reopen raised in the same instant
    as the decision it reopens must not tie with it. Two closed in the same instant — a
    merge closing the pair's question, then the un-merge undoing it — tie towards
    ``different-people``: never merge behind an owner's back.)"""
    questions = uow.connection.execute(
        _PAIR_QUESTIONS, {"fp": pair_fingerprint(person_a, person_b)}).all()
    if any(q.status in LIVE for q in questions):
        return False
    decided = [q for q in questions if q.closed_at is not None]
    return bool(decided) and max(
        decided, key=lambda q: (q.closed_at, q.decision == DIFFERENT_PEOPLE)
    ).decision == DIFFERENT_PEOPLE


# A live question, or one a person decided, holds the same pair of values back; one the
# system closed (an un-merge took the value away: ``merges``) does not, as in the sync.
_SAME_FINGERPRINT = (select(register_exceptions.c.id)
                     .where(and_(register_exceptions.c.person_id == bindparam("pid"),
                                 register_exceptions.c.fingerprint == bindparam("fp"),
                                 or_(register_exceptions.c.status.in_(sorted(LIVE)),
                                     register_exceptions.c.closed_by.is_(None),
                                     register_exceptions.c.closed_by != SYSTEM)))
                     .limit(1))


def demographics_disagree(person: Person, command: Command) -> list[str]:
    """The checked demographics the command's record gives otherwise than the register
    holds for the person, both known (after recording: a value the register took agrees).
    In memory: the common path costs no query."""
    ref = command.person
    return [name for name in CHECKED_DEMOGRAPHICS
            if getattr(ref, name) is not None and getattr(person, name) is not None
            and getattr(ref, name) != getattr(person, name)]


def open_demographics_conflict(uow: SqlUnitOfWork, person: Person, fact: Fact,
                               fields: list[str], clock: Clock) -> list[str]:
    """Open an ``identity-demographics-conflict`` exception on ``person`` for each field the
    record of ``fact`` (linked by NHS number) gives otherwise than the register: the link
    stands; a person decides which value is right. One per person, field and pair of values,
    whichever source tells which (a decided one is not raised again for the same two values
    when the source whose value lost sends it again). Returns the ids opened."""
    prov = fact.command.provenance
    findings = []
    for name in fields:
        held, told = getattr(person, name), getattr(fact.command.person, name)
        fp = _conflict_fingerprint(person.id, name, held, told)
        if uow.connection.execute(_SAME_FINGERPRINT, {"pid": person.id, "fp": fp}).first():
            continue
        holders = [f for f in person.facts
                   if f is not fact and getattr(f.command.person, name) == held]
        held_by = holders[0].source if holders else REGISTER_SOURCE
        detail = {
            "field": f"person.{name}",
            "rule": "nhs-number-link-demographics-agree",
            "linked_by": "nhs-number",
            "values": [
                {"source": held_by, "value": _plain(held), "held_by_register": True,
                 "facts": [f.cite() for f in holders if f.source == held_by][:5]},
                {"source": prov.source, "value": _plain(told), "held_by_register": False,
                 "facts": [fact.cite()]},
            ],
            "source": prov.source,
            "source_ref": prov.source_ref,
        }
        summary = (f"A record from {prov.source} linked by NHS number gives another "
                   f"{name.replace('_', ' ')} than the register holds (from {held_by}): "
                   "the link stands; decide which is right (accept-source:<source>), "
                   "resolve or dismiss")
        findings.append(Finding(DEMOGRAPHICS_KIND, fp, summary, detail))
    if not findings:
        return []
    uow.persons.flush()  # the exception's person row must exist (batch mode defers it)
    opened = ExceptionStore(uow.connection).open_many(person.id, findings, clock.now())
    for _, kind in opened:
        # Which field and whose record: never the values.
        log.info("identity demographics conflict opened", extra={
            "person_id": person.id, "kind": kind, "fields": fields, "source": prov.source})
    return [exception_id for exception_id, _ in opened]


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _conflict_fingerprint(person_id: str, name: str, one: Any, other: Any) -> str:
    """Kind, field and a digest of the person and the two values as a set: not the source nor
    which value the register held, so a decided pair is the same question when the other
    source sends its value back (fingerprints carry no birth date: the values are in the
    detail only)."""
    low, high = sorted((str(_plain(one)), str(_plain(other))))
    digest = hashlib.sha256(f"{person_id}|{name}|{low}|{high}".encode()).hexdigest()[:16]
    return fingerprint(DEMOGRAPHICS_KIND, (f"person.{name}", digest))
