"""Review due dates: within 3 months of discharge, then at least every 12 months; and the
unscheduled reviews changes of circumstance call for (joint policy 14.1; MoU 5)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date

FIRST_REVIEW_MONTHS = 3
REVIEW_INTERVAL_MONTHS = 12

# Events that call for an unscheduled review, with where the rule comes from and what, if
# anything, raises it. Only a move is told to the hub as a fact of its own; the others are
# judgements no inbound event carries, or already asked for by another rule.
UNSCHEDULED_TRIGGERS: dict[str, str] = {
    "moved-council-area": "the person moves to another local authority area (joint policy "
                          "14.1): raised, a review-overdue prompt once no review follows the "
                          "move (``moves_of_area``)",
    "plan-not-meeting-needs": "information that the plan is not meeting the person's mental "
                              "health needs (14.1): a judgement no inbound event carries",
    "requested": "at the request of the person or their representative (14.1): no inbound "
                 "event carries a request",
    "ending-considered": "whenever discharge from s117 is being considered (14.1): an ending "
                         "with no review before it is flagged ended-without-review (16.1, "
                         "16.3)",
    "s17-leave-start": "a review prompt on s17 leave (standards.md section 6, not 14.1): "
                       "under the seed policy the leave starts the entitlement and its "
                       "3-month review (14.1, 8.4), so no separate prompt is raised",
}


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (30 Nov + 3 → 28/29 Feb)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def first_review_due(discharge: date) -> date:
    return add_months(discharge, FIRST_REVIEW_MONTHS)


def next_review_due(discharge: date, reviews: Iterable[date]) -> date:
    """3 months after discharge until a review is held, then 12 months after the latest.

    Any review (scheduled or unscheduled) on or after discharge restarts the 12-month clock:
    the duty is "at least every 12 months".
    """
    held = [r for r in reviews if r >= discharge]
    if not held:
        return first_review_due(discharge)
    return add_months(max(held), REVIEW_INTERVAL_MONTHS)


def is_overdue(due: date | None, today: date) -> bool:
    return due is not None and today > due


def moves_of_area(residences: Sequence[tuple[date, str]]) -> list[tuple[date, str, str]]:
    """Each move to another council area the ordinary residences tell: (date, from, to), in
    date order (14.1). The first council known is no move, nor the same council told again.
    A date told with two councils (sources disagreeing, a source-conflict of its own) is no
    move: the council in force stays the last one told without disagreement."""
    by_day: dict[date, set[str]] = {}
    for day, council in residences:
        by_day.setdefault(day, set()).add(council.strip().upper())
    moves: list[tuple[date, str, str]] = []
    current: str | None = None
    for day in sorted(by_day):
        told = by_day[day]
        if len(told) != 1:
            continue
        (council,) = told
        if current is not None and council != current:
            moves.append((day, current, council))
        current = council
    return moves


def reviewed_since(day: date, reviews: Iterable[date]) -> date | None:
    """The first review held on or after ``day`` (None: none yet)."""
    return min((r for r in reviews if r >= day), default=None)
