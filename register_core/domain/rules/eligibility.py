"""Who is entitled, and from when (s117-rules.md "Who is entitled"; joint policy 2.2, 3.3, 5.5,
8.4, 19.2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from ..legal_status import is_entitling

# Ways of leaving hospital that start the duty (joint policy 2.2, 8.4). s17 leave is a local
# choice (standards.md section 6): the seed policy counts it, case law (CXF) is less sure.
LEAVING_KINDS: frozenset[str] = frozenset(
    {"left-hospital", "cto-start", "conditional-discharge-start", "s17-leave-start"}
)


def first_entitling(sections: Sequence[tuple[str, date]]) -> tuple[str, date] | None:
    """The first entitling section of a detention and the date it took effect.

    ``sections`` is the detention's section history in date order: the admission section,
    then regrades. An s2 regraded to s3 becomes entitling on the regrade date.
    """
    for code, since in sorted(sections, key=lambda item: item[1]):  # stable: same-day order kept
        if is_entitling(code):
            return code, since
    return None


def starts_entitlement(leaving_kind: str, *, s17_leave_counts: bool = True) -> bool:
    """Whether this way of leaving hospital after an entitling detention starts aftercare."""
    if leaving_kind == "s17-leave-start":
        return s17_leave_counts
    return leaving_kind in LEAVING_KINDS


def entitlement_start(
    entitling_since: date,
    leavings: Sequence[tuple[str, date]],
    *,
    s17_leave_counts: bool = True,
) -> tuple[str, date] | None:
    """The first leaving at or after the entitling date that starts the duty, if any.

    People who stay in hospital informally after detention ends are entitled once they leave
    (joint policy 5.5): that leaving is a ``left-hospital`` after the section ended.
    """
    for kind, when in sorted(leavings, key=lambda item: item[1]):
        if when >= entitling_since and starts_entitlement(kind, s17_leave_counts=s17_leave_counts):
            return kind, when
    return None
