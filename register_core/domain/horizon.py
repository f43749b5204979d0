"""How long a person's position stays what it is today, with no new fact.

A position is a pure function of the facts and the day (``compute_position``), and the day
enters it in three places only: a fact is not known before the day it takes effect; a
detention's expected end (a date after today on the detention record) is not yet an end; and
a CTO or conditional discharge with an end date is in force until that date. So with the same
facts, the position of every day up to the day before the first of those dates is today's.

The sweep keeps that date with each person (``person_checks``) so the nightly pass visits only
the people whose facts changed or whose date came; the detectors add their own due dates
(``reconciliation.detectors.detect_until``).
"""

from __future__ import annotations

from datetime import date, timedelta

from .commands import RecordDetentionStarted, RecordLegalStatusChanged
from .episodes import fact_day
from .model import Person

ONE_DAY = timedelta(days=1)


def position_stable_until(person: Person, today: date) -> date | None:
    """The last day on which the position computed on ``today`` still holds for these facts;
    None: no date alone ever moves it."""
    coming: list[date] = []
    for fact in person.live_facts():
        day = fact_day(fact)
        if day > today:
            coming.append(day)  # not known until then
            continue
        command = fact.command
        if isinstance(command, RecordDetentionStarted | RecordLegalStatusChanged) and (
                command.end is not None and command.end > today):
            coming.append(command.end)  # an expected end, or a period in force until then
    return min(coming) - ONE_DAY if coming else None


def earliest(*days: date | None) -> date | None:
    """The first of the days given (None: no limit), for combining "stable until" dates."""
    known = [day for day in days if day is not None]
    return min(known) if known else None
