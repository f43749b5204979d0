"""What the service layer needs from the outside world, as protocols."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol

from .domain.calendar import england_date


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return england_date(self.now())


class FixedClock:
    """A clock the tests (and the demo) move by hand: due dates are about calendar days."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def today(self) -> date:
        return england_date(self.at)
