"""Journeys from the seed documents, with what the register should and should not raise."""

from __future__ import annotations

from datetime import date

from ..domain.builders import (
    COUNCIL_A,
    COUNCIL_B,
    charge,
    confirmed,
    detention,
    ended,
    left,
    legal,
    plan,
    practitioner,
    regrade,
    residence,
    review,
)
from .helpers import run


def test_s2_regraded_to_s3_becomes_entitled_on_leaving__joint_policy_3_3():
    journey = [residence("2020-01-01", COUNCIL_A), detention("2026-01-08", "02"),
               practitioner("worker-17", "2026-01-09"), regrade("2026-01-30", "03"),
               plan("2026-03-27"), left("2026-04-02"), confirmed("2026-04-03")]
    findings, pos = run(journey, "2026-05-01")
    assert (pos.entitlement.status, pos.entitlement.trigger_section) == ("active", "03")
    assert findings == []
    # Had the s2 not been regraded, leaving would give no entitlement and nothing to find.
    s2_only = [j for j in journey if j.kind not in ("legal-status", "s117-confirmed")]
    findings, pos = run(s2_only, "2026-05-01")
    assert pos.entitlement.status == "none" and findings == []


def test_s3_then_s17_leave_then_cto_then_cto_ends_entitlement_continues__2_2_8_4_5_3():
    journey = [detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
               plan("2025-01-30"), legal("s17-leave-start", "2025-02-03"),
               confirmed("2025-02-04"), legal("s17-leave-end", "2025-02-10"),
               legal("cto-start", "2025-03-03"), review("2025-04-28"),
               legal("cto-end", "2026-03-02"), review("2026-04-20")]
    findings, pos = run(journey, "2026-06-01")
    ent = pos.entitlement
    # Aftercare applied on the s17 leave of 3-10 Feb (8.4); back on the ward after it, the
    # leaving in force is the CTO of 3 Mar (2.2, 14.1).
    assert (ent.status, ent.start) == ("active", date(2025, 3, 3))
    assert not pos.on_cto  # the CTO ended; aftercare does not (5.3, 16.9)
    assert findings == []


def test_ending_by_the_council_alone__joint_policy_16_1():
    findings, pos = run([detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
                         plan("2025-02-28"), left("2025-03-03"), confirmed("2025-03-03"),
                         review("2025-05-20"), ended("2025-09-01", icb=False)], "2025-10-01")
    assert pos.entitlement.status == "active"
    assert [f.kind for f in findings] == ["one-sided-ending"]


def test_ending_while_on_a_cto__joint_policy_16_2():
    findings, pos = run([detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
                         plan("2025-02-28"), legal("cto-start", "2025-03-03"),
                         confirmed("2025-03-03"), review("2025-05-20"),
                         ended("2025-09-01")], "2025-10-01")
    assert pos.entitlement.status == "active" and pos.on_cto
    assert [f.kind for f in findings] == ["ended-on-cto"]


def _moved(re_detained: bool) -> list:
    journey = [residence("2019-04-01", COUNCIL_A), detention("2024-01-08"),
               practitioner("worker-17", "2024-01-09"), plan("2024-03-01"),
               left("2024-03-04"), confirmed("2024-03-04"), review("2024-05-20"),
               residence("2024-09-01", COUNCIL_B), review("2024-09-15", kind="unscheduled")]
    if re_detained:
        journey += [detention("2025-02-03", episode="ep-2"), left("2025-04-01", episode="ep-2"),
                    review("2025-05-01")]
    return journey


def test_re_detention_after_a_move_moves_the_council__4_3_3_uksc_2023_31():
    findings, pos = run(_moved(re_detained=True), "2025-06-01")
    assert pos.entitlement.responsible_council == COUNCIL_B
    assert findings == []


def test_a_move_without_re_detention_does_not__joint_policy_4_3_3_17_1():
    findings, pos = run(_moved(re_detained=False), "2025-06-01")
    assert pos.entitlement.responsible_council == COUNCIL_A
    assert findings == []


def test_review_overdue_at_3_months__joint_policy_14_1():
    findings, _ = run([detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
                       plan("2025-02-28"), left("2025-03-03"), confirmed("2025-03-03")],
                      "2025-06-04")
    assert [(f.kind, f.detail["review"], f.detail["due"]) for f in findings] == [
        ("review-overdue", "3-month", "2025-06-03")]


def test_child_detained_12_weeks_or_more__joint_policy_6_1():
    findings, _ = run([detention("2026-01-05"), practitioner("worker-17", "2026-01-05")],
                      "2026-04-06", birth="2011-02-14")
    assert [f.kind for f in findings] == ["child-12-week-notification"]


def test_a_charge_against_an_s117_service__joint_policy_13_1():
    findings, _ = run([detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
                       plan("2025-02-28"), left("2025-03-03"), confirmed("2025-03-03"),
                       charge("2025-04-01")], "2025-04-10")
    assert [f.kind for f in findings] == ["s117-charge"]


def test_a_discharge_known_only_to_the_trust__2_2_19_6():
    findings, pos = run([detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
                         plan("2025-02-28"), left("2025-03-03")], "2025-03-20")
    assert pos.entitlement.status == "active"  # the register knows: it is entitled
    assert [f.kind for f in findings] == ["missed-entitlement"]


def test_ending_while_on_s17_leave__joint_policy_1_1_2_2_8_4():
    """Still detained on leave (1.1, 2.2: aftercare is for those who "cease to be detained and
    leave hospital"; 8.4: it applies during the leave): the ending is refused, as on a CTO."""
    findings, pos = run([detention("2025-01-06"), practitioner("worker-17", "2025-01-07"),
                         plan("2025-02-28"), legal("s17-leave-start", "2025-03-03"),
                         confirmed("2025-03-03"), review("2025-05-20"),
                         ended("2025-06-02")], "2025-06-10")
    assert (pos.entitlement.status, pos.on_cto) == ("active", False)
    [refused] = findings
    assert refused.kind == "ended-on-s17-leave"
    assert "s17 leave" in refused.summary and "2025-06-02" in refused.summary
    assert [v["rule"] for v in refused.detail["violations"]] == ["no-ending-on-s17-leave"]


def test_ending_signed_by_the_council_the_person_moved_to__joint_policy_16_1_17_1_17_2():
    """16.1: both "the responsible Council" and the NHS; after a move the original council
    stays responsible (17.1) and accountable (17.2): the other council's sign-off is not its."""
    journey = [*_moved(re_detained=False), ended("2024-11-01", council_for=COUNCIL_B)]
    findings, pos = run(journey, "2024-11-10")
    assert (pos.entitlement.status, pos.entitlement.responsible_council) == ("active", COUNCIL_A)
    [refused] = findings
    assert refused.kind == "one-sided-ending"
    assert refused.detail["ending"]["council_signed_for"] == COUNCIL_B
    assert [v["rule"] for v in refused.detail["violations"]] == ["responsible-council-signoff"]
    # Signed for the responsible council, the same ending stands.
    findings, pos = run([*_moved(re_detained=False), ended("2024-11-01", council_for=COUNCIL_A)],
                        "2024-11-10")
    assert (pos.entitlement.status, findings) == ("ended", [])


def test_a_move_prompts_an_unscheduled_review__joint_policy_14_1():
    """14.1: unscheduled reviews "whenever the person moves to another local authority area":
    the seed journey held one a fortnight after the move; without it, a prompt."""
    journey = [j for j in _moved(re_detained=False) if j.kind != "review-completed"
               or j.date != date(2024, 9, 15)]  # type: ignore[attr-defined]
    findings, _ = run(journey, "2024-09-20")
    assert [(f.kind, f.detail["review"], f.detail["moved_to"]) for f in findings] == [
        ("review-overdue", "unscheduled", COUNCIL_B)]
    assert run(_moved(re_detained=False), "2024-09-20")[0] == []
