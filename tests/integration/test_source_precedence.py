"""Precedence from the config file, through bootstrap, on the real databases (architecture
section 1 step 3; s117-rules.md: "Sources disagree: section, dates, responsible council or
ICB"): a disagreement the rule settles closes its open source-conflict exception and the
register shows the winner's value with the rule in explain; one no rule settles stays open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from register_core.adapters.security import Role
from register_core.adapters.tables import register_exceptions
from register_core.domain.commands import (
    RecordAftercarePlanAgreed,
    RecordDetentionStarted,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
)
from register_core.services.reconcile import sweep
from s117hub.bootstrap import Hub, bootstrap
from s117hub.config import Settings

from .reconcile_people import admit, apply, client_for, council, kept, prov, ref

ADMITTED = date(2026, 5, 4)
RULES = """
[precedence]
detention = ["trust-*"]
ordinary_residence = ["council-*"]
"""


def wired(hub: Hub, tmp_path: Path, rules: str) -> Iterator[Hub]:
    """The same database and clock, wired from a config file that holds ``rules``."""
    config = tmp_path / "hub.toml"
    config.write_text(rules)
    built = bootstrap(Settings(database_url=hub.engine.url.render_as_string(
        hide_password=False), config_file=config), clock=hub.clock, engine=hub.engine)
    yield built
    built.broker.close()


@pytest.fixture
def ruled(hub: Hub, tmp_path: Path) -> Iterator[Hub]:
    yield from wired(hub, tmp_path, RULES)


@pytest.fixture
def council_plans(hub: Hub, tmp_path: Path) -> Iterator[Hub]:
    yield from wired(hub, tmp_path, '[precedence]\naftercare_plan = ["council-*"]\n')


def source_conflicts(hub: Hub, person_id: str) -> list[tuple[str, str, str]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(select(register_exceptions.c.status, register_exceptions.c.closed_by,
                                   register_exceptions.c.detail)
                            .where(register_exceptions.c.person_id == person_id,
                                   register_exceptions.c.kind == "source-conflict"))
        return sorted((r.detail["field"], r.status, r.closed_by or "") for r in rows)


def two_councils_claim_residence(hub: Hub, serial: int) -> str:
    for source, code in (("council-a", "E10000034"), ("council-b", "E10000011")):
        apply(hub, RecordOrdinaryResidenceChanged(
            person=ref(serial), provenance=prov(source, f"{serial}-or-{source}", ADMITTED),
            council_code=code, date=date(2025, 1, 1)))
    return admit(hub, serial, ADMITTED)


def test_a_configured_precedence_settles_the_section_and_leaves_what_it_cannot(
        hub: Hub, ruled: Hub) -> None:
    assert ruled.policy.precedence.detention == ("trust-*",)
    assert ruled.policy.precedence.ordinary_residence == ("council-*",)
    settled = admit(hub, 41, ADMITTED)  # the trust: s3, episode V41
    council(hub, 41, RecordDetentionStarted, ADMITTED, section="02", start=ADMITTED)
    left_open = two_councils_claim_residence(hub, 42)  # both match council-*: no winner
    sweep(hub.engine, hub.clock, hub.policy)
    assert source_conflicts(hub, settled) == [("detention.section", "open", "")]
    assert source_conflicts(hub, left_open) == [
        ("ordinary_residence.council_code", "open", "")]

    sweep(ruled.engine, ruled.clock, ruled.policy)
    assert source_conflicts(ruled, settled) == [("detention.section", "resolved", "system")]
    assert source_conflicts(ruled, left_open) == [
        ("ordinary_residence.council_code", "open", "")]
    with client_for(ruled, Role.REGISTER_OWNER) as owner:
        record = owner.get(f"/api/v1/people/{settled}").json()
    assert [(d["ref"], d["section"]) for d in record["detentions"]] == [("V41", "03")]
    assert record["entitlement"]["trigger_section"] == "03"
    why = record["explain"]["detentions[V41].section"]
    assert why["rule"].startswith("precedence: detention facts from trust-a over council-a "
                                  "(config precedence.detention: 'trust-*')")
    assert why["facts"] and all("from trust-a" in cite for cite in why["facts"])
    assert [e["kind"] for e in record["open_exceptions"]].count("source-conflict") == 0


def plan_date(hub: Hub, person_id: str) -> tuple[str, str]:
    """The register's plan date and the rule explain gives for it, through the API."""
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        record = owner.get(f"/api/v1/people/{person_id}").json()
    return (record["entitlement"]["aftercare_plan_date"],
            record["explain"]["entitlement.aftercare_plan"]["rule"])


def test_a_plan_rule_closes_the_plan_date_conflict_and_the_register_keeps_the_councils_date(
        hub: Hub, council_plans: Hub) -> None:
    """The council agrees the plan on the day of discharge (``kept``); the trust tells its
    own first plan two days later. No rule: an open source-conflict on the plan date and the
    latest told on the register. The council first for the aftercare plan: the exception is
    closed by the system and the council's date stands, with the rule in explain."""
    left = date(2026, 5, 20)
    person_id = kept(hub, 43, ADMITTED, left)
    apply(hub, RecordAftercarePlanAgreed(person=ref(43), provenance=prov(
        "trust-a", "43-plan-trust", date(2026, 5, 22)), date=date(2026, 5, 22)))
    sweep(hub.engine, hub.clock, hub.policy)
    assert source_conflicts(hub, person_id) == [
        ("entitlement.aftercare_plan_date", "open", "")]
    assert plan_date(hub, person_id) == ("2026-05-22",
                                      "latest aftercare plan agreed in this s117 period")

    sweep(council_plans.engine, council_plans.clock, council_plans.policy)
    assert source_conflicts(council_plans, person_id) == [
        ("entitlement.aftercare_plan_date", "resolved", "system")]
    day, rule = plan_date(council_plans, person_id)
    assert day == "2026-05-20"
    assert rule == ("latest aftercare plan agreed in this s117 period; precedence: aftercare "
                    "plan from council-a "
                    "over trust-a (config precedence.aftercare_plan: 'council-*'): agreed "
                    "2026-05-20, not trust-a's 2026-05-22")


def annual_reviews(hub: Hub) -> tuple[int, int]:
    """The board report's annual reviews (on time, due), through the API."""
    with client_for(hub, Role.REGISTER_OWNER) as owner:
        annual = owner.get("/api/v1/reports/board").json()["reviews"]["annual"]
    return annual["on_time"], annual["due"]


def test_the_board_report_counts_the_reviews_the_register_keeps(hub: Hub, tmp_path: Path
                                                                ) -> None:
    """The trust tells a review on 10 April, the council one on 20 April: one review told
    twice (same kind, within 28 days). No rule: the register holds both, so the report counts
    the 20 April one as an annual review held on time after 10 April's. The council first for
    reviews: the trust's is set aside, and the report counts the first review only, the
    next one due in April 2027."""
    person_id = kept(hub, 44, date(2026, 1, 5), date(2026, 2, 2))
    apply(hub, RecordReviewCompleted(person=ref(44), provenance=prov(
        "trust-a", "44-review-trust", date(2026, 4, 10)), date=date(2026, 4, 10)))
    council(hub, 44, RecordReviewCompleted, date(2026, 4, 20), date=date(2026, 4, 20))
    sweep(hub.engine, hub.clock, hub.policy)
    assert source_conflicts(hub, person_id) == [("entitlement.last_review", "open", "")]
    assert annual_reviews(hub) == (1, 1)
    for council_reviews in wired(hub, tmp_path, '[precedence]\nreview = ["council-*"]\n'):
        sweep(council_reviews.engine, council_reviews.clock, council_reviews.policy)
        assert source_conflicts(council_reviews, person_id) == [
            ("entitlement.last_review", "resolved", "system")]
        assert annual_reviews(council_reviews) == (0, 1)
