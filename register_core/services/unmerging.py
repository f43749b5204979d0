"""Undoing a merge as one register change: the journals move back (``merges.unmerge``),
partners hear of both people's status changes, and both people's exceptions are synced, all
in the caller's unit of work (the caller commits)."""

from __future__ import annotations

from reconciliation.detectors import DetectorPolicy
from register_core.adapters.unit_of_work import SqlUnitOfWork
from register_core.domain.position import Policy
from register_core.ports import Clock

from .merges import MergeOutcome, unmerge
from .outbound import enqueue_status_changes
from .reconcile import reconcile_person


def unmerge_person(uow: SqlUnitOfWork, merged_id: str, *, by: str, clock: Clock,
                   policy: Policy | None = None,
                   rules: DetectorPolicy | None = None) -> MergeOutcome:
    """Undo the open merge that emptied ``merged_id`` (``by``: the deciding token id)."""
    outcome = unmerge(uow, merged_id, by=by, clock=clock, policy=policy)
    for applied in (outcome.survivor, outcome.merged):
        enqueue_status_changes(uow.connection, applied, clock.now(), clock.now())
    for person_id in (outcome.survivor.person_id, outcome.merged.person_id):
        reconcile_person(uow, person_id, clock, policy, rules=rules)
    return outcome
