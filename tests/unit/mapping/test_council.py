"""Council REST events of every type, their errors, and the published schema."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from mapping.config import SourceMappingConfig
from mapping.council import map_council_event
from mapping.council_models import COUNCIL_EVENT_ADAPTER, EVENT_MODELS, EVENT_TYPES
from mapping.errors import MappingError
from register_core.domain.commands import (
    Command,
    RecordAftercarePlanAgreed,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
    SetNamedPractitioner,
    Signoff,
)

from . import samples as s
from .conftest import RECEIVED


def run(event: dict[str, Any], config: SourceMappingConfig) -> list[Command]:
    return map_council_event(event, config, RECEIVED, "system")


def error_of(event: Any, config: SourceMappingConfig) -> MappingError:
    with pytest.raises(MappingError) as caught:
        run(event, config)
    return caught.value


def test_every_architecture_event_type_is_modelled() -> None:
    assert set(EVENT_TYPES) == set(s.COUNCIL_DATA) == {
        "detention.notified", "s117.confirmed", "s117.ended", "aftercare-plan.agreed",
        "review.completed", "named-practitioner.set", "ordinary-residence.changed",
        "service.charged"}


def test_detention_notified(council: SourceMappingConfig) -> None:
    started, left = run(s.council_event("detention.notified"), council)
    assert isinstance(started, RecordDetentionStarted)
    assert (started.section, started.start, started.end) == ("03", date(2026, 1, 5),
                                                             date(2026, 3, 1))
    assert isinstance(left, RecordLeftHospital)
    assert left.date == date(2026, 3, 1)
    person = started.person
    assert (person.nhs_number, person.local_id, person.family_name, person.given_name) == (
        s.NHS_1, "LAS-000123", "Testwood", "Robin")
    assert (person.birth_date, person.postcode, person.gp_practice_ods) == (
        date(1980, 1, 1), "AB1 2CD", "M85019")
    assert started.provenance.source == "council-w"
    assert started.provenance.source_ref == "evt-1"


def test_detention_without_end_and_with_a_local_code(council: SourceMappingConfig) -> None:
    event = s.council_event("detention.notified", {"section": "S2", "start": "2026-01-05"})
    [started] = run(event, council)
    assert isinstance(started, RecordDetentionStarted)
    assert (started.section, started.end) == ("02", None)


@pytest.mark.parametrize(("event_type", "command_type", "facts"), [
    ("s117.confirmed", RecordS117Confirmed, {"start": date(2026, 3, 1)}),
    ("s117.ended", RecordS117Ended, {
        "date": date(2027, 2, 1), "reason": "Needs met",
        "council_signoff": Signoff(by="AMHP lead", date=date(2027, 1, 30)),
        "icb_signoff": Signoff(by="ICB lead", date=date(2027, 2, 1)), "grounds": ()}),
    ("aftercare-plan.agreed", RecordAftercarePlanAgreed, {"date": date(2026, 3, 5)}),
    ("review.completed", RecordReviewCompleted, {
        "date": date(2026, 6, 1), "review_kind": "unscheduled", "joint": True}),
    ("named-practitioner.set", SetNamedPractitioner, {
        "name": "Sam Carer", "role": "Care coordinator", "date": date(2026, 3, 1)}),
    ("ordinary-residence.changed", RecordOrdinaryResidenceChanged, {
        "council_code": "E10000034", "date": date(2026, 1, 1)}),
    ("service.charged", RecordServiceCharged, {
        "service": "Supported living", "under_s117": True, "amount": "125.50",
        "date": date(2026, 4, 1)}),
])
def test_each_event_type(event_type: str, command_type: type[Command], facts: dict[str, Any],
                         council: SourceMappingConfig) -> None:
    [command] = run(s.council_event(event_type), council)
    assert isinstance(command, command_type)
    assert {name: getattr(command, name) for name in facts} == facts
    assert command.person.nhs_number == s.NHS_1


def test_one_sided_ending_passes_through_for_the_register_to_judge(
        council: SourceMappingConfig) -> None:
    [ended] = run(s.council_event("s117.ended", {"date": "2027-02-01"}), council)
    assert isinstance(ended, RecordS117Ended)
    assert (ended.reason, ended.council_signoff, ended.icb_signoff) == (None, None, None)


@pytest.mark.parametrize(("said", "joint"), [({}, None), ({"joint": False}, False),
                                             ({"joint": True}, True)])
def test_a_review_not_said_to_be_joint_is_unknown_not_single_agency(
        said: dict[str, Any], joint: bool | None, council: SourceMappingConfig) -> None:
    """MoU 5: reviews are joint; one the council did not say was single-agency is not taken
    for single-agency (an ending after it is not flagged ``ended-without-review``)."""
    [command] = run(s.council_event("review.completed", {"date": "2026-06-01", **said}),
                    council)
    assert isinstance(command, RecordReviewCompleted)
    assert command.joint is joint


def test_a_validated_model_maps_too(council: SourceMappingConfig) -> None:
    model = COUNCIL_EVENT_ADAPTER.validate_python(s.council_event("s117.confirmed"))
    [command] = map_council_event(model, council, RECEIVED)
    assert isinstance(command, RecordS117Confirmed)


def test_identity_by_name_and_birth_date_is_enough(council: SourceMappingConfig) -> None:
    event = s.council_event("s117.confirmed", nhs_number=None, local_id=None)
    [command] = run(event, council)
    assert command.person.nhs_number is None


@pytest.mark.parametrize(("event", "code", "location"), [
    (s.council_event("detention.notified", {"section": "01", "start": "2026-01-05"}),
     "invalid-value", "data.section"),
    (s.council_event("detention.notified", {"section": "CTO", "start": "2026-01-05"}),
     "invalid-value", "data.section"),
    (s.council_event("detention.notified", {"section": "X9", "start": "2026-01-05"}),
     "unknown-code", "data.section"),
    (s.council_event("detention.notified", {"section": "03", "start": "2026-01-05",
                                            "end": "2025-12-31"}), "invalid-value", "data.end"),
    (s.council_event("detention.notified", {"section": "03"}), "missing-field", "data.start"),
    (s.council_event("s117.confirmed", {"start": "05/01/2026"}), "invalid-value", "data.start"),
    (s.council_event("s117.confirmed", {"start": 20260105}), "invalid-value", "data.start"),
    (s.council_event("s117.confirmed", {"start": "2026-02-30"}), "invalid-value", "data.start"),
    (s.council_event("s117.confirmed", {"start": "2026-03-01", "startt": "x"}),
     "invalid-value", "data.startt"),
    (s.council_event("s117.ended", {"date": "2027-02-01", "council_signoff": {"by": "x"}}),
     "missing-field", "data.council_signoff.date"),
    (s.council_event("s117.ended", {"date": "2027-02-01", "grounds": ["a", 5]}),
     "invalid-value", "data.grounds[1]"),
    (s.council_event("review.completed", {"date": "2026-06-01", "kind": "yearly"}),
     "invalid-value", "data.kind"),
    (s.council_event("ordinary-residence.changed", {"council_code": "Worcs",
                                                    "date": "2026-01-01"}),
     "invalid-value", "data.council_code"),
    (s.council_event("service.charged", {"service": "x", "under_s117": "perhaps",
                                         "amount": "1", "date": "2026-01-01"}),
     "invalid-value", "data.under_s117"),
    (s.council_event("service.charged", {"service": "x", "under_s117": False,
                                         "amount": "1.234", "date": "2026-01-01"}),
     "invalid-value", "data.amount"),
    (s.council_event("s117.confirmed", nhs_number=s.NHS_BAD_CHECK), "invalid-value",
     "person.nhs_number"),
    (s.council_event("s117.confirmed", nhs_number=None, local_id=None, birth_date=None),
     "missing-field", "person"),
    ({**s.council_event("s117.confirmed"), "type": "relocated"}, "unsupported-event", "type"),
    ({**s.council_event("s117.confirmed"), "type": None}, "missing-field", "type"),
    ({**s.council_event("s117.confirmed"), "occurred_at": "soon"}, "invalid-value",
     "occurred_at"),
    ({**s.council_event("s117.confirmed"), "event_id": ""}, "invalid-value", "event_id"),
    ({k: v for k, v in s.council_event("s117.confirmed").items() if k != "person"},
     "missing-field", "person"),
    (["not", "an", "object"], "unparseable", None),
])
def test_errors_name_the_field(event: Any, code: str, location: str | None,
                               council: SourceMappingConfig) -> None:
    error = error_of(event, council)
    assert (error.code, error.location) == (code, location)


def test_models_publish_valid_examples() -> None:
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema()
        [example] = schema["examples"]
        assert example["type"] == event_type
        assert isinstance(COUNCIL_EVENT_ADAPTER.validate_python(example), model)
        data_model: type[BaseModel] = model.model_fields["data"].annotation  # type: ignore[assignment]
        assert data_model.model_json_schema()["examples"]
    union = COUNCIL_EVENT_ADAPTER.json_schema()
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(EVENT_TYPES)


def test_amount_is_kept_exact(council: SourceMappingConfig) -> None:
    data = {"service": "Day care", "under_s117": False, "amount": "0.10", "date": "2026-01-01"}
    [charge] = run(s.council_event("service.charged", data), council)
    assert isinstance(charge, RecordServiceCharged)
    assert Decimal(charge.amount) == Decimal("0.10")
