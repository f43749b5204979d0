"""Dispute stages and their working-day deadlines (s117 escalation dispute protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..calendar import add_working_days
from ..errors import InvalidValue

DISPUTE_KINDS: tuple[str, ...] = (
    "eligibility", "scope", "funding", "accommodation", "responsibility", "ending", "other",
)
STAGE_WORKING_DAYS: dict[int, int | None] = {1: 5, 2: 10, 3: 15, 4: None}
FINAL_STAGE = 4


@dataclass(frozen=True, kw_only=True)
class DisputeSpan:
    """When a dispute on the register was open: from ``opened`` up to the day before
    ``resolved`` (None: still open). A dispute resolved on a day no longer holds anything
    that day: what the partners record after the outcome stands."""

    id: str
    kind: str
    opened: date
    resolved: date | None = None

    def open_on(self, day: date) -> bool:
        return self.opened <= day and (self.resolved is None or day < self.resolved)


def initial_stage(kind: str) -> int:
    """Ending disputes start at the strategic stage 3; all others at stage 1."""
    if kind not in DISPUTE_KINDS:
        raise InvalidValue(f"unknown dispute kind {kind!r}", field="kind", rule="dispute-kind")
    return 3 if kind == "ending" else 1


def stage_due(stage_started: date, stage: int) -> date | None:
    """Deadline of a stage in England working days; stage 4 (external) has none."""
    if stage not in STAGE_WORKING_DAYS:
        raise InvalidValue(f"no dispute stage {stage}", field="stage", rule="dispute-stage")
    days = STAGE_WORKING_DAYS[stage]
    return None if days is None else add_working_days(stage_started, days)


def next_stage(stage: int) -> int:
    """The stage an unresolved dispute escalates to; stage 4 (external) is the last."""
    if stage not in STAGE_WORKING_DAYS:
        raise InvalidValue(f"no dispute stage {stage}", field="stage", rule="dispute-stage")
    if stage >= FINAL_STAGE:
        raise InvalidValue("a stage 4 dispute cannot escalate further", field="stage",
                           rule="dispute-stage")
    return stage + 1


def is_stage_overdue(due: date | None, today: date, resolved: bool) -> bool:
    return not resolved and due is not None and today > due
