"""Lawful ending of s117 aftercare (joint policy 1.1, 2.2, 8.4, 16.1–16.3, 16.6, 16.9, 17.1,
17.2; 5.7, 5.8; MoU 4, 5; dispute protocol 3, 4, 7; standards.md section 6).

Only a joint decision of the responsible council and the NHS after a joint recorded review,
with reasons, dated no earlier than both sign-offs; never on a CTO; never while the person is
on s17 leave (still detained: the duty is owed to those who cease to be detained and leave
hospital); never solely on one of the forbidden grounds; never while a dispute about ending
is open (care continues throughout). Two endings stand but are flagged: one during a
conditional discharge (the person is liable to recall), and one with no review on the
register since the person left hospital other than single-agency ones (MoU 5: "Reviews will
be joint, recorded"). The review is flagged, not required: the hub may not hear of every
review, and the contract's ``review.completed`` need not say whether a review was joint, so a
refusal would keep pushing "active" after both partners signed an ending with reasons. A
review known to be single-agency (``joint`` false) is not the joint review; one whose
``joint`` is unknown is given the benefit of the doubt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from ..errors import UnlawfulEnding
from .disputes import DisputeSpan

# Grounds that alone never justify ending, each with the seed paragraph that says so (joint
# policy unless another document is named).
FORBIDDEN_SOLE_GROUNDS: dict[str, str] = {
    "refused-plan": "the person refuses the aftercare plan (joint policy 16.9)",
    "discharged-from-specialist-services": "discharged from specialist mental-health services "
                                           "(joint policy 16.6, 16.9)",
    "time-elapsed": "an arbitrary period has passed (joint policy 16.9)",
    "deprived-of-liberty-mca": "deprived of liberty under the Mental Capacity Act "
                               "(joint policy 16.9)",
    "may-return-to-hospital": "may be readmitted informally or under s2 (joint policy 16.9)",
    "no-longer-on-cto-or-leave": "no longer on a CTO or s17 leave (joint policy 16.9)",
    "disengaged": "the person has disengaged from services (joint policy 5.7, 5.8)",
    "moved-out-of-area": "the person moved to or was placed in another council area: s117 "
                         "eligibility remains with the original council and ICB "
                         "(joint policy 17.1)",
    "service-reductions": "service reductions (dispute protocol 7)",
    "commissioning-changes": "commissioning changes or organisational restructuring "
                             "(dispute protocol 7; dispute protocol 4)",
    "budget-constraints": "budget constraints or financial pressures: needs-led, not cost-led "
                          "(dispute protocol 4; dispute protocol 3)",
}


@dataclass(frozen=True, kw_only=True)
class EndingDecision:
    date: date
    reason: str | None
    council_signed_by: str | None
    icb_signed_by: str | None
    grounds: tuple[str, ...] = ()
    # The latest review of this entitlement on the register not known to be single-agency
    # (MoU 5: reviews are joint), held since the person left hospital and on or before the
    # ending date; None: none recorded (flagged, 16.1).
    review: date | None = None
    # The latest single-agency review (``joint`` false) in the same window, said in the flag
    # when it is the only kind of review there is.
    single_agency_review: date | None = None
    # The dates of the two sign-offs (None: not known); the ending may not be dated before the
    # later one (16.1; MoU 4).
    council_signed_on: date | None = None
    icb_signed_on: date | None = None
    # The organisation (GSS code) the council sign-off was given for, and the register's
    # responsible council on the ending date; None: not known, and then not judged.
    council_signed_for: str | None = None
    responsible_council: str | None = None


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str
    message: str
    exception_kind: str  # the register exception a recorded breach opens


def _organisation(code: str | None) -> str | None:
    """An organisation code as compared: codes are told in either case, maybe padded."""
    return code.strip().upper() if code and code.strip() else None


def signed_by_another_council(decision: EndingDecision) -> bool:
    """Whether the council sign-off was given for a council that is not the responsible one
    (both known): it is not the responsible council's sign-off (16.1: "both the responsible
    Council and" the NHS; 17.1, 17.2: after a move the responsible council keeps the duty
    and the accountability, whatever it delegates to the council of the area)."""
    signed_for = _organisation(decision.council_signed_for)
    responsible = _organisation(decision.responsible_council)
    return (bool(decision.council_signed_by and decision.council_signed_by.strip())
            and signed_for is not None and responsible is not None
            and signed_for != responsible)


def ending_violations(decision: EndingDecision, *, on_cto: bool, on_s17_leave: bool = False,
                      disputes: Sequence[DisputeSpan] = ()) -> list[Violation]:
    """Every rule the decision breaks; empty when it may end the entitlement.

    ``on_s17_leave``: on the ending date the person is on s17 leave from a detention that has
    not ended. ``disputes``: the person's disputes on the register; one about ending that is
    open on the ending date (opened on or before it, not resolved by it) holds the ending
    back.
    """
    found: list[Violation] = []
    if on_cto:
        found.append(Violation("no-ending-on-cto", "date",
                               "s117 cannot end while the person is on a CTO (16.2)",
                               "ended-on-cto"))
    if on_s17_leave:
        # Leave of absence is not discharge: the person is still detained and may be
        # recalled to the ward. The duty is owed to people who "cease to be detained and
        # leave hospital" (1.1, 2.2); the policy applies aftercare during the leave (8.4),
        # so the need it meets has not been tested outside detention yet, and the discharge
        # still to come would start the duty again. As on a CTO (16.2), the partners record
        # the ending once the person is discharged from the detention.
        found.append(Violation(
            "no-ending-on-s17-leave", "date",
            "s117 cannot end while the person is on s17 leave: they are still detained and "
            "liable to recall, not yet ceased to be detained and left hospital (joint policy "
            "1.1, 2.2), and aftercare arrangements apply throughout the leave (8.4); as on a "
            "CTO (16.2), an ending dated on or after the discharge from detention may stand",
            "ended-on-s17-leave"))
    for dispute in disputes:
        if dispute.kind == "ending" and dispute.open_on(decision.date):
            found.append(Violation(
                "no-ending-during-dispute", "date",
                f"a dispute about ending (dispute {dispute.id}, opened "
                f"{dispute.opened.isoformat()}) is open on the ending date: care continues "
                "throughout a dispute and the entitlement stays active (dispute protocol 3, 7); "
                "an ending the partners record on or after the day it is resolved may stand",
                "ended-during-dispute"))
    for side, signed_by in (("council", decision.council_signed_by),
                            ("icb", decision.icb_signed_by)):
        if not (signed_by and signed_by.strip()):
            found.append(Violation("joint-ending", f"{side}_signoff",
                                   f"ending needs both council and ICB sign-off; {side} missing"
                                   " (16.1, 16.3)", "one-sided-ending"))
    other_council = signed_by_another_council(decision)
    if other_council:
        # The joint decision is the responsible council's and the NHS's (16.1): another
        # council's sign-off (the council of the area the person moved to, say) leaves the
        # responsible council's missing, so the ending is one-sided.
        found.append(Violation(
            "responsible-council-signoff", "council_signoff.organisation",
            f"the council sign-off was given for {_organisation(decision.council_signed_for)}"
            f", not the responsible council {_organisation(decision.responsible_council)}: "
            "only the responsible council and the NHS can end s117 jointly (16.1), and after "
            "a move the responsible council keeps the duty and the accountability for it "
            "(17.1, 17.2), so the responsible council has not signed off", "one-sided-ending"))
    # Dated before the later sign-off, the ending would take effect on a day when only one
    # partner had decided: not joint on that date (16.1 "only ... if both"; MoU 4: no
    # unilateral action in cessation). Refused, not moved to the later sign-off date: the
    # register then never shows an ending date no partner recorded (and never pushes one to
    # subscribers), and the CTO, dispute and review rules are judged on the date recorded.
    # The partners record the ending again, dated on or after the later sign-off, as they do
    # after a dispute about ending is resolved.
    signed_on = [(on, side) for side, by, on in (
        ("council", None if other_council else decision.council_signed_by,
         decision.council_signed_on),
        ("icb", decision.icb_signed_by, decision.icb_signed_on))
        if on is not None and by and by.strip()]
    if signed_on:
        later, side = max(signed_on)
        if decision.date < later:
            found.append(Violation(
                "joint-ending-date", "date",
                f"the ending is dated {decision.date.isoformat()} but the {side} signed off on "
                f"{later.isoformat()}: the decision was not joint on "
                f"{decision.date.isoformat()}, and s117 ends only when both partners are "
                "satisfied, neither acting alone (16.1; MoU 4); an ending dated on or after "
                f"{later.isoformat()} may stand", "one-sided-ending"))
    if not (decision.reason and decision.reason.strip()):
        found.append(Violation("ending-needs-reasons", "reason",
                               "an ending must record its reasons (16.3)", "one-sided-ending"))
    # A blank ground is no ground: it must not turn "solely refused-plan" into lawful.
    grounds = {g.strip() for g in decision.grounds if g and g.strip()}
    if grounds and grounds <= set(FORBIDDEN_SOLE_GROUNDS):
        names = "; ".join(f"{g}: {FORBIDDEN_SOLE_GROUNDS[g]}" for g in sorted(grounds))
        found.append(Violation("forbidden-sole-ground", "grounds",
                               f"aftercare may not end solely because of {names}",
                               "one-sided-ending"))
    return found


def ending_flags(decision: EndingDecision, *, conditionally_discharged: bool
                 ) -> list[Violation]:
    """What a lawful ending leaves to be looked at, though it stands: one during a
    conditional discharge, when the person is liable to recall (standards.md section 6); one
    with no review on the register since the person left hospital other than single-agency
    ones (16.1, 16.3; MoU 5)."""
    flags = []
    if conditionally_discharged:
        flags.append(Violation(
            "ending-during-conditional-discharge", "date",
            "ended while the person is conditionally discharged and liable to recall: the "
            "ending stands but must be checked (standards.md section 6)",
            "ended-during-conditional-discharge"))
    if decision.review is None and decision.single_agency_review is not None:
        flags.append(Violation(
            "ending-after-joint-review", "review",
            "the only reviews on the register since the person left hospital and on or before "
            "the ending date were single-agency (the latest "
            f"{decision.single_agency_review.isoformat()}), and an ending must follow a joint "
            "recorded review (16.1, 16.3; MoU 5: reviews will be joint, recorded): the ending "
            "stands, signed by both with reasons, but must be checked",
            "ended-without-review"))
    elif decision.review is None:
        flags.append(Violation(
            "ending-after-joint-review", "review",
            "no review is on the register since the person left hospital and on or before "
            "the ending date, and an ending must follow a joint recorded review: the ending "
            "stands, signed by both with reasons, but must be checked (16.1, 16.3)",
            "ended-without-review"))
    return flags


def check_ending(decision: EndingDecision, *, on_cto: bool, on_s17_leave: bool = False,
                 disputes: Sequence[DisputeSpan] = ()) -> None:
    """Raise UnlawfulEnding naming the first broken rule and its field."""
    violations = ending_violations(decision, on_cto=on_cto, on_s17_leave=on_s17_leave,
                                   disputes=disputes)
    if violations:
        first = violations[0]
        raise UnlawfulEnding(first.message, field=first.field, rule=first.rule)
