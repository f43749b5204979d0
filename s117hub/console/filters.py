"""Date filters in the console's query strings (Messages, Audit log): English days.

The hub's days are English days (``register_core.domain.calendar``): a filter "from
2026-06-01" starts at midnight in London, 23:00 UTC the evening before in summer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from register_core.domain.calendar import ENGLAND
from register_core.domain.errors import InvalidValue

# Filter dates the hub can turn into instants: 9999-12-31 has no next midnight (a 500 before).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)


def day_filter(text: str, field: str) -> date | None:
    """``text`` as a date (None when blank); InvalidValue naming ``field`` (a 422 page)."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue("a date is YYYY-MM-DD", field=field, rule="iso-date") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidValue(f"a date from {FIRST_DAY} to {LAST_DAY}", field=field,
                           rule="date-range")
    return day


def england_midnight(day: date) -> datetime:
    """The start of ``day`` in England, in UTC."""
    return datetime.combine(day, time(0), tzinfo=ENGLAND).astimezone(UTC)
