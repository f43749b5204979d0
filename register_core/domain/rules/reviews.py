"""Review due dates: within 3 months of discharge, then at least every 12 months
(joint policy 14.1; MoU 5)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date

FIRST_REVIEW_MONTHS = 3
REVIEW_INTERVAL_MONTHS = 12

# Events that call for an unscheduled review (joint policy 14.1).
UNSCHEDULED_TRIGGERS: frozenset[str] = frozenset(
    {"moved-council-area", "plan-not-meeting-needs", "requested", "ending-considered",
     "s17-leave-start"}
)


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
