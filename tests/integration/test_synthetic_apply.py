"""A synthetic population applied through the real handler on SQLite and PostgreSQL.

The population is generated up to the hub's fixed clock (2026-06-01): a position only knows
the facts effective by its ``today``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from register_core.adapters.tables import entitlements
from register_core.ports import FixedClock
from register_core.services.handlers import apply_command, recompute
from register_core.synthetic import generate_population, iter_commands
from s117hub.bootstrap import Hub

PEOPLE, SEED = 300, 117


def test_a_population_applies_cleanly_and_fills_the_register(hub: Hub) -> None:
    today = hub.clock.today()
    refused = on_cto = 0
    for command in iter_commands(PEOPLE, seed=SEED, end=today):
        with hub.uow() as uow:
            applied = apply_command(command, uow, hub.clock, hub.policy)
        assert applied.position is not None
        refused += bool(applied.position.refused_endings)  # one-sided, or on a CTO
        on_cto += applied.position.on_cto

    with hub.engine.connect() as conn:
        rows = conn.execute(select(entitlements.c.person_id, entitlements.c.status,
                                   entitlements.c.next_review_due,
                                   entitlements.c.ended)).all()
    statuses = Counter(row.status for row in rows)
    assert {"none", "pending", "active", "ended"} <= set(statuses), statuses
    people = list(generate_population(PEOPLE, seed=SEED, end=today))
    with_nhs = sum(p.nhs_number is not None for p in people)
    # One record per person with an NHS number; one per source for those without.
    assert with_nhs < len(rows) <= with_nhs + 2 * (len(people) - with_nhs)
    assert refused and on_cto

    overdue = [r for r in rows if r.status == "active" and r.next_review_due < today]
    assert overdue
    for row in rows:
        if row.status == "ended":
            assert row.ended["council_signoff"] and row.ended["icb_signoff"]
            assert row.ended["reason"]

    # Due dates move with time alone: a year later, more reviews are overdue.
    later = FixedClock(datetime(2027, 6, 1, 9, 0, tzinfo=UTC))
    for row in rows:
        if row.status == "active":
            with hub.uow() as uow:
                recompute(row.person_id, uow, later, hub.policy)
    with hub.engine.connect() as conn:
        dues = conn.execute(select(entitlements.c.next_review_due)
                            .where(entitlements.c.status == "active")).scalars().all()
    assert sum(due < later.today() for due in dues) > len(overdue)


def test_a_person_with_a_one_sided_ending_can_be_loaded_again(hub: Hub) -> None:
    """The stored ending has no ICB sign-off (None): the journal must still load."""
    today = hub.clock.today()
    story = next(p for p in generate_population(PEOPLE, seed=SEED, end=today)
                 if "one-sided-ending" in p.features and p.nhs_number)
    for command in story.commands:
        with hub.uow() as uow:
            applied = apply_command(command, uow, hub.clock, hub.policy)
    with hub.uow() as uow:
        again = recompute(applied.person_id, uow, hub.clock, hub.policy)
    assert again is not None and again.position is not None
    assert again.position.refused_endings
