"""Children and young people detained in hospital: the responsible council must be notified
(Children Act 1989 s85; joint policy 6.1).

Joint policy 6.1 sets the test: "Where a child or young person is detained in hospital and
that is *likely* to be for at least 12 consecutive weeks". So the notification is due as soon
as the detention is expected to last 12 weeks (a source gave an expected end at least 12
weeks after the start), and in any case once 12 consecutive weeks have passed, when it is no
longer a likelihood but a fact. Twelve weeks is the seed's measure: the statute's "three
months" (s85(1)) is a few days later, so a prompt at 12 weeks never misses it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

TWELVE_WEEKS = timedelta(weeks=12)

S85Ground = Literal["reached", "expected"]


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def is_child_on(birth: date | None, day: date) -> bool:
    return birth is not None and age_on(birth, day) < 18


def twelve_weeks_on(detained_from: date) -> date:
    """The day 12 consecutive weeks of detention have passed: the same weekday 12 weeks on
    (admitted on a Monday, the twelfth week ends with the Sunday 83 days on)."""
    return detained_from + TWELVE_WEEKS


def s85_notification_ground(
    birth: date | None, detained_from: date, detained_until: date | None, today: date,
    expected_until: date | None = None,
) -> S85Ground | None:
    """Why a child's detention calls for the s85 notification today (6.1), or None.

    ``detained_until``: the day they left hospital (None: still in); ``expected_until``: an
    end a source expects, dated after today, for a detention still going on. "reached": 12
    consecutive weeks have passed (to today, or in total); "expected": not yet, but the
    detention is expected to last at least that long, which is what "likely" asks.
    """
    if not is_child_on(birth, detained_from):
        return None
    reached = twelve_weeks_on(detained_from)
    if (detained_until or today) >= reached:
        return "reached"
    if detained_until is None and expected_until is not None and expected_until >= reached:
        return "expected"
    return None


def s85_notification_due(
    birth: date | None, detained_from: date, detained_until: date | None, today: date,
    expected_until: date | None = None,
) -> bool:
    """True when the notification is due (``s85_notification_ground`` gives a ground)."""
    return s85_notification_ground(birth, detained_from, detained_until, today,
                                   expected_until) is not None
