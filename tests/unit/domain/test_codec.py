"""Commands to and from JSON-safe dicts: a fact is stored exactly as it arrived."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from register_core.domain import legal_status
from register_core.domain.codec import command_from_json, from_json_as, to_json
from register_core.domain.commands import (
    REGISTER_COMMANDS,
    SOURCE_COMMANDS,
    CancelEvent,
    MergePersons,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordS117Ended,
    Signoff,
)

from .builders import (
    cancel,
    charge,
    child_notified,
    confirmed,
    details,
    detention,
    dispute_opened,
    dispute_resolved,
    ended,
    gp,
    left,
    legal,
    person_ref,
    plan,
    practitioner,
    prov,
    residence,
    review,
    source_accepted,
)

EXAMPLES = [
    details(as_of="2024-01-01", birth_date=date(1990, 5, 6), postcode="ZZ99 9ZZ",
            nhs_number_verified=True),
    detention("2024-01-01", "37", end="2024-05-01", icb="ICB-X"),
    legal("cto-start", "2024-05-01", end="2024-11-01"),
    legal("section-change", "2024-01-20", section="03"),
    left("2024-05-01", reason="left-hospital"),
    confirmed("2019-01-01"),
    ended("2025-06-01", grounds=("no-longer-in-need", "refused-plan")),
    ended("2025-06-01"),
    plan("2024-04-01"),
    review("2024-06-01", kind="unscheduled", joint=False),
    practitioner("worker-1", "2024-01-02"),
    practitioner("worker-2"),
    residence("2020-01-01", "LA-A"),
    gp("2020-01-01", "GP-X01", "ICB-X"),
    charge("2024-07-01"),
    child_notified("2024-02-01"),
    cancel("left-hospital"),
    MergePersons(person=person_ref(1), provenance=prov(), merged_local_id="SYN-000099",
                 merged_nhs_number="9990500002"),
]

# One-sided or reasonless endings and registrations without an ICB code are exactly the
# facts the register must keep to raise exceptions on: they must survive storage.
LOSSY = [
    ended("2025-06-01", icb=False),
    ended("2025-06-01", reason=None),
    gp("2020-01-01", "GP-X01"),
]


@pytest.mark.parametrize("command", EXAMPLES, ids=lambda c: c.kind)
def test_every_command_round_trips_through_json(command):
    stored = json.loads(json.dumps(to_json(command)))  # really JSON-safe
    assert command_from_json(command.kind, stored) == command


@pytest.mark.parametrize("command", LOSSY, ids=lambda c: c.kind)
def test_commands_with_none_in_a_required_field_round_trip(command):
    stored = json.loads(json.dumps(to_json(command)))
    assert command_from_json(command.kind, stored) == command


def test_every_source_command_kind_has_an_example():
    assert {c.kind for c in EXAMPLES} == set(SOURCE_COMMANDS)


REGISTER_EXAMPLES = [
    dispute_opened("2026-11-16"), dispute_resolved("2026-12-01"),
    # Its ``told`` is a tuple of tuples: it must load back as one, or the owner's decision
    # would not match the question it answered.
    source_accepted("2026-12-02", {"field": "detention.section", "values": [
        {"source": "trust-a", "value": "03", "detention_start": "2026-01-05"},
        {"source": "council-a", "value": "02", "detention_start": "2026-01-05"}]}, "trust-a"),
    source_accepted("2026-12-02", {"field": "ordinary_residence.council_code",
                                   "date": "2025-01-01", "values": [
                                       {"source": "council-a", "value": "LA-A"},
                                       {"source": "council-b", "value": "LA-B"}]}, "council-b"),
]


@pytest.mark.parametrize("command", REGISTER_EXAMPLES, ids=lambda c: c.kind)
def test_the_registers_own_commands_round_trip_and_are_no_sources(command):
    stored = json.loads(json.dumps(to_json(command)))
    assert command_from_json(command.kind, stored) == command
    assert command.kind in REGISTER_COMMANDS and command.kind not in SOURCE_COMMANDS


def test_every_register_command_kind_has_an_example():
    assert {c.kind for c in REGISTER_EXAMPLES} == set(REGISTER_COMMANDS)


def test_dates_are_iso_strings_and_empty_values_are_kept_as_null():
    data = to_json(detention("2024-01-01"))
    assert data["start"] == "2024-01-01"
    assert data["end"] is None and data["responsible_icb"] is None
    assert data["provenance"]["received_at"] == "2024-01-01T09:00:00"
    assert data["person"]["family_name"] is None


def test_false_and_empty_strings_are_kept():
    data = to_json(review("2024-06-01", joint=False))
    assert data["joint"] is False


def test_nested_signoffs_come_back_as_signoffs():
    back = command_from_json("s117-ended", to_json(ended("2025-06-01")))
    assert isinstance(back, RecordS117Ended)
    assert back.council_signoff == Signoff(by="council-officer-1", date=date(2025, 6, 1))
    assert isinstance(back.grounds, tuple)


def test_unknown_fields_are_ignored_so_old_records_still_load():
    command = confirmed("2019-01-01")
    data = to_json(command)
    data["added_in_a_later_version"] = "x"
    assert command_from_json("s117-confirmed", data) == command


def test_no_grounds_come_back_as_an_empty_tuple():
    command = ended("2025-06-01")
    assert command_from_json(command.kind, to_json(command)).grounds == ()


def test_timezone_aware_received_at_round_trips():
    aware = Provenance(source="trust-a", source_ref="m1",
                       received_at=datetime(2024, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=1))))
    assert from_json_as(Provenance, to_json(aware)) == aware


def test_an_unknown_kind_is_a_key_error():
    with pytest.raises(KeyError):
        command_from_json("not-a-kind", {})


@given(start=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
       length=st.one_of(st.none(), st.integers(min_value=0, max_value=3000)),
       section=st.sampled_from(sorted(legal_status.LEGAL_STATUS)),
       episode=st.one_of(st.none(), st.text(min_size=1, max_size=12)),
       serial=st.integers(min_value=0, max_value=499_999))
def test_detentions_round_trip__property(start, length, section, episode, serial):
    end = None if length is None else start + timedelta(days=length)
    command = RecordDetentionStarted(
        person=PersonRef(nhs_number=person_ref(serial).nhs_number),
        provenance=prov("trust-a", start), section=section, start=start, end=end,
        episode_ref=episode)
    assert command_from_json(command.kind, json.loads(json.dumps(to_json(command)))) == command


def test_cancel_literal_survives():
    back = command_from_json("cancel", to_json(cancel("detention-started", episode=None)))
    assert isinstance(back, CancelEvent)
    assert back.cancels == "detention-started"
    assert back.episode_ref is None
