"""Workflow rules the outbound audit found missing: a ``delivery-sla-breach`` is never closed
by the detector sync (it is raised by the SLA clock, not a detector), and ``accept-source``
applies to a source-conflict only, naming one of its sources."""

from __future__ import annotations

from typing import Any

import pytest

from reconciliation.exceptions import (
    StoredException,
    closing_status,
    conflict_sources,
    plan_sync,
)
from reconciliation.findings import Finding
from register_core.domain.errors import InvalidValue


def _row(kind: str, fingerprint: str, *, status: str = "open", rid: str = "r1",
         closed_by: str | None = None) -> StoredException:
    return StoredException(id=rid, kind=kind, status=status, fingerprint=fingerprint,
                           summary="s", detail={}, closed_by=closed_by)


def test_the_sync_leaves_an_open_breach_alone_whatever_the_findings() -> None:
    breach = _row("delivery-sla-breach", "delivery-sla-breach:7")
    assigned = _row("delivery-sla-breach", "delivery-sla-breach:8", status="assigned",
                    rid="r2")
    for findings in ([], [Finding(kind="review-overdue", fingerprint="review-overdue:x",
                                  summary="s", detail={})]):
        plan = plan_sync([breach, assigned], findings)
        assert plan.auto_resolve == [] and plan.duplicates == []
        assert [f.kind for f in plan.open] == [f.kind for f in findings]


def test_detector_kinds_are_still_closed_when_their_finding_goes() -> None:
    plan = plan_sync([_row("review-overdue", "review-overdue:x"),
                      _row("delivery-sla-breach", "delivery-sla-breach:7", rid="r2")], [])
    assert [r.kind for r in plan.auto_resolve] == ["review-overdue"]


CONFLICT: dict[str, Any] = {
    "field": "detention.section",
    "values": [{"source": "trust-a", "value": "03", "facts": ["fact 1: … from trust-a"]},
               {"source": "council-a", "value": "02", "facts": []}]}


def test_the_sources_of_a_conflict_are_read_from_its_detail_wherever_they_are() -> None:
    assert conflict_sources(CONFLICT) == {"trust-a", "council-a"}
    death = {"death_told_by": [{"source": "trust-a"}],
             "later_events": [{"source": "council-b", "kind": "x"}]}
    assert conflict_sources(death) == {"trust-a", "council-b"}
    assert conflict_sources({"ending": {"source": "council-a", "date": "2026-05-01"}}) == {
        "council-a"}
    assert conflict_sources(None) == set() and conflict_sources({}) == set()


def test_accept_source_settles_a_source_conflict_for_one_of_its_sources() -> None:
    assert closing_status("accept-source:trust-a", correcting=False,
                          kind="source-conflict", detail=CONFLICT) == "resolved"
    assert closing_status("accept-source:council-a", correcting=False,
                          kind="source-conflict") == "resolved"  # no detail: kind checked


@pytest.mark.parametrize("decision, kind, detail, words", [
    ("accept-source:trust-a", "delivery-sla-breach", None, "source-conflict exception only"),
    ("accept-source:trust-a", "review-overdue", None, "source-conflict exception only"),
    ("accept-source:trust-a", None, None, "source-conflict exception only"),
    ("accept-source:nobody", "source-conflict", CONFLICT, "not in this conflict"),
    ("accept-source:", "source-conflict", CONFLICT, "needs a source id"),
])
def test_accept_source_elsewhere_is_refused_naming_the_decision(
        decision: str, kind: str | None, detail: dict[str, Any] | None, words: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        closing_status(decision, correcting=False, kind=kind, detail=detail)
    assert refused.value.field == "decision" and words in refused.value.message


def test_the_refusal_lists_the_sources_that_may_be_accepted() -> None:
    with pytest.raises(InvalidValue) as refused:
        closing_status("accept-source:trust-b", correcting=False, kind="source-conflict",
                       detail=CONFLICT)
    assert "accept-source:council-a, accept-source:trust-a" in refused.value.message


@pytest.mark.parametrize("decision", ["resolved", "corrected"])
def test_an_identity_question_is_not_closed_without_a_decision(decision: str) -> None:
    """'resolved' would close it with neither a merge nor a recorded pair decision."""
    with pytest.raises(InvalidValue) as refused:
        closing_status(decision, correcting=decision == "corrected",
                       kind="identity-uncertain")
    assert refused.value.field == "decision"
    assert closing_status("dismiss", correcting=False, kind="identity-uncertain") == "dismissed"
