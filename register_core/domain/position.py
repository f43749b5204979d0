"""Compute a person's S117 position from their journal of facts, with the reasons.

Pure and deterministic: the same facts and the same ``today`` give the same position, so the
register can be recomputed at any time (a scheduled sweep moves due dates forward) and every
value carries an ``Explanation``: the rule applied and the facts it rested on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from .commands import (
    RecordAftercarePlanAgreed,
    RecordChildNotification,
    RecordDetentionStarted,
    RecordGpRegistration,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
    SetNamedPractitioner,
)
from .legal_status import DETAINED_CODES, is_entitling
from .model import Fact, Person
from .rules import eligibility, ending, responsibility, reviews

Status = Literal["none", "pending", "active", "ended"]


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Local choices the seeds leave to each partnership (configuration, not code)."""

    s17_leave_starts_entitlement: bool = True
    practice_to_icb: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    rule: str
    facts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "facts": list(self.facts)}


@dataclass(kw_only=True)
class Detention:
    ref: str
    section: str
    start: date
    end: date | None = None
    end_reason: str | None = None
    provider_ods: str | None = None
    responsible_icb: str | None = None
    sections: list[tuple[str, date]] = field(default_factory=list)
    detained_until: date | None = None  # section ended, may stay informally
    continuation: bool = False  # re-detained by CTO revocation: not a new detention
    facts: list[Fact] = field(default_factory=list)

    @property
    def entitling(self) -> tuple[str, date] | None:
        return eligibility.first_entitling(self.sections)


@dataclass(frozen=True, kw_only=True)
class LegalStatusEvent:
    kind: str
    date: date
    section: str | None
    episode_ref: str | None
    end: date | None
    fact: Fact


@dataclass(frozen=True, kw_only=True)
class Ending:
    date: date
    reason: str | None
    council_signoff: dict[str, str] | None
    icb_signoff: dict[str, str] | None
    fact: Fact


@dataclass(frozen=True, kw_only=True)
class RefusedEnding:
    """An ending a source recorded that the rules do not allow: it does not end anything."""

    fact: Fact
    violations: tuple[ending.Violation, ...]


@dataclass(kw_only=True)
class Entitlement:
    status: Status = "none"
    start: date | None = None
    pending_since: date | None = None
    trigger_section: str | None = None
    trigger_episode: str | None = None
    responsible_council: str | None = None
    responsible_icb: str | None = None
    named_practitioner: str | None = None
    aftercare_plan_date: date | None = None
    last_review: date | None = None
    next_review_due: date | None = None
    ended: Ending | None = None


@dataclass(kw_only=True)
class Position:
    as_of: date
    detentions: list[Detention]
    legal_status_events: list[LegalStatusEvent]
    entitlement: Entitlement
    on_cto: bool
    conditionally_discharged: bool
    in_hospital: bool
    reviews: list[tuple[date, str]]
    charges_under_s117: list[Fact]
    refused_endings: list[RefusedEnding]
    child_notified: date | None
    explain: dict[str, Explanation]


def _order(fact: Fact) -> tuple[date, int]:
    return (fact.effective or date.min, fact.seq)


def _find_episode(episodes: list[Detention], ref: str | None, when: date) -> Detention | None:
    if ref is not None:
        for ep in reversed(episodes):
            if ep.ref == ref:
                return ep
    for ep in reversed(episodes):
        if ep.start <= when and (ep.end is None or ep.end >= when):
            return ep
    return episodes[-1] if episodes and episodes[-1].start <= when else None


def _same_detention(ep: Detention, cmd: RecordDetentionStarted) -> bool:
    """Two sources telling of one detention: same start and same section, or same ref."""
    return (cmd.episode_ref is not None and ep.ref == cmd.episode_ref) or (
        ep.start == cmd.start and ep.sections[0][0] == cmd.section)


def build_detentions(facts: Sequence[Fact]) -> tuple[list[Detention], list[LegalStatusEvent]]:
    """Fold detention and legal-status facts, in effective-date order, into episodes."""
    episodes: list[Detention] = []
    events: list[LegalStatusEvent] = []
    for fact in sorted(facts, key=_order):
        cmd = fact.command
        if isinstance(cmd, RecordDetentionStarted):
            existing = next((ep for ep in episodes if _same_detention(ep, cmd)), None)
            if existing:
                existing.facts.append(fact)
                if cmd.end and existing.end is None:
                    existing.end, existing.end_reason = cmd.end, "left-hospital"
                continue
            ep = Detention(ref=cmd.episode_ref or f"fact-{fact.seq}", section=cmd.section,
                           start=cmd.start, provider_ods=cmd.provider_ods,
                           responsible_icb=cmd.responsible_icb,
                           sections=[(cmd.section, cmd.start)], facts=[fact])
            if cmd.end:
                ep.end, ep.end_reason = cmd.end, "left-hospital"
            episodes.append(ep)
        elif isinstance(cmd, RecordLegalStatusChanged):
            events.append(LegalStatusEvent(kind=cmd.event, date=cmd.date, section=cmd.section,
                                           episode_ref=cmd.episode_ref, end=cmd.end, fact=fact))
            ep = _find_episode(episodes, cmd.episode_ref, cmd.date)
            if cmd.event == "cto-revoked" and ep is not None:
                # Revocation returns the person to the original detention (s17F): not new.
                revived = Detention(ref=f"{ep.ref}-revoked-{fact.seq}", section=ep.section,
                                    start=cmd.date, provider_ods=ep.provider_ods,
                                    responsible_icb=ep.responsible_icb,
                                    sections=[(ep.section, cmd.date)], continuation=True,
                                    facts=[fact])
                episodes.append(revived)
                continue
            if ep is None:
                continue
            ep.facts.append(fact)
            if cmd.event == "section-change" and cmd.section:
                ep.sections.append((cmd.section, cmd.date))
                ep.section = cmd.section
            elif cmd.event == "transfer" and cmd.provider_ods:
                ep.provider_ods = cmd.provider_ods
            elif cmd.event == "detention-ended":
                ep.detained_until = cmd.date
            elif cmd.event in ("cto-start", "conditional-discharge-start") and ep.end is None:
                ep.end = cmd.date
                ep.end_reason = "cto" if cmd.event == "cto-start" else "conditional-discharge"
        elif isinstance(cmd, RecordLeftHospital):
            ep = _find_episode(episodes, cmd.episode_ref, cmd.date)
            if ep is not None and ep.end is None:
                ep.end, ep.end_reason = cmd.date, cmd.reason
                ep.facts.append(fact)
    return episodes, events


def _open_periods(events: Sequence[LegalStatusEvent], start: str, stops: set[str],
                  today: date) -> bool:
    """Whether a CTO (or conditional discharge) is in force on ``today``."""
    in_force = False
    for ev in sorted(events, key=lambda e: (e.date, e.fact.seq)):
        if ev.date > today:
            break
        if ev.kind == start:
            in_force = ev.end is None or ev.end > today
        elif ev.kind in stops:
            in_force = False
    return in_force


def on_cto_at(events: Sequence[LegalStatusEvent], day: date) -> bool:
    return _open_periods(events, "cto-start", {"cto-end", "cto-revoked"}, day)


def compute_position(person: Person, today: date, policy: Policy | None = None) -> Position:
    policy = policy or Policy()
    facts = sorted(person.live_facts(), key=_order)
    episodes, events = build_detentions(facts)
    explain: dict[str, Explanation] = {}
    ent = Entitlement()

    residences = [(f.command.date, f.command.council_code, f) for f in facts
                  if isinstance(f.command, RecordOrdinaryResidenceChanged)]
    gp_regs = [(f.command.date, f.command.icb_code or f.command.gp_practice_ods, f)
               for f in facts if isinstance(f.command, RecordGpRegistration)]
    endings = [f for f in facts if isinstance(f.command, RecordS117Ended)]
    confirmations = [f for f in facts if isinstance(f.command, RecordS117Confirmed)]
    refused: list[RefusedEnding] = []

    # Walk the s117 "periods": each opens at an entitling detention (pending) or a council
    # confirmation, activates on leaving hospital, and closes only on a lawful joint ending.
    timeline: list[tuple[date, int, str, object]] = []
    for ep in episodes:
        if ep.entitling:
            timeline.append((ep.entitling[1], ep.facts[0].seq, "entitling", ep))
    for f in confirmations:
        timeline.append((f.command.start, f.seq, "confirmed", f))  # type: ignore[attr-defined]
    for f in endings:
        timeline.append((f.command.date, f.seq, "ending", f))  # type: ignore[attr-defined]
    timeline.sort(key=lambda item: (item[0], item[1]))

    trigger_facts: list[str] = []
    period_first_detention: date | None = None
    for when, _seq, what, obj in timeline:
        if what == "entitling":
            ep: Detention = obj  # type: ignore[assignment]
            code, since = ep.entitling  # type: ignore[misc]
            if ent.status in ("none", "ended"):
                ent = Entitlement(pending_since=since)
                period_first_detention = ep.start
            # Back in hospital under an entitling section before discharge from s117: the
            # period (and its ICB) goes on, pending a new leaving.
            ent.status = "pending"
            ent.trigger_section, ent.trigger_episode = code, ep.ref
            trigger_facts = [f.cite() for f in ep.facts]
            if not ep.continuation:
                council = responsibility.responsible_council(
                    [(d, c) for d, c, _ in residences], ep.start)
                ent.responsible_council = council
                explain["entitlement.responsible_council"] = Explanation(
                    "ordinary residence immediately before the latest entitling detention "
                    "(joint policy 4.3.1; Worcestershire [2023] UKSC 31)" if council else
                    "no ordinary residence known before the detention",
                    (*[f.cite() for d, _, f in residences if d <= ep.start][-1:],
                     trigger_facts[0]))
            leaving = _leaving_after(ep, events, since, policy)
            if leaving:
                kind, left = leaving
                ent.status, ent.start = "active", left
                explain["entitlement.start"] = Explanation(
                    f"left hospital ({kind}) after detention under an entitling section "
                    "(joint policy 2.2, 8.4)", tuple(trigger_facts))
            explain["entitlement.trigger_section"] = Explanation(
                "first entitling section of the detention, s2 regraded to s3 counts from the "
                "regrade (joint policy 3.3)", tuple(trigger_facts))
        elif what == "confirmed":
            fact: Fact = obj  # type: ignore[assignment]
            if ent.status in ("none", "ended"):
                ent = Entitlement(status="active", start=when)
                period_first_detention = period_first_detention or when
                trigger_facts = [fact.cite()]
                explain["entitlement.start"] = Explanation(
                    "confirmed by the council (no entitling detention on the register)",
                    (fact.cite(),))
        elif what == "ending":
            fact = obj  # type: ignore[assignment]
            cmd: RecordS117Ended = fact.command  # type: ignore[assignment]
            decision = ending.EndingDecision(
                date=cmd.date, reason=cmd.reason,
                council_signed_by=cmd.council_signoff.by if cmd.council_signoff else None,
                icb_signed_by=cmd.icb_signoff.by if cmd.icb_signoff else None,
                grounds=cmd.grounds)
            violations = ending.ending_violations(decision, on_cto=on_cto_at(events, cmd.date))
            if violations or ent.status != "active" or (ent.start and cmd.date < ent.start):
                if violations:
                    refused.append(RefusedEnding(fact=fact, violations=tuple(violations)))
                continue
            ent.status = "ended"
            ent.ended = Ending(date=cmd.date, reason=cmd.reason,
                               council_signoff=_signoff(cmd.council_signoff),
                               icb_signoff=_signoff(cmd.icb_signoff), fact=fact)
            explain["entitlement.ended"] = Explanation(
                "joint decision of council and ICB with reasons, not on a CTO (16.1-16.3)",
                (fact.cite(),))

    if ent.status != "none" and period_first_detention is not None:
        icb = responsibility.originating_icb([(d, c) for d, c, _ in gp_regs],
                                             period_first_detention, policy.practice_to_icb)
        icb_facts = tuple(f.cite() for d, _, f in gp_regs if d <= period_first_detention)[-1:]
        if icb is None:
            icb = _icb_from_detention(episodes, period_first_detention) or (
                policy.practice_to_icb.get(person.gp_practice_ods or ""))
        ent.responsible_icb = icb
        explain["entitlement.responsible_icb"] = Explanation(
            "originating ICB: GP practice immediately before the first detention of this s117 "
            "period; it stays responsible until discharge from s117 (4.4.1, 4.4.9)"
            if icb else "no GP registration or commissioner known", icb_facts)

    _fill_duties(ent, facts, explain, today)
    explain["entitlement.status"] = Explanation(_status_rule(ent), tuple(trigger_facts))

    in_hospital = any(ep.end is None for ep in episodes)
    reviews_held = [(f.command.date, f.command.review_kind) for f in facts  # type: ignore[attr-defined]
                    if isinstance(f.command, RecordReviewCompleted)]
    child = [f.command.date for f in facts if isinstance(f.command, RecordChildNotification)]
    return Position(
        as_of=today, detentions=episodes, legal_status_events=events, entitlement=ent,
        on_cto=on_cto_at(events, today),
        conditionally_discharged=_open_periods(
            events, "conditional-discharge-start", {"conditional-discharge-end"}, today),
        in_hospital=in_hospital, reviews=reviews_held,
        charges_under_s117=[f for f in facts if isinstance(f.command, RecordServiceCharged)
                            and f.command.under_s117],
        refused_endings=refused, child_notified=max(child) if child else None, explain=explain)


def _leaving_after(ep: Detention, events: Sequence[LegalStatusEvent], since: date,
                   policy: Policy) -> tuple[str, date] | None:
    leavings: list[tuple[str, date]] = []
    if ep.end is not None:
        leavings.append(("left-hospital" if ep.end_reason not in ("cto", "conditional-discharge")
                         else ("cto-start" if ep.end_reason == "cto"
                               else "conditional-discharge-start"), ep.end))
    for ev in events:
        if ev.kind == "s17-leave-start" and ev.fact in ep.facts:
            leavings.append((ev.kind, ev.date))
    return eligibility.entitlement_start(
        since, leavings, s17_leave_counts=policy.s17_leave_starts_entitlement)


def _icb_from_detention(episodes: Sequence[Detention], first: date) -> str | None:
    for ep in episodes:
        if ep.start >= first and ep.responsible_icb:
            return ep.responsible_icb
    return None


def _signoff(signoff: object) -> dict[str, str] | None:
    if signoff is None:
        return None
    return {"by": signoff.by, "date": signoff.date.isoformat()}  # type: ignore[attr-defined]


def _fill_duties(ent: Entitlement, facts: Sequence[Fact], explain: dict[str, Explanation],
                 today: date) -> None:
    practitioners = [f for f in facts if isinstance(f.command, SetNamedPractitioner)]
    if practitioners:
        latest = practitioners[-1]
        ent.named_practitioner = latest.command.name  # type: ignore[attr-defined]
        explain["entitlement.named_practitioner"] = Explanation(
            "latest named practitioner set (joint policy 7.3)", (latest.cite(),))
    plans = [f for f in facts if isinstance(f.command, RecordAftercarePlanAgreed)]
    if plans:
        ent.aftercare_plan_date = plans[-1].command.date  # type: ignore[attr-defined]
        explain["entitlement.aftercare_plan"] = Explanation("latest aftercare plan agreed",
                                                            (plans[-1].cite(),))
    if ent.status != "active" or ent.start is None:
        return
    held = [f for f in facts if isinstance(f.command, RecordReviewCompleted)
            and f.command.date >= ent.start]
    ent.last_review = max((f.command.date for f in held), default=None)  # type: ignore[attr-defined]
    ent.next_review_due = reviews.next_review_due(ent.start, [f.command.date for f in held])  # type: ignore[attr-defined]
    explain["entitlement.next_review_due"] = Explanation(
        "12 months after the latest review (joint policy 14.1)" if held else
        "within 3 months of discharge (joint policy 14.1; MoU 5)",
        tuple(f.cite() for f in held[-1:]))


def _status_rule(ent: Entitlement) -> str:
    return {
        "none": "no entitling detention (s3, s37, s45A, s47, s48) and no council confirmation",
        "pending": "detained under an entitling section and not yet left hospital: on the "
                   "register from admission so planning starts (joint policy 19.2; MoU 5)",
        "active": "left hospital after an entitling detention; not ended by a lawful joint "
                  "decision (joint policy 2.2, 16.1)",
        "ended": "ended by a joint council and ICB decision with reasons (16.1-16.3)",
    }[ent.status]


def is_detained_code(code: str) -> bool:
    return code in DETAINED_CODES


__all__ = ["Detention", "Entitlement", "Explanation", "Policy", "Position", "compute_position",
           "is_entitling"]
