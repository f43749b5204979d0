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


def leaving_in_force(
    entitling_since: date,
    discharge: tuple[str, date] | None,
    leaves: Sequence[tuple[date, date | None]],
    *,
    s17_leave_counts: bool = True,
) -> tuple[str, date, date | None] | None:
    """The leaving of one detention that the person's present stretch out of hospital began
    with, and the day a person on s17 leave came back to the ward (None while out).

    ``discharge`` is how and when the detention ended (left hospital, CTO, conditional
    discharge), ``leaves`` its s17 leave periods (out, back; back None while still out).
    Aftercare applies during s17 leave (joint policy 2.2, 8.4: when the partnership counts
    it), but a leave the person came back from before leaving hospital is over: they are in
    hospital again, and the first review runs from the discharge (14.1), not from that
    leave. A leave still running when the person is discharged (back on the discharge day at
    the earliest: the leave "directly resulted in discharge", 8.4) began that stretch.
    Returns (kind, date, back): back is the return from the latest leave when the detention
    has not ended and no leave is running; None when nothing started the duty yet.
    """
    counted = sorted((out, back) for out, back in leaves
                     if s17_leave_counts and out >= entitling_since)
    if discharge is not None:
        kind, left = discharge
        if not starts_entitlement(kind, s17_leave_counts=s17_leave_counts):
            return None
        running = [out for out, back in counted if out <= left and (back is None or back >= left)]
        if running:
            return "s17-leave-start", running[0], None
        return (kind, left, None) if left >= entitling_since else None
    if not counted:
        return None
    out, back = counted[-1]
    return "s17-leave-start", out, back
