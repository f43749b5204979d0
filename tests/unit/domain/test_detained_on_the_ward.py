"""A person admitted informally and then detained on the ward: the register is told only a
section change (HL7 A08, or a FHIR Encounter admitted 01 and discharged 03), never a
detention start. Joint policy 3.3: s117 applies to people detained under s3 (and 37, 45A,
47, 48); 2.2: it begins when they leave hospital; 4.3.3: a subsequent detention moves the
responsible council. Found by the seeds audit: the change was dropped (no detention) or hung
on the person's earlier, already ended detention."""

from __future__ import annotations

from datetime import date

from register_core.domain.position import compute_position

from .builders import (
    COUNCIL_A,
    COUNCIL_B,
    d,
    detention,
    left,
    record_all,
    regrade,
    residence,
)


def test_a_section_change_with_no_detention_starts_one__joint_policy_3_3() -> None:
    pos = compute_position(record_all([regrade("2026-01-10", "03", episode="V1")]),
                           d("2026-02-01"))
    assert [(e.ref, e.section, e.start, e.end) for e in pos.detentions] == [
        ("V1", "03", date(2026, 1, 10), None)]
    assert pos.entitlement.status == "pending"
    left_on = compute_position(record_all([regrade("2026-01-10", "03", episode="V1"),
                                           left("2026-03-01", episode="V1")]), d("2026-04-01"))
    assert (left_on.entitlement.status, left_on.entitlement.start) == (
        "active", date(2026, 3, 1))


def test_detained_on_the_ward_after_an_earlier_stay_is_a_new_detention__4_3_3() -> None:
    """Not hung on the earlier, ended detention: pending, and the council moves."""
    pos = compute_position(record_all([
        residence("2020-01-01", COUNCIL_A), detention("2024-01-01", episode="V1"),
        left("2024-03-01", episode="V1"), residence("2025-01-01", COUNCIL_B),
        regrade("2026-01-10", "03", episode="V2")]), d("2026-02-01"))
    assert [(e.ref, e.start, e.end) for e in pos.detentions] == [
        ("V1", date(2024, 1, 1), date(2024, 3, 1)), ("V2", date(2026, 1, 10), None)]
    assert pos.entitlement.status == "pending"
    assert pos.entitlement.responsible_council == COUNCIL_B


def test_a_regrade_of_the_detention_in_force_is_still_a_regrade() -> None:
    """Another source's ref for the same stay: the open detention is regraded, not doubled."""
    pos = compute_position(record_all([
        detention("2026-01-01", "02", episode="V1"),
        regrade("2026-01-10", "03", episode="council-ref-9")]), d("2026-02-01"))
    assert [(e.ref, e.sections) for e in pos.detentions] == [
        ("V1", [("02", date(2026, 1, 1)), ("03", date(2026, 1, 10))])]


def test_a_change_to_a_section_that_does_not_detain_starts_nothing() -> None:
    pos = compute_position(record_all([regrade("2026-01-10", "01", episode="V1")]),
                           d("2026-02-01"))
    assert pos.detentions == [] and pos.entitlement.status == "none"
