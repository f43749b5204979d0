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


class Correction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        raise NotImplementedError


class ConfirmS117(Correction):
    """The council's acknowledgement of an entitlement (settles ``missed-entitlement``)."""

    type: Literal["s117.confirmed"]
    start: dt.date

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordS117Confirmed(person=person, provenance=prov, start=self.start)


class AgreePlan(Correction):
    type: Literal["aftercare-plan.agreed"]
    date: dt.date

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordAftercarePlanAgreed(person=person, provenance=prov, date=self.date)


class CompleteReview(Correction):
    type: Literal["review.completed"]
    date: dt.date
    kind: Literal["scheduled", "unscheduled"] = "scheduled"
    joint: bool = True

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordReviewCompleted(person=person, provenance=prov, date=self.date,
                                     review_kind=self.kind, joint=self.joint)


class SetPractitioner(Correction):
    type: Literal["named-practitioner.set"]
    name: SingleLine = Field(min_length=1, max_length=200)
    role: SingleLine | None = Field(default=None, max_length=100)
    date: dt.date | None = None

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        return SetNamedPractitioner(person=person, provenance=prov, name=self.name.strip(),
                                    role=self.role, date=self.date)


class ChangeResidence(Correction):
    """The council of ordinary residence from a date (settles a residence conflict)."""

    type: Literal["ordinary-residence.changed"]
    council_code: SingleLine = Field(min_length=1, max_length=12)
    date: dt.date

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordOrdinaryResidenceChanged(person=person, provenance=prov,
                                              council_code=self.council_code.strip(),
                                              date=self.date)


class NotifyChild(Correction):
    """A Children Act 1989 s85 notification that was made (joint policy 6.1)."""

    type: Literal["child.s85-notified"]
    date: dt.date

    def command(self, person: PersonRef, prov: Provenance) -> Command:
        return RecordChildNotification(person=person, provenance=prov, date=self.date)


CorrectionIn = Annotated[
    ConfirmS117 | AgreePlan | CompleteReview | SetPractitioner | ChangeResidence | NotifyChild,
    Field(discriminator="type")]
