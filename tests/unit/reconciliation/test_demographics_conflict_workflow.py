"""The workflow of ``identity-demographics-conflict`` (a record linked by NHS number whose
birth date differs from the register's): raised outside the detectors, so the sync never
closes it; a person settles it by accepting one of its sources, resolves or dismisses it."""

from __future__ import annotations

from typing import Any

import pytest

from reconciliation.exceptions import (
    DEMOGRAPHICS_KIND,
    StoredException,
    closing_status,
    plan_sync,
)
from reconciliation.findings import EXCEPTION_KINDS
from register_core.domain.errors import InvalidValue

DETAIL: dict[str, Any] = {
    "field": "person.birth_date", "source": "trust-b", "source_ref": "M-2",
    "values": [{"source": "trust-a", "value": "1980-01-01", "held_by_register": True},
               {"source": "trust-b", "value": "1981-02-03", "held_by_register": False}]}


def test_it_is_a_listed_kind() -> None:
    assert DEMOGRAPHICS_KIND == "identity-demographics-conflict"
    assert DEMOGRAPHICS_KIND in EXCEPTION_KINDS


@pytest.mark.parametrize("decision, status", [
    ("accept-source:trust-a", "resolved"), ("accept-source:trust-b", "resolved"),
    ("resolved", "resolved"), ("dismiss", "dismissed")])
def test_sensible_decisions_close_it(decision: str, status: str) -> None:
    assert closing_status(decision, correcting=False, kind=DEMOGRAPHICS_KIND,
                          detail=DETAIL) == status


@pytest.mark.parametrize("decision, correcting, words", [
    ("corrected", True, "no correction sets the value"),
    ("corrected", False, "no correction sets the value"),
    ("same-person", False, "identity-uncertain exception only"),
    ("different-people", False, "identity-uncertain exception only"),
    ("accept-source:council-a", False, "not in this conflict"),
])
def test_other_decisions_are_refused(decision: str, correcting: bool, words: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        closing_status(decision, correcting=correcting, kind=DEMOGRAPHICS_KIND,
                       detail=DETAIL)
    assert refused.value.rule == "exception-decision" and words in refused.value.message


def test_the_sync_leaves_it_alone() -> None:
    row = StoredException(id="e1", kind=DEMOGRAPHICS_KIND, status="open",
                          fingerprint=f"{DEMOGRAPHICS_KIND}:person.birth_date|trust-b|ab",
                          summary="s", detail=DETAIL)
    plan = plan_sync([row], [])
    assert not plan.changed
