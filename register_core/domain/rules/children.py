"""Children and young people detained 12 consecutive weeks or more: the responsible council
must be notified (Children Act 1989 s85; joint policy 6.1)."""

from __future__ import annotations

from datetime import date, timedelta

TWELVE_WEEKS = timedelta(weeks=12)


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def is_child_on(birth: date | None, day: date) -> bool:
    return birth is not None and age_on(birth, day) < 18


def s85_notification_due(
    birth: date | None, detained_from: date, detained_until: date | None, today: date
) -> bool:
    """True when a child has been detained for 12 consecutive weeks (to date or in total)."""
    if not is_child_on(birth, detained_from):
        return False
    end = detained_until or today
    return end - detained_from >= TWELVE_WEEKS

