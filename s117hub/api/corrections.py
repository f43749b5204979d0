"""Corrections a register owner may apply when resolving an exception (``apply``).

Each is the canonical command a partner system would have sent, named as the council event
types of architecture section 4 are; the service records it with the register's provenance
(source ``register``, source_ref ``exception:<id>``, recorded_by the token id).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mapping.council_models import SingleLine
from register_core.domain.calendar import england_date
from register_core.domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordAftercarePlanAgreed,
    RecordChildNotification,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Confirmed,
    SetNamedPractitioner,
)
from register_core.domain.errors import InvalidValue

# Dates a correction may carry: nothing before the register's oldest history, nothing after
# today (an s117.confirmed dated 9999-12-31 once closed a missed-entitlement).
EARLIEST = dt.date(1900, 1, 1)


class Correction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        """The canonical command, once its dates are possible: "today" is the English day
        of the decision (``prov.received_at``, the hub's clock), so the check runs here."""
        self.check_dates(england_date(prov.received_at))
        return self.build(person, prov)

    def check_dates(self, today: dt.date) -> None:
        """InvalidValue (a 422) naming the first date before 1900 or after ``today``."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, dt.date) and not EARLIEST <= value <= today:
                raise InvalidValue(f"the correction's {name} (apply.{name}) {value} is "
                                   f"{'after today' if value > today else 'before 1900'}; "
                                   f"give a date from {EARLIEST.isoformat()} to "
                                   f"{today.isoformat()}", field=f"apply.{name}",
                                   rule="correction-date")

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        raise NotImplementedError


class ConfirmS117(Correction):
    """The council's acknowledgement of an entitlement (settles ``missed-entitlement``)."""

    type: Literal["s117.confirmed"]
    start: dt.date

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordS117Confirmed(person=person, provenance=prov, start=self.start)


class AgreePlan(Correction):
    type: Literal["aftercare-plan.agreed"]
    date: dt.date

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordAftercarePlanAgreed(person=person, provenance=prov, date=self.date)


class CompleteReview(Correction):
    type: Literal["review.completed"]
    date: dt.date
    kind: Literal["scheduled", "unscheduled"] = "scheduled"
    joint: bool | None = True  # None: not known whether the council and ICB held it jointly

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordReviewCompleted(person=person, provenance=prov, date=self.date,
                                     review_kind=self.kind, joint=self.joint)


class SetPractitioner(Correction):
    type: Literal["named-practitioner.set"]
    name: SingleLine = Field(min_length=1, max_length=200)
    role: SingleLine | None = Field(default=None, max_length=100)
    date: dt.date | None = None

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        return SetNamedPractitioner(person=person, provenance=prov, name=self.name.strip(),
                                    role=self.role, date=self.date)


class ChangeResidence(Correction):
    """The council of ordinary residence from a date (settles a residence conflict)."""

    type: Literal["ordinary-residence.changed"]
    council_code: SingleLine = Field(min_length=1, max_length=12)
    date: dt.date

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordOrdinaryResidenceChanged(person=person, provenance=prov,
                                              council_code=self.council_code.strip(),
                                              date=self.date)


class NotifyChild(Correction):
    """A Children Act 1989 s85 notification that was made (joint policy 6.1)."""

    type: Literal["child.s85-notified"]
    date: dt.date

    def build(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordChildNotification(person=person, provenance=prov, date=self.date)


CorrectionIn = Annotated[
    ConfirmS117 | AgreePlan | CompleteReview | SetPractitioner | ChangeResidence | NotifyChild,
    Field(discriminator="type")]
