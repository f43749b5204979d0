"""Identity matching over the whole register: the first pass of ``s117hub reconcile``.

The write path matches a record when it arrives, against the people registered *then*. A source
onboarded with years of history, or a council whose records came before the trust's, leaves
people on the register who were never compared with those registered after them. This pass
compares every person without a valid NHS number with the people who share a blocking key
(the ``person_blocking_keys`` table the write path looks up, so the same candidates, at most
``MAX_CANDIDATES`` by id) and decides with the same ``IdentityMatcher`` and thresholds
(``[identity]``, no name frequencies):

- link: the person is merged into the candidate by ``merges.merge_persons`` (recorded in
  ``person_merges``, so ``unmerge`` undoes it), unless the pair was raised before (a register
  owner's ``different-people`` stands) or the candidate already holds a record of the same
  source (each source holds a person once: review, as in the write path);
- review: an ``identity-uncertain`` exception on the person naming the candidate, with the
  write path's detail and fingerprint (a pair already raised or decided is not raised again);
- different valid NHS numbers are never linked (the matcher rules them out; the merge refuses).

Scoring reads a snapshot and runs in memory; the decisions are then applied one transaction
per person on PostgreSQL (as the sweep: no lock held while waiting for another) and per page
on SQLite, each checked again against the register as it is by then. On PostgreSQL with
``workers`` > 1 the decisions are split by connected group of people (no person in two
groups) among forked processes, each with its own connections; SQLite has one writer, so
there they are applied by one process.
Logs carry person ids and counts, never names or NHS numbers.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine, and_, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from reconciliation.comparisons import Prepared
from reconciliation.exceptions import SYSTEM
from reconciliation.identity import Candidate, IdentityMatcher, MatchDecision
from register_core.adapters.database import engine_for_child
from register_core.adapters.register_pages import lock_people, read_page
from register_core.adapters.repository import MAX_CANDIDATES
from register_core.adapters.tables import (
    person_blocking_keys,
    person_identifiers,
    person_merges,
    persons,
    register_exceptions,
)
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.errors import IdentityConflict, RegisterError
from register_core.domain.position import Policy
from register_core.ports import Clock

from .applied import Applied
from .identity import (
    SOURCE_ALREADY_LINKED,
    matcher_for,
    open_pair_review,
    pair_fingerprint,
    pair_known,
)
from .merges import LoadedPair, MergeOutcome, merge_loaded, merge_persons, open_merge_of
from .outbound import ever_told
from .reconcile import commit_without_waiting, run_in_batches, sync_people

log = logging.getLogger(__name__)

T = TypeVar("T")

SOURCE, SOURCE_REF = "register", "reconcile"  # provenance of the merges and reviews made here
PAGE = 500  # decisions per bulk transaction (and per one-by-one transaction on SQLite)
PARALLEL_APPLY_FROM = 2_000  # decisions below which forking costs more than it saves
_READ_CHUNK = 2000  # ids per ``IN (...)`` read of demographics

_OWN = person_blocking_keys.alias("own_key")
_SHARED = person_blocking_keys.alias("shared_key")
# (person without an NHS number, someone sharing one of their keys): merged people have no
# keys (``drop_blocking_keys``), so they are nobody's candidate, as in the write path.
_PAIRS = (select(_OWN.c.person_id, _SHARED.c.person_id)
          .select_from(persons.join(_OWN, _OWN.c.person_id == persons.c.id)
                       .join(_SHARED, and_(_SHARED.c.key == _OWN.c.key,
                                           _SHARED.c.person_id != _OWN.c.person_id)))
          .where(persons.c.nhs_number.is_(None)))
_COLUMNS = ("nhs_number", "nhs_number_verified", "family_name", "given_name", "birth_date",
            "sex", "postcode", "gp_practice_ods")
_DEMOGRAPHICS = (select(persons.c.id, *(persons.c[name] for name in _COLUMNS))
                 .where(persons.c.id.in_(bindparam("ids", expanding=True))))
_MERGED = select(person_merges.c.merged_id).where(person_merges.c.unmerged_at.is_(None))
# Which sources hold a record of each of two people: a look-up, not the two whole journals
# (``merge_persons`` reads those, locked, right after).
_SOURCES_OF = (select(person_identifiers.c.person_id, person_identifiers.c.source)
               .where(person_identifiers.c.person_id.in_(bindparam("ids", expanding=True))))
_IDENTIFIERS_AMONG = (select(person_identifiers.c.person_id, person_identifiers.c.source,
                             person_identifiers.c.value)
                      .where(person_identifiers.c.person_id.in_(
                          bindparam("ids", expanding=True)))
                      .order_by(person_identifiers.c.id))
_MERGED_AMONG = select(person_merges.c.merged_id).where(
    person_merges.c.merged_id.in_(bindparam("ids", expanding=True)),
    person_merges.c.unmerged_at.is_(None))
_KNOWN_PAIRS = select(register_exceptions.c.fingerprint).where(
    register_exceptions.c.fingerprint.in_(bindparam("fps", expanding=True)))

# Called in the decision's transaction with each person whose register values a merge
# changed, and with each person it emptied that a partner was told of before (the merge is
# news to that partner even when no value moved): to queue the outbound change, as the
# sweep's ``on_change`` (``enqueue_status_changes`` decides who is told).
OnMerge = Callable[[Connection, Applied], object]


@dataclass(frozen=True)
class Proposal:
    """What the matcher decided for one person (``person_id``) against the register."""

    person_id: str
    decision: MatchDecision


@dataclass
class MatchPlan:
    compared: int = 0  # people without a valid NHS number who had a candidate
    pairs: int = 0  # (person, candidate) comparisons scored
    proposals: list[Proposal] = field(default_factory=list)  # links and reviews, by person id


@dataclass(kw_only=True)
class MatchingReport:
    compared: int = 0
    pairs: int = 0
    linked: int = 0  # merged into their match
    reviews_opened: int = 0  # identity-uncertain exceptions opened
    known: int = 0  # pairs raised before (live, or decided): left to the person's decision
    deferred: int = 0  # one side merged or changed since scoring: the next run decides
    failed: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)  # (survivor, merged)
    # Exceptions the merged people's detectors opened or resolved (bulk merges only).
    opened: Counter[str] = field(default_factory=Counter)
    auto_resolved: Counter[str] = field(default_factory=Counter)

    def merge(self, other: MatchingReport) -> None:
        self.linked += other.linked
        self.opened.update(other.opened)
        self.auto_resolved.update(other.auto_resolved)
        self.reviews_opened += other.reviews_opened
        self.known += other.known
        self.deferred += other.deferred
        self.failed.extend(other.failed)
        self.merges.extend(other.merges)


# -- planning: a snapshot, scored in memory ----------------------------------------------------

def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _read_candidates(engine: Engine) -> tuple[dict[str, list[str]], dict[str, Candidate]]:
    """Who to compare with whom (each list sorted and capped as the write path's query), and
    everyone's demographics as they are now."""
    shared: dict[str, set[str]] = defaultdict(set)
    with engine.connect() as conn:
        merged = set(conn.execute(_MERGED).scalars())
        for own, other in conn.execute(_PAIRS):
            if other not in merged:
                shared[own].add(other)
        blocks = {pid: sorted(others)[:MAX_CANDIDATES] for pid, others in shared.items()
                  if pid not in merged}
        wanted = sorted(set(blocks).union(*blocks.values()))
        people: dict[str, Candidate] = {}
        for ids in _chunks(wanted, _READ_CHUNK):
            for row in conn.execute(_DEMOGRAPHICS, {"ids": list(ids)}):
                people[row[0]] = Candidate(id=row[0], **dict(zip(_COLUMNS, row[1:],
                                                                 strict=True)))
    return blocks, people


@dataclass
class _Scoring:
    matcher: IdentityMatcher
    blocks: dict[str, list[str]]
    people: dict[str, Candidate]
    order: list[str]


def _score(scoring: _Scoring, start: int, stop: int) -> list[Proposal]:
    matcher, blocks, people = scoring.matcher, scoring.blocks, scoring.people
    prepared: dict[str, Prepared] = {}

    def prep(pid: str) -> Prepared:
        found = prepared.get(pid)
        if found is None:
            found = prepared[pid] = Prepared(people[pid])
        return found

    out: list[Proposal] = []
    for pid in scoring.order[start:stop]:
        block = [c for c in blocks[pid] if c in people]
        if not block:
            continue
        verdict = matcher.triage(prep(pid), [prep(c) for c in block])
        if verdict.outcome == "new":
            continue
        # The explained decision (what the exception shows) only for the few that need it.
        decision = matcher.decide(people[pid], [people[c] for c in block])
        out.append(Proposal(pid, decision))
    return out


_FORKED: _Scoring | None = None  # what forked workers inherit (copy-on-write)


def _forked(bounds: tuple[int, int]) -> list[Proposal]:
    assert _FORKED is not None
    return _score(_FORKED, *bounds)


def plan_matches(engine: Engine, policy: Policy | None, *, workers: int = 1) -> MatchPlan:
    """Score every person without a valid NHS number against their candidates; nothing is
    written. ``workers`` > 1 forks processes for the scoring (POSIX)."""
    global _FORKED
    matcher = matcher_for(policy)
    if matcher is None:
        return MatchPlan()
    blocks, people = _read_candidates(engine)
    # Persons hold only valid NHS numbers (the write path refuses others), so the query's
    # "no number" is "no valid number": those with one were found exactly on arrival.
    order = sorted(pid for pid in blocks if pid in people)
    scoring = _Scoring(matcher, blocks, people, order)
    plan = MatchPlan(compared=len(order), pairs=sum(len(blocks[pid]) for pid in order))
    if workers <= 1 or len(order) < 5_000:  # forking costs more than it saves
        plan.proposals = _score(scoring, 0, len(order))
        return plan
    step = -(-len(order) // (workers * 4))  # a few chunks per worker evens out the load
    bounds = [(k, min(k + step, len(order))) for k in range(0, len(order), step)]
    _FORKED = scoring
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            plan.proposals = [p for part in pool.map(_forked, bounds) for p in part]
    finally:
        _FORKED = None
    return plan


# -- applying: each decision checked again against the register as it is now ------------------

@dataclass
class _Apply:
    engine: Engine
    clock: Clock
    policy: Policy | None
    on_merge: OnMerge | None
    joined: dict[str, str] = field(default_factory=dict)  # merged -> survivor, committed
    joining: dict[str, str] = field(default_factory=dict)  # the same, in the open transaction

    def one(self, uow: SqlUnitOfWork, proposal: Proposal, report: MatchingReport) -> None:
        decision = proposal.decision
        person_id, candidate_id = proposal.person_id, decision.candidate_id
        assert candidate_id is not None
        if self._root(person_id) == self._root(candidate_id):
            return  # merged the other way round already (two records without a number)
        if (self._root(person_id) != person_id or self._root(candidate_id) != candidate_id
                or open_merge_of(uow, person_id) or open_merge_of(uow, candidate_id)):
            report.deferred += 1  # one of them was merged since the snapshot
            return
        if decision.outcome == "review":
            self._review(uow, person_id, decision, report)
            return
        if pair_known(uow, person_id, candidate_id):
            report.known += 1  # raised before: a register owner's decision stands
            return
        sources: dict[str, set[str]] = {person_id: set(), candidate_id: set()}
        for owner, source in uow.connection.execute(_SOURCES_OF, {
                "ids": [person_id, candidate_id]}):
            sources[owner].add(source)
        if sources[person_id] & sources[candidate_id]:
            # Each source holds a person once: a second record of the same source is a
            # second person, or a duplicate the source should merge (as the write path).
            self._review(uow, person_id, MatchDecision(
                "review", candidate_id, decision.score, decision.probability,
                decision.contributions, decision.levels, SOURCE_ALREADY_LINKED), report)
            return
        try:
            outcome = merge_persons(uow, candidate_id, person_id, source=SOURCE,
                                    source_ref=SOURCE_REF, by=SYSTEM, clock=self.clock,
                                    policy=self.policy)
        except IdentityConflict:
            report.deferred += 1  # a number arrived since the snapshot; they differ
            return
        self._tell(uow.connection, [outcome])
        report.linked += 1
        report.merges.append((candidate_id, person_id))
        self.joining[person_id] = candidate_id

    def page(self, proposals: Sequence[Proposal], per_tx: int) -> MatchingReport:
        """Links merged in bulk (``merges.merge_loaded``, one transaction); reviews, and
        links the bulk pass leaves (a person in two proposals, locked elsewhere, sources
        that overlap), through ``one`` in transactions of ``per_tx``."""
        report = MatchingReport()
        eligible: list[Proposal] = []
        rest: list[Proposal] = []
        touched: set[str] = set()
        for proposal in proposals:
            pid, cid = proposal.person_id, proposal.decision.candidate_id
            assert cid is not None
            if proposal.decision.outcome != "link" or pid in touched or cid in touched:
                rest.append(proposal)
            elif self._root(pid) == self._root(cid):
                continue  # merged the other way round already
            elif self._root(pid) != pid or self._root(cid) != cid:
                report.deferred += 1  # one of them was merged since the snapshot
            else:
                touched.update((pid, cid))
                eligible.append(proposal)
        if eligible:
            part = MatchingReport()
            self._begin()
            try:
                with SqlUnitOfWork(self.engine) as uow:
                    commit_without_waiting(uow)
                    uow.persons.batch_mode()
                    rest += self._merge_bulk(uow, eligible, part)
                    uow.commit()
            except (RegisterError, SQLAlchemyError):
                log.warning("bulk merge page failed; taking its links one by one",
                            exc_info=True)
                self._begin()
                rest = eligible + rest
            else:
                self._committed()
                report.merge(part)
        for chunk in _chunks(rest, per_tx):
            report.merge(self.batch(chunk))
        return report

    def _merge_bulk(self, uow: SqlUnitOfWork, links: Sequence[Proposal],
                    report: MatchingReport) -> list[Proposal]:
        """Check and merge ``links`` (each person in one) together; returns those left to
        ``one`` (locked elsewhere, or a source on both sides: a review)."""
        conn = uow.connection
        ids = sorted({p.person_id for p in links} | {p.decision.candidate_id or ""
                                                      for p in links})
        locked = lock_people(conn, ids)
        merged_before = set(conn.execute(_MERGED_AMONG, {"ids": ids}).scalars())
        fingerprints = {p.person_id: pair_fingerprint(p.person_id, p.decision.candidate_id
                                                      or "") for p in links}
        known = set(conn.execute(_KNOWN_PAIRS, {"fps": sorted(set(fingerprints.values()))})
                    .scalars())
        sources: dict[str, set[str]] = defaultdict(set)
        for owner, source in conn.execute(_SOURCES_OF, {"ids": ids}):
            sources[owner].add(source)
        rest: list[Proposal] = []
        ready: list[Proposal] = []
        for proposal in links:
            pid, cid = proposal.person_id, proposal.decision.candidate_id or ""
            if pid not in locked or cid not in locked or sources[pid] & sources[cid]:
                rest.append(proposal)
            elif pid in merged_before or cid in merged_before:
                report.deferred += 1
            elif fingerprints[pid] in known:
                report.known += 1  # raised before: a register owner's decision stands
            else:
                ready.append(proposal)
        wanted = sorted({p.person_id for p in ready} | {p.decision.candidate_id or ""
                                                        for p in ready})
        people = {snapshot.person.id: snapshot for snapshot in read_page(conn, wanted)}
        identifiers: dict[str, list[list[str]]] = defaultdict(list)
        for owner, source, value in conn.execute(_IDENTIFIERS_AMONG, {
                "ids": [p.person_id for p in ready]}):
            identifiers[owner].append([source, value])
        pairs: list[LoadedPair] = []
        for proposal in ready:
            merged = people.get(proposal.person_id)
            survivor = people.get(proposal.decision.candidate_id or "")
            if merged is None or survivor is None or (
                    merged.person.nhs_number and survivor.person.nhs_number
                    and merged.person.nhs_number != survivor.person.nhs_number):
                report.deferred += 1  # gone, or a number arrived since the snapshot
                continue
            pairs.append(LoadedPair(survivor, merged, identifiers[proposal.person_id]))
        outcomes = merge_loaded(uow, pairs, source=SOURCE, source_ref=SOURCE_REF, by=SYSTEM,
                                clock=self.clock, policy=self.policy)
        uow.persons.flush()
        # A merge is a register change: both people's exceptions and checkpoints follow it
        # here, on the positions it computed, so the sweep need not read them again.
        synced = sync_people(uow, [
            (person, applied.position) for pair, outcome in zip(pairs, outcomes, strict=True)
            for person, applied in ((pair.survivor.person, outcome.survivor),
                                    (pair.merged.person, outcome.merged))
            if applied.position is not None], self.clock, self.policy)
        for result in synced.values():
            report.opened.update(kind for _, kind in result.opened)
            report.auto_resolved.update(kind for _, kind in result.auto_resolved)
        self._tell(conn, outcomes)
        for pair in pairs:
            survivor_id, merged_id = pair.survivor.person.id, pair.merged.person.id
            report.linked += 1
            report.merges.append((survivor_id, merged_id))
            self.joining[merged_id] = survivor_id
        return rest

    def _tell(self, conn: Connection, outcomes: Sequence[MergeOutcome]) -> None:
        """``on_merge`` for each person whose register values moved, and for each person a
        merge emptied (no facts left: ``enqueue_status_changes`` looks for the link then) whose
        values did not move but whom a partner was told of: one read for the page picks those
        out, so people no partner heard of cost nothing more. The survivor is told with them."""
        if self.on_merge is None:
            return
        everyone = [applied for outcome in outcomes
                    for applied in (outcome.survivor, outcome.merged)]
        told = ever_told(conn, [applied.person_id for applied in everyone
                                if not applied.changes and applied.fact_seq < 1])
        for applied in everyone:
            if applied.changes or applied.person_id in told:
                self.on_merge(conn, applied)

    def _review(self, uow: SqlUnitOfWork, person_id: str, decision: MatchDecision,
                report: MatchingReport) -> None:
        opened = open_pair_review(uow, person_id, decision, source=SOURCE,
                                  source_ref=SOURCE_REF, clock=self.clock, policy=self.policy)
        if opened is None:
            report.known += 1
        else:
            report.reviews_opened += 1

    def _root(self, person_id: str) -> str:
        while True:
            survivor = self.joining.get(person_id) or self.joined.get(person_id)
            if survivor is None:
                return person_id
            person_id = survivor

    def batch(self, proposals: Sequence[Proposal]) -> MatchingReport:
        """One transaction for the batch, as the sweep's; links this transaction made count
        as joined only once it commits."""
        return run_in_batches(self.engine, proposals, self.one, MatchingReport,
                              what="matching", person_of=lambda p: p.person_id,
                              on_begin=self._begin, on_commit=self._committed)

    def _begin(self) -> None:
        self.joining = {}

    def _committed(self) -> None:
        self.joined.update(self.joining)
        self.joining = {}


def _apply_all(job: _Apply, proposals: Sequence[Proposal], page: int,
               progress: Callable[[int], object] | None = None) -> MatchingReport:
    report = MatchingReport()
    per_tx = 1 if job.engine.dialect.name == "postgresql" else page
    for chunk in _chunks(proposals, page):
        report.merge(job.page(chunk, per_tx))
        if progress is not None:
            progress(len(chunk))
    return report


def _groups(proposals: Sequence[Proposal], count: int) -> list[list[Proposal]]:
    """``proposals`` in ``count`` groups (each in plan order), no person in two: every
    decision touching a person lands where the others touching them do, so one process
    sees every merge a decision depends on."""
    parent: dict[str, str] = {}

    def root(pid: str) -> str:
        parent.setdefault(pid, pid)
        while parent[pid] != pid:
            parent[pid] = parent[parent[pid]]
            pid = parent[pid]
        return pid

    for proposal in proposals:
        a, b = root(proposal.person_id), root(proposal.decision.candidate_id or "")
        if a != b:
            parent[max(a, b)] = min(a, b)
    sizes: dict[str, int] = defaultdict(int)
    for proposal in proposals:
        sizes[root(proposal.person_id)] += 1
    # Largest components first, each to the lightest group: the groups come out even.
    load = [0] * count
    group_of: dict[str, int] = {}
    for component, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        lightest = load.index(min(load))
        group_of[component] = lightest
        load[lightest] += size
    groups: list[list[Proposal]] = [[] for _ in range(count)]
    for proposal in proposals:
        groups[group_of[root(proposal.person_id)]].append(proposal)
    return [group for group in groups if group]


_APPLYING: tuple[_Apply, int] | None = None  # what forked appliers inherit
_APPLIER: _Apply | None = None  # a forked applier's own job, with its own engine


def _start_applier() -> None:
    global _APPLIER
    assert _APPLYING is not None
    job, _ = _APPLYING
    _APPLIER = _Apply(engine_for_child(job.engine), job.clock, job.policy, job.on_merge)


def _forked_apply(group: list[Proposal]) -> tuple[int, MatchingReport]:
    assert _APPLYING is not None and _APPLIER is not None
    return len(group), _apply_all(_APPLIER, group, _APPLYING[1])


def apply_matches(engine: Engine, plan: MatchPlan, clock: Clock, policy: Policy | None = None,
                  *, progress: Callable[[int], object] | None = None,
                  on_merge: OnMerge | None = None, page: int = PAGE,
                  workers: int = 1) -> MatchingReport:
    """Merge the links and open the reviews of ``plan``; ``progress(n)`` after each batch.
    ``workers`` > 1 forks that many processes (POSIX) on PostgreSQL for plans of
    ``PARALLEL_APPLY_FROM`` decisions or more."""
    global _APPLYING
    job = _Apply(engine, clock, policy, on_merge)
    report = MatchingReport(compared=plan.compared, pairs=plan.pairs)
    if (workers <= 1 or engine.dialect.name != "postgresql"
            or len(plan.proposals) < PARALLEL_APPLY_FROM):
        report.merge(_apply_all(job, plan.proposals, page, progress))
    else:
        engine.dispose()  # no pooled connection may be inherited by the workers
        _APPLYING = (job, page)
        try:
            with multiprocessing.get_context("fork").Pool(workers, _start_applier) as pool:
                groups = _groups(plan.proposals, workers * 4)
                for done, part in pool.imap_unordered(_forked_apply, groups):
                    report.merge(part)
                    if progress is not None:
                        progress(done)
        finally:
            _APPLYING = None
    log.info("bulk identity matching done", extra={
        "compared": report.compared, "linked": report.linked,
        "reviews_opened": report.reviews_opened, "known": report.known,
        "deferred": report.deferred, "failed": len(report.failed)})
    return report


def match_register(engine: Engine, clock: Clock, policy: Policy | None = None, *,
                   on_merge: OnMerge | None = None, workers: int = 1,
                   page: int = PAGE) -> MatchingReport:
    """``plan_matches`` then ``apply_matches``, for callers that need no progress."""
    plan = plan_matches(engine, policy, workers=workers)
    return apply_matches(engine, plan, clock, policy, on_merge=on_merge, page=page,
                         workers=workers)


