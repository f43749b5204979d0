"""The exceptions workflow rules (reconciliation.exceptions), pure."""

from __future__ import annotations

from datetime import date

import pytest

from reconciliation.exceptions import (
    ExceptionClosed,
    StoredException,
    closing_status,
    plan_sync,
    require_live,
)
from reconciliation.findings import Finding, fingerprint
from register_core.domain.errors import InvalidValue

from ..domain.builders import details, detention, left, synthetic_nhs
from .helpers import found


def _finding(fp: str, summary: str = "s") -> Finding:
    return Finding(kind="review-overdue", fingerprint=fp, summary=summary, detail={"a": 1})


def _row(fp: str, status: str = "open", closed_by: str | None = None, rid: str = "r1",
         summary: str = "s") -> StoredException:
    return StoredException(id=rid, kind="review-overdue", status=status, fingerprint=fp,
                           summary=summary, detail={"a": 1}, closed_by=closed_by)


def test_a_new_finding_opens_and_a_live_one_stays():
    plan = plan_sync([_row("x")], [_finding("x"), _finding("y")])
    assert [f.fingerprint for f in plan.open] == ["y"]
    assert not plan.auto_resolve and not plan.refresh


def test_a_finding_gone_resolves_its_live_exception():
    plan = plan_sync([_row("x"), _row("z", status="assigned", rid="r2")], [])
    assert [r.id for r in plan.auto_resolve] == ["r1", "r2"]


def test_a_changed_summary_refreshes_without_reopening():
    plan = plan_sync([_row("x")], [_finding("x", summary="new words")])
    assert [(r.id, f.summary) for r, f in plan.refresh] == [("r1", "new words")]
    assert not plan.open


def test_dismissed_stays_dismissed_until_the_facts_change():
    dismissed = _row("x", status="dismissed", closed_by="token-1")
    assert plan_sync([dismissed], [_finding("x")]).open == []
    assert [f.fingerprint for f in plan_sync([dismissed], [_finding("x2")]).open] == ["x2"]


def test_a_persons_resolution_holds_but_a_systems_does_not():
    by_person = _row("x", status="resolved", closed_by="token-1")
    by_system = _row("x", status="resolved", closed_by="system")
    assert plan_sync([by_person], [_finding("x")]).open == []
    assert len(plan_sync([by_system], [_finding("x")]).open) == 1


def test_two_live_rows_for_one_finding_keep_the_oldest():
    plan = plan_sync([_row("x", rid="old"), _row("x", rid="new")], [_finding("x")])
    assert [r.id for r in plan.duplicates] == ["new"]


@pytest.mark.parametrize("decision, correcting, status", [
    ("resolved", False, "resolved"), ("resolved", True, "resolved"),
    ("corrected", True, "resolved"), ("dismiss", False, "dismissed")])
def test_decisions_close_with_their_status(decision: str, correcting: bool, status: str):
    assert closing_status(decision, correcting=correcting) == status


@pytest.mark.parametrize("decision, correcting, field", [
    ("whatever", False, "decision"), ("accept-source:", False, "decision"),
    ("corrected", False, "apply"), ("dismiss", True, "apply")])
def test_bad_decisions_are_refused_naming_the_field(decision: str, correcting: bool,
                                                    field: str):
    with pytest.raises(InvalidValue) as refused:
        closing_status(decision, correcting=correcting)
    assert refused.value.field == field


def test_closed_exceptions_do_not_change():
    require_live("open")
    require_live("assigned")
    with pytest.raises(ExceptionClosed):
        require_live("dismissed")


def test_fingerprints_are_readable_and_bounded():
    assert fingerprint("review-overdue", ["3-month", "2026-06-02"]) == (
        "review-overdue:3-month|2026-06-02")
    long = fingerprint("source-conflict", ["x" * 300])
    assert len(long) <= 200 and long.startswith("source-conflict:sha256:")


def test_no_finding_carries_the_nhs_number_name_or_birth_date():
    journey = [details(family_name="Synthfamily", given_name="Testgiven",
                       birth_date=date(1988, 7, 14)),
               detention("2026-01-05"), left("2026-03-02")]
    text = repr(found(journey, "2026-12-01"))
    assert "missed-entitlement" in text
    for secret in (synthetic_nhs(1), "Synthfamily", "Testgiven", "1988-07-14"):
        assert secret not in text
