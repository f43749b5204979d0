"""What a detector reports, and the local choices detectors read (configuration, not code).

A ``Finding`` is one thing the register should look at for one person. Its ``fingerprint`` is
the exception kind plus the facts and dates behind it: the same situation seen again (the next
sweep, the next message) gives the same fingerprint, a changed one (a new due date, another
value from a source) a new one. That is what lets a dismissed exception stay dismissed until
the facts behind it change. Summaries and fingerprints carry no NHS number, name or birth date.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# Stable identifiers (architecture section 7). Identity and delivery kinds are raised
# elsewhere (identity matching, outbound SLA); they are listed so the API can filter on them.
EXCEPTION_KINDS: tuple[str, ...] = (
    "missed-entitlement", "ended-on-cto", "one-sided-ending", "review-overdue",
    "no-named-practitioner", "no-aftercare-plan", "source-conflict", "identity-uncertain",
    "s117-charge", "child-12-week-notification", "delivery-sla-breach",
    "ended-during-dispute", "ended-during-conditional-discharge", "ended-without-review",
    "ended-on-s17-leave", "identity-demographics-conflict",
)
FINGERPRINT_MAX = 200  # register_exceptions.fingerprint is String(200)


@dataclass(frozen=True, kw_only=True)
class DetectorPolicy:
    """Grace periods in England working days before a missing duty becomes an exception.

    The defaults are the 5 working days joint policy 19.6 allows for recording a change of
    s117 status: a fact may reach the register that long after the event it tells of.
    """

    confirmation_working_days: int = 5
    named_practitioner_working_days: int = 5
    aftercare_plan_working_days: int = 5
    review_grace_working_days: int = 0
    # An unscheduled review on a move of council area (joint policy 14.1 says "whenever the
    # person moves", no deadline): the same window for the review's record to reach the
    # register, counted from the later of the move and the hub hearing of it.
    unscheduled_review_working_days: int = 5
    # Fact kinds from another partner that acknowledge an entitlement the trust reported.
    acknowledging_kinds: frozenset[str] = field(
        default_factory=lambda: frozenset({"s117-confirmed"}))


@dataclass(frozen=True)
class Finding:
    kind: str
    fingerprint: str
    summary: str
    detail: dict[str, Any]


def iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def fingerprint(kind: str, parts: Iterable[object]) -> str:
    """``kind:part|part|…``, readable; hashed (still prefixed by kind) when too long."""
    key = "|".join("" if p is None else (p.isoformat() if isinstance(p, date) else str(p))
                   for p in parts)
    text = f"{kind}:{key}"
    if len(text) <= FINGERPRINT_MAX:
        return text
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def finding(kind: str, parts: Iterable[object], summary: str,
            detail: dict[str, Any]) -> Finding:
    return Finding(kind=kind, fingerprint=fingerprint(kind, parts), summary=summary,
                   detail=detail)
