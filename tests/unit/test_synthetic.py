"""The synthetic population: deterministic, valid identities, consistent dates, every story."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

import pytest

from register_core.domain import nhs_number
from register_core.domain.commands import (
    Command,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordS117Ended,
)
from register_core.domain.model import Person
from register_core.domain.position import compute_position
from register_core.synthetic import (
    AREAS,
    DETENTION_COMMANDS,
    FEATURES,
    PersonStory,
    detention_events,
    generate_population,
    iter_commands,
)

START, END = date(2024, 1, 1), date(2026, 11, 1)


@pytest.fixture(scope="module")
def stories() -> list[PersonStory]:
    return list(generate_population(3000, seed=117))


def test_same_seed_same_output_other_seed_other_output() -> None:
    assert list(generate_population(150, seed=5)) == list(generate_population(150, seed=5))
    assert list(iter_commands(150, seed=5)) == list(iter_commands(150, seed=5))
    assert list(generate_population(150, seed=5)) != list(generate_population(150, seed=6))


def test_nhs_numbers_valid_unique_and_in_the_999_range(stories: list[PersonStory]) -> None:
    numbers = [s.nhs_number for s in stories if s.nhs_number]
    assert all(nhs_number.is_valid(n) and n.startswith("999") for n in numbers)
    assert len(set(numbers)) == len(numbers)
    for story in stories:
        for command in story.commands:
            assert command.person.nhs_number == story.nhs_number
    share = 1 - len(numbers) / len(stories)
    assert 0.07 < share < 0.13


@pytest.mark.parametrize("share, expected", [(0.0, 0), (1.0, 40)])
def test_share_without_nhs_number_is_configurable(share: float, expected: int) -> None:
    people = list(generate_population(40, seed=1, without_nhs_share=share))
    assert sum(p.nhs_number is None for p in people) == expected


def test_identity_looks_plausible(stories: list[PersonStory]) -> None:
    councils = {a.council_code for a in AREAS}
    for story in stories[:500]:
        assert re.fullmatch(r"[A-Z]{1,2}\d{1,2} \d[A-Z]{2}", story.postcode)
        assert re.fullmatch(r"[A-Z]\d{5}", story.gp_practice_ods)
        assert story.council_code in councils and re.fullmatch(r"E\d{8}", story.council_code)
        assert re.fullmatch(r"Q[A-Z]{2}", story.icb_code)
        assert story.sex in ("female", "male") and story.given_name and story.family_name
        assert story.local_ids == {"trust-a": f"RX1-{story.serial:06d}",
                                   "council-a": f"LA1-{story.serial:06d}"}


def test_provenance_unique_from_the_sources_and_near_the_effective_date(
        stories: list[PersonStory]) -> None:
    refs = [c.provenance.source_ref for s in stories for c in s.commands]
    assert len(refs) == len(set(refs))
    for story in stories:
        for command in story.commands:
            prov = command.provenance
            assert prov.source in ("trust-a", "council-a")
            assert re.fullmatch(rf"{prov.source}:MSG\d{{6,}}", prov.source_ref)
            assert prov.received_at.tzinfo is not None
            assert command.person.local_id == story.local_ids[prov.source]
            if command.effective is not None:
                lag = prov.received_at.date() - command.effective
                assert timedelta(0) <= lag <= timedelta(days=10)


def test_dates_are_consistent(stories: list[PersonStory]) -> None:
    for story in stories:
        starts: dict[str, date] = {}
        received = [c.provenance.received_at for c in story.commands]
        assert received == sorted(received)
        for command in story.commands:
            effective = command.effective
            assert effective is not None and story.birth_date < effective
            assert START <= effective <= END
            if isinstance(command, RecordDetentionStarted):
                assert command.episode_ref and command.episode_ref not in starts
                starts[command.episode_ref] = command.start
            if isinstance(command, RecordLeftHospital) and command.episode_ref:
                assert command.date >= starts[command.episode_ref]
            if isinstance(command, RecordS117Ended):
                for signoff in (command.council_signoff, command.icb_signoff):
                    assert signoff is None or signoff.date <= command.provenance.received_at.date()


def test_every_story_folds_into_the_domain_without_error(stories: list[PersonStory]) -> None:
    """What apply_command does, minus the database: record each command, compute position."""
    statuses: Counter[str] = Counter()
    for story in stories:
        people: dict[tuple[str | None, str | None], Person] = {}
        for command in story.commands:
            key = ((story.nhs_number, None) if story.nhs_number
                   else (command.provenance.source, command.person.local_id))
            person = people.setdefault(key, Person(id=f"{story.serial}-{key}"))
            person.record(command)
        for person in people.values():
            statuses[compute_position(person, END + timedelta(days=1)).entitlement.status] += 1
    assert set(statuses) == {"none", "pending", "active", "ended"}


def test_the_mix_contains_every_story_feature(stories: list[PersonStory]) -> None:
    seen: Counter[str] = Counter(f for s in stories for f in s.features)
    assert set(seen) == FEATURES, FEATURES - set(seen)
    admissions: Counter[str] = Counter(
        c.section for s in stories for c in s.commands if isinstance(c, RecordDetentionStarted))
    assert admissions.most_common(1)[0][0] == "02"  # s2 is the commonest admission
    assert seen["s2-regraded-s3"] > seen["s2"] / 4
    for rare in ("joint-ending", "one-sided-ending", "charge-s117", "child-12-weeks",
                 "council-confirmation", "cto-ended", "moved-council"):
        assert 0 < seen[rare] < len(stories) / 5, rare


def test_iter_commands_flattens_in_order_of_receipt() -> None:
    commands = list(iter_commands(300, seed=2))
    stories = list(generate_population(300, seed=2))
    assert len(commands) == sum(len(s.commands) for s in stories)
    received = [c.provenance.received_at for c in commands]
    assert received == sorted(received)


def test_detention_events_gives_exactly_n_detention_commands() -> None:
    events: list[Command] = list(detention_events(2500, seed=3))
    assert len(events) == 2500
    assert all(isinstance(e, DETENTION_COMMANDS) for e in events)
    assert events == list(detention_events(2500, seed=3))
    kinds = Counter(type(e).__name__ for e in events)
    assert set(kinds) == {"RecordDetentionStarted", "RecordLegalStatusChanged",
                          "RecordLeftHospital"}
