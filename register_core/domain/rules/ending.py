"""Lawful ending of s117 aftercare (joint policy 16.1–16.3, 16.6, 16.9; 5.7, 5.8).

Only a joint decision of council and NHS after a joint review, with reasons; never on a CTO;
never solely on one of the forbidden grounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..errors import UnlawfulEnding

# Grounds that alone never justify ending (16.6, 16.9, 5.7–5.8).
FORBIDDEN_SOLE_GROUNDS: dict[str, str] = {
    "refused-plan": "the person refuses the aftercare plan",
    "discharged-from-specialist-services": "discharged from specialist mental-health services",
    "time-elapsed": "an arbitrary period has passed",
    "deprived-of-liberty-mca": "deprived of liberty under the Mental Capacity Act",
    "may-return-to-hospital": "may be readmitted informally or under s2",
    "no-longer-on-cto-or-leave": "no longer on a CTO or s17 leave",
    "disengaged": "the person has disengaged from services",
}


@dataclass(frozen=True, kw_only=True)
class EndingDecision:
    date: date
    reason: str | None
    council_signed_by: str | None
    icb_signed_by: str | None
    grounds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str
    message: str
    exception_kind: str  # the register exception a recorded breach opens


def ending_violations(decision: EndingDecision, *, on_cto: bool) -> list[Violation]:
    """Every rule the decision breaks; empty when it may end the entitlement."""
    found: list[Violation] = []
    if on_cto:
        found.append(Violation("no-ending-on-cto", "date",
                               "s117 cannot end while the person is on a CTO (16.2)",
                               "ended-on-cto"))
    for side, signed_by in (("council", decision.council_signed_by),
                            ("icb", decision.icb_signed_by)):
        if not (signed_by and signed_by.strip()):
            found.append(Violation("joint-ending", f"{side}_signoff",
                                   f"ending needs both council and ICB sign-off; {side} missing"
                                   " (16.1, 16.3)", "one-sided-ending"))
    if not (decision.reason and decision.reason.strip()):
        found.append(Violation("ending-needs-reasons", "reason",
                               "an ending must record its reasons (16.3)", "one-sided-ending"))
    # A blank ground is no ground: it must not turn "solely refused-plan" into lawful.
    grounds = {g.strip() for g in decision.grounds if g and g.strip()}
    if grounds and grounds <= set(FORBIDDEN_SOLE_GROUNDS):
        names = ", ".join(sorted(grounds))
        found.append(Violation("forbidden-sole-ground", "grounds",
                               f"aftercare may not end solely because: {names} (16.6, 16.9)",
                               "one-sided-ending"))
    return found


def check_ending(decision: EndingDecision, *, on_cto: bool) -> None:
    """Raise UnlawfulEnding naming the first broken rule and its field."""
    violations = ending_violations(decision, on_cto=on_cto)
    if violations:
        first = violations[0]
        raise UnlawfulEnding(first.message, field=first.field, rule=first.rule)
