"""The pure rules behind identity-uncertain exceptions: which decisions close them, that the
detector sync leaves them alone, and how the matcher's levels read for a register owner."""

from __future__ import annotations

import pytest

from reconciliation.exceptions import StoredException, closing_status, plan_sync
from register_core.domain.errors import InvalidValue
from register_core.services.identity import comparison, pair_fingerprint


def _identity_row(status: str = "open") -> StoredException:
    return StoredException(id="e1", kind="identity-uncertain", status=status,
                           fingerprint="identity-uncertain:a|b", summary="s", detail={})


@pytest.mark.parametrize("decision, status", [("same-person", "resolved"),
                                              ("different-people", "dismissed")])
def test_identity_decisions_close_identity_exceptions(decision: str, status: str) -> None:
    """standards.md section 4 ("NHS number"): without one, a person decides identity."""
    assert closing_status(decision, correcting=False, kind="identity-uncertain") == status


@pytest.mark.parametrize("kind, correcting, field", [
    ("missed-entitlement", False, "decision"), (None, False, "decision"),
    ("identity-uncertain", True, "apply")])
def test_identity_decisions_elsewhere_are_refused(kind: str | None, correcting: bool,
                                                  field: str) -> None:
    """standards.md section 4: a merge is only ever an answer to an identity question."""
    with pytest.raises(InvalidValue) as refused:
        closing_status("same-person", correcting=correcting, kind=kind)
    assert refused.value.field == field


def test_the_detector_sync_leaves_identity_exceptions_alone() -> None:
    """standards.md section 4: no detector finds an identity question, so the sync must
    neither resolve it as "condition no longer holds" nor count it as a duplicate."""
    plan = plan_sync([_identity_row()], [])
    assert not plan.changed


def test_levels_read_as_agree_fuzzy_disagree_missing() -> None:
    """standards.md section 4: the owner sees how each field compared, not the values."""
    assert comparison({"family_name": "exact", "given_name": "nickname-or-initial",
                       "birth_date": "else", "sex": "equal", "postcode": "missing",
                       "gp_practice": "differs", "nhs_number": "differs"}) == {
        "family_name": "agree", "given_name": "fuzzy", "birth_date": "disagree",
        "sex": "agree", "postcode": "missing", "gp_practice": "disagree",
        "nhs_number": "disagree"}


def test_a_pair_has_one_fingerprint_whichever_way_round() -> None:
    """standards.md section 4: a decision about two records holds in both directions."""
    assert pair_fingerprint("b", "a") == pair_fingerprint("a", "b")
