"""Council REST event schema (architecture section 4), published in the OpenAPI document.

    {"event_id", "type", "occurred_at",
     "person": {"nhs_number", "local_id", "family_name", "given_name", "birth_date",
                "postcode", "gp_practice_ods"},
     "data": {…per type…}}

``CouncilEvent`` is the discriminated union on ``type``; ``COUNCIL_EVENT_ADAPTER`` validates a
dict against it. Dates are ``YYYY-MM-DD`` only (pydantic would otherwise read a number as a
Unix time). Unknown keys are refused so that a misspelt optional field is not silently lost.

Text: names, ids and codes (``SingleLine``) refuse every C0 control character, free text
(``FreeText``: a reason) all but TAB, CR and LF. A line break in a name would end the PID of
the ADT^A08 sent to HL7 partners (and a NUL cannot be stored in PostgreSQL); the refusal names
the field (``person.family_name``) and the character by code point, never echoing the value.
The API's own free-text fields use the same two types.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
)


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value
    raise ValueError("a date must be a string YYYY-MM-DD")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]

_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_SPACING = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # TAB LF CR pass


def control_character_in(value: str, *, free_text: bool = False) -> str | None:
    """The first control character refused in ``value`` as ``U+000D``, or None."""
    found = (_CONTROL_BUT_SPACING if free_text else _ANY_CONTROL).search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def _refusal(code_point: str, free_text: bool) -> str:
    allowed = "other than tab and line breaks " if free_text else ""
    return f"control characters {allowed}are not allowed (found {code_point})"


def single_line(value: str) -> str:
    if (found := control_character_in(value)) is not None:
        raise ValueError(_refusal(found, free_text=False))
    return value


def free_text(value: str) -> str:
    if (found := control_character_in(value, free_text=True)) is not None:
        raise ValueError(_refusal(found, free_text=True))
    return value


SingleLine = Annotated[str, AfterValidator(single_line)]
FreeText = Annotated[str, AfterValidator(free_text)]
GSS_COUNCIL = r"^[EWSN][0-9]{8}$"  # ONS GSS code of a local authority, e.g. E10000034


def _schema(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [example]})


class Signoff(BaseModel):
    model_config = _schema({"by": "Team manager, Adult Social Care", "date": "2027-02-01"})
    by: SingleLine = Field(min_length=1)
    date: IsoDate


class CouncilPerson(BaseModel):
    model_config = _schema({"nhs_number": "9990000018", "local_id": "LAS-000123",
                            "family_name": "Testperson", "given_name": "Alex",
                            "birth_date": "1980-01-01", "postcode": "AB1 2CD",
                            "gp_practice_ods": "M85019"})
    nhs_number: SingleLine | None = None
    local_id: SingleLine | None = None
    family_name: SingleLine | None = None
    given_name: SingleLine | None = None
    birth_date: IsoDate | None = None
    postcode: SingleLine | None = None
    gp_practice_ods: SingleLine | None = None


class DetentionNotifiedData(BaseModel):
    model_config = _schema({"section": "03", "start": "2026-01-05", "end": "2026-03-01"})
    section: SingleLine = Field(min_length=1,
                                description="MHSDS legal-status code or a local code")
    start: IsoDate
    end: IsoDate | None = None


class S117ConfirmedData(BaseModel):
    model_config = _schema({"start": "2026-03-01"})
    start: IsoDate


class S117EndedData(BaseModel):
    model_config = _schema({"date": "2027-02-01", "reason": "No longer needs aftercare",
                            "council_signoff": {"by": "AMHP lead", "date": "2027-02-01"},
                            "icb_signoff": {"by": "ICB CHC lead", "date": "2027-02-01"}})
    date: IsoDate
    reason: FreeText | None = None
    council_signoff: Signoff | None = None
    icb_signoff: Signoff | None = None
    grounds: list[SingleLine] = Field(default_factory=list)


class AftercarePlanAgreedData(BaseModel):
    model_config = _schema({"date": "2026-03-05"})
    date: IsoDate


class ReviewCompletedData(BaseModel):
    model_config = _schema({"date": "2026-06-01", "kind": "scheduled", "joint": True})
    date: IsoDate
    kind: Literal["scheduled", "unscheduled"] = "scheduled"
    # Whether council and NHS held it together (MoU 5); not said: unknown, not single-agency.
    joint: bool | None = None


class NamedPractitionerSetData(BaseModel):
    model_config = _schema({"name": "Sam Carer", "role": "Care coordinator",
                            "date": "2026-03-02"})
    name: SingleLine = Field(min_length=1)
    role: SingleLine | None = None
    date: IsoDate | None = None


class OrdinaryResidenceChangedData(BaseModel):
    model_config = _schema({"council_code": "E10000034", "date": "2026-01-01"})
    council_code: str = Field(pattern=GSS_COUNCIL)
    date: IsoDate


class ServiceChargedData(BaseModel):
    model_config = _schema({"service": "Supported living", "under_s117": True,
                            "amount": "125.50", "date": "2026-04-01"})
    service: SingleLine = Field(min_length=1)
    under_s117: bool
    amount: Decimal = Field(max_digits=12, decimal_places=2)
    date: IsoDate


_PERSON_EXAMPLE = CouncilPerson.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


def _event_config(event_type: str, data_model: type[BaseModel]) -> ConfigDict:
    data_example = data_model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
    return _schema({"event_id": "evt-000001", "type": event_type,
                    "occurred_at": "2026-03-01T09:30:00Z", "person": _PERSON_EXAMPLE,
                    "data": data_example})


class _EventBase(BaseModel):
    event_id: SingleLine = Field(min_length=1, max_length=200)
    occurred_at: dt.datetime
    person: CouncilPerson


class DetentionNotified(_EventBase):
    model_config = _event_config("detention.notified", DetentionNotifiedData)
    type: Literal["detention.notified"]
    data: DetentionNotifiedData


class S117Confirmed(_EventBase):
    model_config = _event_config("s117.confirmed", S117ConfirmedData)
    type: Literal["s117.confirmed"]
    data: S117ConfirmedData


class S117Ended(_EventBase):
    model_config = _event_config("s117.ended", S117EndedData)
    type: Literal["s117.ended"]
    data: S117EndedData


class AftercarePlanAgreed(_EventBase):
    model_config = _event_config("aftercare-plan.agreed", AftercarePlanAgreedData)
    type: Literal["aftercare-plan.agreed"]
    data: AftercarePlanAgreedData


class ReviewCompleted(_EventBase):
    model_config = _event_config("review.completed", ReviewCompletedData)
    type: Literal["review.completed"]
    data: ReviewCompletedData


class NamedPractitionerSet(_EventBase):
    model_config = _event_config("named-practitioner.set", NamedPractitionerSetData)
    type: Literal["named-practitioner.set"]
    data: NamedPractitionerSetData


class OrdinaryResidenceChanged(_EventBase):
    model_config = _event_config("ordinary-residence.changed", OrdinaryResidenceChangedData)
    type: Literal["ordinary-residence.changed"]
    data: OrdinaryResidenceChangedData


class ServiceCharged(_EventBase):
    model_config = _event_config("service.charged", ServiceChargedData)
    type: Literal["service.charged"]
    data: ServiceChargedData


CouncilEventModel = (DetentionNotified | S117Confirmed | S117Ended | AftercarePlanAgreed
                     | ReviewCompleted | NamedPractitionerSet | OrdinaryResidenceChanged
                     | ServiceCharged)
CouncilEvent = Annotated[CouncilEventModel, Field(discriminator="type")]
COUNCIL_EVENT_ADAPTER: TypeAdapter[CouncilEventModel] = TypeAdapter(CouncilEvent)
EVENT_MODELS: dict[str, type[BaseModel]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (DetentionNotified, S117Confirmed, S117Ended, AftercarePlanAgreed,
                  ReviewCompleted, NamedPractitionerSet, OrdinaryResidenceChanged,
                  ServiceCharged)
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)
