"""What a register owner does with an exception: assign, resolve (maybe with a correction),
dismiss. The rules are ``reconciliation.exceptions``; this runs them in a unit of work.

An ``identity-demographics-conflict`` settled ``accept-source:<source>`` sets the register's
value to that source's (a register correction, as below) when it holds another.

A ``source-conflict`` settled ``accept-source:<source>`` journals the decision itself
(``RecordSourceAccepted``, recorded as a correction is): for this person, this field group
and these competing values, that source's word stands. The position honours it as it would a
matching ``[precedence]`` rule, ahead of the rules, and cites it in explain; the conflict is
not raised again while the sources tell the same values.

A correction is itself provenance: it is recorded as a fact through the one write path
(``handlers.record_command``) with source ``register``, source_ref ``exception:<id>`` and the
deciding token as ``recorded_by``, in the same transaction as the decision. The person's
exceptions are then synced again, so what the correction settled closes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import select

from reconciliation.detectors import DetectorPolicy
from reconciliation.exceptions import (
    ACCEPT_SOURCE,
    DEMOGRAPHICS_KIND,
    DIFFERENT_PEOPLE,
    LIVE,
    SAME_PERSON,
    SOURCE_CONFLICT_KIND,
    PersonMergedSince,
    accept_source_question,
    check_assignee,
    check_reason,
    check_reopenable,
    closing_status,
    require_live,
)
from reconciliation.findings import Finding
from register_core.adapters.exceptions_store import ExceptionStore, register_identifier
from register_core.adapters.tables import register_exceptions
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordPersonDetails,
    RecordSourceAccepted,
)
from register_core.domain.errors import InvalidValue, NotFound
from register_core.domain.position import Policy
from register_core.ports import Clock
from register_core.services.handlers import record_command, record_for_person

from .identity import CHECKED_DEMOGRAPHICS
from .merges import merge_persons, open_merge_of
from .outbound import enqueue_status_changes
from .reconcile import reconcile_person

# Builds the correcting command for the person the exception is about.
Correction = Callable[[PersonRef, Provenance], Command]
REGISTER_SOURCE = "register"


def _live_row(store: ExceptionStore, exception_id: str) -> dict[str, Any]:
    """The exception, locked after its person (the order the sync takes them in)."""
    row = store.get(exception_id)
    if row is not None and row["person_id"] is not None:
        store.lock_person(row["person_id"])
        row = store.get(exception_id, for_update=True)
    if row is None:
        raise NotFound("no exception with this id", field="exception_id",
                       rule="exception-exists")
    require_live(row["status"])
    return row


def assign_exception(uow: SqlUnitOfWork, exception_id: str, assignee: str) -> dict[str, Any]:
    store = ExceptionStore(uow.connection)
    _live_row(store, exception_id)
    store.assign(exception_id, check_assignee(assignee))
    return store.get(exception_id) or {}


def close_exception(uow: SqlUnitOfWork, clock: Clock, exception_id: str, *, decision: str,
                    reason: str, by: str, correction: Correction | None = None,
                    policy: Policy | None = None,
                    rules: DetectorPolicy | None = None) -> dict[str, Any]:
    """Resolve or dismiss (``decision`` says which); the caller commits.

    ``by`` is who decided (the token id): it is ``closed_by`` and the correction's
    ``recorded_by``. On an identity-uncertain exception, ``same-person`` merges the
    exception's (newer) person into the candidate it names, ``different-people`` keeps
    them apart for good (the pair's exception stays closed, so it is not raised again).
    """
    store = ExceptionStore(uow.connection)
    row = _live_row(store, exception_id)
    status = closing_status(decision.strip(), correcting=correction is not None,
                            kind=row["kind"], detail=row["detail"])
    reason = check_reason(reason)
    person_id = row["person_id"]
    recorded = False  # whether the decision changed the person's journal
    if decision.strip() == SAME_PERSON:
        return _same_person(uow, clock, store, row, reason=reason, by=by, policy=policy,
                            rules=rules)
    if decision.strip() == DIFFERENT_PEOPLE:
        _require_not_merged_together(uow, row)
    if correction is not None:
        if person_id is None:
            raise InvalidValue("this exception names no person to correct", field="apply",
                               rule="exception-correction")
        prov = Provenance(source=REGISTER_SOURCE, source_ref=f"exception:{exception_id}",
                          received_at=clock.now(), recorded_by=by)
        applied = record_command(correction(_person_ref(uow, person_id), prov), uow, clock,
                                 policy)
        # A correction is a register change like any other: partners hear of a status
        # change in the same transaction, due five working days from the decision.
        enqueue_status_changes(uow.connection, applied, prov.received_at, clock.now())
        recorded = True
    elif row["kind"] == DEMOGRAPHICS_KIND and decision.strip().startswith(ACCEPT_SOURCE):
        recorded = _take_accepted_value(
            uow, clock, row, decision.strip().removeprefix(ACCEPT_SOURCE).strip(), by=by,
            policy=policy) is not None
    elif row["kind"] == SOURCE_CONFLICT_KIND and decision.strip().startswith(ACCEPT_SOURCE):
        _accept_source(uow, clock, row, decision.strip().removeprefix(ACCEPT_SOURCE).strip(),
                       by=by, policy=policy)
        recorded = True
    store.close([exception_id], status=status, decision=decision.strip(), reason=reason,
                closed_by=by, at=clock.now())
    if recorded:
        # Detectors, exceptions and the sweep checkpoint follow the changed journal.
        reconcile_person(uow, person_id, clock, policy, rules=rules)
    return store.get(exception_id) or {}


def _accept_source(uow: SqlUnitOfWork, clock: Clock, row: dict[str, Any], source: str, *,
                   by: str, policy: Policy | None) -> None:
    """Journal the owner's decision on the conflict's question for ``source`` and recompute
    the person with it (positions, history, partners told of a status change)."""
    question = accept_source_question(source, row["detail"])
    if row["person_id"] is None:
        raise InvalidValue("this exception names no person", field="decision",
                           rule="exception-decision")
    since = open_merge_of(uow, row["person_id"])
    if since is not None:
        raise PersonMergedSince(
            f"the person {row['person_id']} was merged into {since['survivor_id']} after "
            "this exception was raised: decide on that person's record, or un-merge first",
            field="decision", rule="merge-live-person")
    prov = Provenance(source=REGISTER_SOURCE, source_ref=f"exception:{row['id']}",
                      received_at=clock.now(), recorded_by=by)
    applied = record_for_person(row["person_id"], RecordSourceAccepted(
        person=PersonRef(), provenance=prov, exception_id=row["id"], source=source,
        field=question.field, date=clock.today(),
        day=date.fromisoformat(question.day) if question.day else None,
        told=question.told), uow, clock, policy)
    enqueue_status_changes(uow.connection, applied, prov.received_at, clock.now())


def _take_accepted_value(uow: SqlUnitOfWork, clock: Clock, row: dict[str, Any],
                         source: str, *, by: str, policy: Policy | None
                         ) -> Correction | None:
    """The register takes the accepted source's value of the field an
    ``identity-demographics-conflict`` names, as a register correction (source ``register``,
    source_ref ``exception:<id>``), when it holds another; returns it (None: nothing to
    record, the register already holds that value)."""
    detail = row["detail"] or {}
    name = str(detail.get("field", "")).removeprefix("person.")
    told = [v.get("value") for v in detail.get("values", [])
            if isinstance(v, dict) and v.get("source") == source]
    person = uow.persons.get(row["person_id"]) if row["person_id"] else None
    if name not in CHECKED_DEMOGRAPHICS or not told or told[0] is None or person is None:
        raise InvalidValue("this exception names no value of that source to accept",
                           field="decision", rule="exception-decision")
    since = open_merge_of(uow, person.id)
    if since is not None:
        raise PersonMergedSince(
            f"the person {person.id} was merged into {since['survivor_id']} after this "
            "exception was raised: decide on that person's record, or un-merge first",
            field="decision", rule="merge-live-person")
    value = date.fromisoformat(told[0]) if name.endswith("_date") else told[0]
    if getattr(person, name) == value:
        return None

    def correction(person_ref: PersonRef, prov: Provenance) -> Command:
        return RecordPersonDetails(person=replace(person_ref, **{name: value}),
                                   provenance=prov)

    prov = Provenance(source=REGISTER_SOURCE, source_ref=f"exception:{row['id']}",
                      received_at=clock.now(), recorded_by=by)
    applied = record_command(correction(_person_ref(uow, row["person_id"]), prov), uow, clock,
                             policy)
    enqueue_status_changes(uow.connection, applied, prov.received_at, clock.now())
    return correction


def _same_person(uow: SqlUnitOfWork, clock: Clock, store: ExceptionStore,
                 row: dict[str, Any], *, reason: str, by: str, policy: Policy | None,
                 rules: DetectorPolicy | None) -> dict[str, Any]:
    """Merge the exception's person into the candidate: the register's own merge, undone
    by ``merges.unmerge`` exactly."""
    candidate_id = (row["detail"] or {}).get("candidate_person_id")
    if not candidate_id or row["person_id"] is None:
        raise InvalidValue("this exception names no two people to merge", field="decision",
                           rule="exception-decision")
    _require_unmerged(uow, row["person_id"], candidate_id)
    outcome = merge_persons(uow, candidate_id, row["person_id"], source=REGISTER_SOURCE,
                            source_ref=f"exception:{row['id']}", by=by, clock=clock,
                            policy=policy)
    for applied in (outcome.survivor, outcome.merged):
        enqueue_status_changes(uow.connection, applied, clock.now(), clock.now())
    store.close([row["id"]], status="resolved", decision=SAME_PERSON, reason=reason,
                closed_by=by, at=clock.now())
    for person_id in (candidate_id, row["person_id"]):
        reconcile_person(uow, person_id, clock, policy, rules=rules)
    return store.get(row["id"]) or {}


def _require_unmerged(uow: SqlUnitOfWork, person_id: str, candidate_id: str) -> None:
    """Both people of an identity question still hold their records. Following a merge to
    its survivor is not clearly right (an A40's survivor is the source's other record, with
    its own demographics): the owner decides about that person instead."""
    for pid, role in ((person_id, "exception's person"), (candidate_id, "candidate")):
        since = open_merge_of(uow, pid)
        if since is not None:
            raise PersonMergedSince(
                f"the {role} {pid} was merged into {since['survivor_id']} after this "
                "exception was raised, so there is nothing left to decide: dismiss it, or "
                f"un-merge {pid} first", field="decision", rule="merge-live-person")


def _require_not_merged_together(uow: SqlUnitOfWork, row: dict[str, Any]) -> None:
    """``different-people`` on a pair the register holds as one (either merged into the
    other, the merge not undone) would record "kept apart" while the merged record's
    messages still land on the survivor: refused (409), the owner un-merges first (which
    records the pair as different people itself)."""
    person_id = row["person_id"]
    candidate_id = (row["detail"] or {}).get("candidate_person_id")
    if person_id is None or not candidate_id:
        return
    for merged_id, other_id in ((person_id, candidate_id), (candidate_id, person_id)):
        merge = open_merge_of(uow, merged_id)
        if merge is not None and merge["survivor_id"] == other_id:
            raise PersonMergedSince(
                f"{merged_id} is merged into {other_id} (merge {merge['id']}): the register "
                f"holds them as one person; un-merge {merged_id} first "
                "(POST /api/v1/people/{id}/unmerge), which keeps them apart",
                field="decision", rule="merge-live-person")


def reopen_identity_question(uow: SqlUnitOfWork, clock: Clock, exception_id: str, *,
                             reason: str, by: str) -> dict[str, Any]:
    """Ask again about a pair a person kept apart (``different-people``, or an un-merge):
    a new open ``identity-uncertain`` exception on the same person and pair, citing the
    decision it reopens, which stays as it was (the record of what was decided). Answering
    it ``same-person`` merges them; ``different-people`` keeps them apart again. The
    caller commits."""
    store = ExceptionStore(uow.connection)
    row = store.get(exception_id)
    if row is None:
        raise NotFound("no exception with this id", field="exception_id",
                       rule="exception-exists")
    check_reopenable(row["kind"], row["decision"])
    reason = check_reason(reason)
    person_id, detail = row["person_id"], dict(row["detail"] or {})
    candidate_id = detail.get("candidate_person_id")
    if person_id is None or not candidate_id:
        raise InvalidValue("this exception names no two people", field="exception_id",
                           rule="exception-reopen")
    store.lock_person(person_id)
    _require_unmerged(uow, person_id, candidate_id)
    live = uow.connection.execute(select(register_exceptions.c.id).where(
        register_exceptions.c.fingerprint == row["fingerprint"],
        register_exceptions.c.status.in_(sorted(LIVE))).limit(1)).scalar()
    if live is not None:
        raise InvalidValue(f"the pair is being asked about already: exception {live}",
                           field="exception_id", rule="exception-reopen")
    detail.update(reopens=exception_id, reopen_reason=reason, reopened_by=by)
    summary = (f"Asked again (reopening {exception_id}): may be the same person as "
               f"{candidate_id}: decide same-person or different-people")
    [(new_id, _)] = store.open_many(
        person_id, [Finding(row["kind"], row["fingerprint"], summary, detail)], clock.now())
    return store.get(new_id) or {}


def _person_ref(uow: SqlUnitOfWork, person_id: str) -> PersonRef:
    """How a register correction names the person: the NHS number, else the register's own
    identifier (``register``, person id), so the one write path finds the same record."""
    person = uow.persons.get(person_id)
    if person is None:
        raise NotFound("the exception's person no longer exists", field="person_id",
                       rule="person-exists")
    if person.nhs_number:
        return PersonRef(nhs_number=person.nhs_number)
    return PersonRef(local_id=register_identifier(uow.connection, person_id, REGISTER_SOURCE))
