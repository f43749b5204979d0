"""Compute a person's S117 position from their journal of facts, with the reasons.

Pure and deterministic: the same facts and the same ``today`` give the same position, so the
register can be recomputed at any time (a scheduled sweep moves due dates forward) and every
value carries an ``Explanation``: the rule applied and the facts it rested on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from .commands import (
    RecordAftercarePlanAgreed,
    RecordChildNotification,
    RecordDisputeOpened,
    RecordDisputeResolved,
    RecordGpRegistration,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
    SetNamedPractitioner,
)
from .episodes import (
    Detention,
    LegalStatusEvent,
    build_detentions,
    fact_day,
    fact_order,
    on_cto_at,
    period_in_force,
)
from .legal_status import DETAINED_CODES, is_entitling, normalise_code
from .model import Fact, Person
from .precedence import (
    DATED_FIELDS,
    Note,
    Precedence,
    restate_detentions,
    rulings_in,
    settle_aftercare,
    settle_dated,
    settle_death,
)
from .rules import eligibility, ending, responsibility, reviews
from .rules.disputes import DisputeSpan

Status = Literal["none", "pending", "active", "ended"]


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Local choices the seeds leave to each partnership (configuration, not code)."""

    s17_leave_starts_entitlement: bool = True
    practice_to_icb: Mapping[str, str] = field(default_factory=dict)
    # Identity matching of a person found by neither NHS number nor the source's identifier
    # (architecture section 1 step 3): link at or above ``identity_link_threshold``, open an
    # identity-uncertain exception from ``identity_review_threshold``; below, a new person.
    probabilistic_identity: bool = True
    identity_link_threshold: float = 0.95
    identity_review_threshold: float = 0.5
    # Which source's word stands when sources disagree, per field group (``precedence.py``);
    # empty: no rule, every disagreement is left to a person as a source-conflict exception.
    precedence: Precedence = field(default_factory=Precedence)


@dataclass(frozen=True)
class Explanation:
    rule: str
    facts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "facts": list(self.facts)}


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


@dataclass(frozen=True, kw_only=True)
class FlaggedEnding:
    """A lawful ending that took effect but that the rules ask a person to look at (one
    during a conditional discharge: ``ending.ending_flags``)."""

    fact: Fact
    flags: tuple[ending.Violation, ...]


@dataclass(frozen=True, kw_only=True)
class ReviewPrompt:
    """An unscheduled review the rules call for that no review on the register has answered
    yet (joint policy 14.1): today only a move to another council area after leaving
    hospital (``reviews.UNSCHEDULED_TRIGGERS`` says why the others are not raised)."""

    trigger: str
    since: date
    moved_from: str
    moved_to: str
    facts: tuple[Fact, ...]


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
    # The rules this position followed: detectors raise only the disagreements they leave.
    precedence: Precedence = field(default_factory=Precedence)
    # The person's disputes as the journal tells them (``RecordDisputeOpened``/``Resolved``).
    disputes: list[DisputeSpan] = field(default_factory=list)
    flagged_endings: list[FlaggedEnding] = field(default_factory=list)
    review_prompts: list[ReviewPrompt] = field(default_factory=list)


def compute_position(person: Person, today: date, policy: Policy | None = None) -> Position:
    """The position as of ``today``: facts effective after it are not known yet."""
    policy = policy or Policy()
    told = [f for f in sorted(person.live_facts(), key=fact_order) if fact_day(f) <= today]
    # A register owner's accept-source decisions settle their disagreements ahead of the
    # configured rules, and the detectors read them from the position too.
    rulings = rulings_in(told)
    precedence = replace(policy.precedence, rulings=rulings) if rulings else policy.precedence
    # Where a precedence rule settles a disagreement the register follows the winning source;
    # the losing source's overruled facts stay in the journal, set aside here.
    facts, settled = restate_detentions(told, today, precedence)
    facts.sort(key=fact_order)
    # Facts a rule set aside where sources tell different values from one date (by id).
    overruled: set[int] = set()
    for group in DATED_FIELDS:
        set_aside, notes = settle_dated(group, facts, precedence)
        overruled |= set_aside
        settled += notes
    death_note = settle_death(facts, precedence)
    settled += [death_note] if death_note else []
    episodes, events = build_detentions(facts, today)
    # The plan and the reviews a rule chose where sources tell them differently, per aftercare
    # period of these detentions: the losers' facts are set aside like the dated ones.
    set_aside, notes = settle_aftercare(facts, episodes, precedence)
    overruled |= set_aside
    settled += notes
    kept = [f for f in facts if id(f) not in overruled] if overruled else facts
    disputes, dispute_facts = _disputes(facts)
    reviews_kept = [f for f in kept if isinstance(f.command, RecordReviewCompleted)]
    explain: dict[str, Explanation] = {}
    ent = Entitlement()

    residences = [(f.command.date, f.command.council_code, f) for f in facts
                  if isinstance(f.command, RecordOrdinaryResidenceChanged)
                  and id(f) not in overruled]
    endings = [f for f in facts if isinstance(f.command, RecordS117Ended)]
    confirmations = [f for f in facts if isinstance(f.command, RecordS117Confirmed)]
    refused: list[RefusedEnding] = []
    flagged: list[FlaggedEnding] = []

    # Walk the s117 "periods": each opens at an entitling detention (pending) or a council
    # confirmation, activates on leaving hospital, and closes only on a lawful joint ending.
    # Same-day order: a confirmation, then an ending, then a new detention (which opens a new
    # period after the ending rather than being swallowed by the one that ends).
    timeline: list[tuple[date, int, int, str, object]] = []
    for ep in episodes:
        if ep.entitling:
            timeline.append((ep.entitling[1], 2, ep.facts[0].seq, "entitling", ep))
    for f in confirmations:
        timeline.append((f.command.start, 0, f.seq, "confirmed", f))  # type: ignore[attr-defined]
    for f in endings:
        timeline.append((f.command.date, 1, f.seq, "ending", f))  # type: ignore[attr-defined]
    timeline.sort(key=lambda item: item[:3])

    trigger_facts: list[str] = []
    start_facts: list[str] = []
    period_first_detention: date | None = None
    period_episode: Detention | None = None
    # The lawful ending that closed the previous s117 period: what was recorded up to it (a
    # named practitioner, a plan, a review) belongs to that period, not to the current one.
    floor: date | None = None
    for when, _rank, _seq, what, obj in timeline:
        if what == "entitling":
            ep: Detention = obj  # type: ignore[assignment]
            code, since = ep.entitling  # type: ignore[misc]
            new_period = ent.status in ("none", "ended")
            if new_period:
                floor = ent.ended.date if ent.ended else floor
                ent = Entitlement(pending_since=since)
                explain.clear()  # the previous period's reasons no longer explain anything
                period_first_detention, period_episode = ep.start, ep
                start_facts = []
            # Back in hospital under an entitling section before discharge from s117: the
            # period (and its ICB) goes on, pending a new leaving.
            ent.status = "pending"
            ent.trigger_section, ent.trigger_episode = code, ep.ref
            trigger_facts = [f.cite() for f in ep.facts]
            if not ep.continuation or new_period:
                council = responsibility.responsible_council(
                    [(d, c) for d, c, _ in residences], ep.start)
                ent.responsible_council = council
                explain["entitlement.responsible_council"] = Explanation(
                    "ordinary residence immediately before the latest entitling detention "
                    "(joint policy 4.3.1, 4.3.3; Worcestershire [2023] UKSC 31)" if council else
                    "no ordinary residence known before the detention",
                    (*[f.cite() for d, _, f in residences if d <= ep.start][-1:],
                     trigger_facts[0]))
            leaving = _leaving_after(ep, events, since, policy)
            if leaving:
                kind, left, left_fact, back_fact = leaving
                ent.start = left
                start_facts = [left_fact.cite()] if left_fact else trigger_facts[-1:]
                rule = (f"left hospital ({kind}) after detention under an entitling section "
                        "(joint policy 2.2, 5.5, 8.4)")
                if kind == "s17-leave-start" and ep.end is not None and ep.end_fact:
                    rule += (f"; discharged on {ep.end.isoformat()} while still on the leave "
                             "(8.4: leave that resulted in discharge)")
                    start_facts.append(ep.end_fact.cite())
                if back_fact is None:
                    ent.status = "active"
                else:
                    # Back on the ward from s17 leave, still detained: in hospital again, as
                    # after a re-detention (pending, the start kept); the review clock waits
                    # for the next leaving (14.1: "within 3 months of discharge").
                    back_day = fact_day(back_fact).isoformat()
                    rule += (f"; the s17 leave ended on {back_day}: back in hospital, "
                             "aftercare applied during the leave only (8.4), pending a new "
                             "leaving (19.2)")
                    start_facts.append(back_fact.cite())
                explain["entitlement.start"] = Explanation(
                    rule, _unique(*trigger_facts, *start_facts))
            explain["entitlement.trigger_section"] = Explanation(
                "first entitling section of the detention, s2 regraded to s3 counts from the "
                "regrade (joint policy 3.3)", tuple(trigger_facts))
        elif what == "confirmed":
            fact: Fact = obj  # type: ignore[assignment]
            if ent.status in ("none", "ended"):
                floor = ent.ended.date if ent.ended else floor
                ent = Entitlement(status="active", start=when)
                explain.clear()
                period_first_detention, period_episode = when, None
                trigger_facts = start_facts = [fact.cite()]
                explain["entitlement.start"] = Explanation(
                    "confirmed by the council (no entitling detention on the register)",
                    (fact.cite(),))
                # The detention itself is not on the register: the council is that of
                # ordinary residence immediately before the s117 start it confirmed.
                council = responsibility.responsible_council(
                    [(d, c) for d, c, _ in residences], when)
                ent.responsible_council = council
                explain["entitlement.responsible_council"] = Explanation(
                    "ordinary residence immediately before the s117 start the council "
                    "confirmed, no detention on the register (joint policy 4.3.1)" if council
                    else "no ordinary residence known before the s117 start the council "
                    "confirmed", (*[f.cite() for d, _, f in residences if d <= when][-1:],
                                  fact.cite()))
        elif what == "ending":
            fact = obj  # type: ignore[assignment]
            decision, review_fact = _ending_decision(fact, reviews_kept, ent.start, floor,
                                                     ent.responsible_council)
            refusal = _ending_refusal(fact, decision, ent, episodes, events, disputes)
            if refusal is not None:
                refused.append(refusal)
                continue
            if ent.status == "ended":
                continue  # the same lawful ending told again (by the other partner)
            cmd: RecordS117Ended = fact.command  # type: ignore[assignment]
            ent.status = "ended"
            ent.ended = Ending(date=cmd.date, reason=cmd.reason,
                               council_signoff=_signoff(cmd.council_signoff),
                               icb_signoff=_signoff(cmd.icb_signoff), fact=fact)
            trigger_facts = [*trigger_facts, fact.cite()]
            after_review = (f", after the review of {decision.review.isoformat()}"
                            if decision.review else "")
            rule = (f"joint decision of council and ICB with reasons{after_review}, not on a "
                    "CTO, no dispute about ending open (16.1-16.3; dispute protocol 3, 7)")
            flags = ending.ending_flags(decision, conditionally_discharged=period_in_force(
                events, "conditional-discharge-start", {"conditional-discharge-end"}, cmd.date))
            if flags:
                flagged.append(FlaggedEnding(fact=fact, flags=tuple(flags)))
                rule += "; flagged: " + "; ".join(flag.message for flag in flags)
            explain["entitlement.ended"] = Explanation(
                rule, (fact.cite(), *([review_fact.cite()] if review_fact else [])))

    # While a dispute about responsibility is open, the council meeting the need when it
    # arose goes on doing so until it is resolved (4.3.4): the responsible council the journal
    # gave before the dispute was logged; what was told since waits for the outcome.
    holding = responsibility.dispute_holding_council(disputes, today)
    if holding is not None and ent.status != "none":
        logged = [f for f in dispute_facts.get(holding.id, ())
                  if isinstance(f.command, RecordDisputeOpened)]
        then = compute_position(responsibility.journal_before(person, logged[0].seq), today,
                                policy)
        held = then.entitlement.responsible_council
        if held is not None:
            why = then.explain["entitlement.responsible_council"]
            moved = ("; the facts told since would give another council, held back until the "
                     "dispute is resolved" if held != ent.responsible_council else "")
            ent.responsible_council = held
            explain["entitlement.responsible_council"] = Explanation(
                f"dispute {holding.id} about responsibility open since "
                f"{holding.opened.isoformat()}: the council meeting the need when it arose "
                f"continues until it is resolved (joint policy 4.3.4){moved}; that council: "
                f"{why.rule}", _unique(*why.facts, *(f.cite() for f in logged)))

    if ent.status != "none" and period_first_detention is not None:
        icb, rule, icb_facts = _responsible_icb(person, kept, episodes, period_first_detention,
                                                period_episode, policy)
        ent.responsible_icb = icb
        explain["entitlement.responsible_icb"] = Explanation(rule, icb_facts)

    _fill_duties(ent, kept, explain, start_facts, floor)
    explain["entitlement.status"] = _status_explanation(ent, trigger_facts, refused, floor,
                                                        disputes, dispute_facts)
    _explain_settled(explain, settled, ent, residences)

    in_hospital = any(ep.end is None for ep in episodes)
    reviews_held = [(f.command.date, f.command.review_kind) for f in kept  # type: ignore[attr-defined]
                    if isinstance(f.command, RecordReviewCompleted)]
    prompts = _review_prompts(ent, residences, [day for day, _ in reviews_held])
    child = [f.command.date for f in facts if isinstance(f.command, RecordChildNotification)]
    return Position(
        as_of=today, detentions=episodes, legal_status_events=events, entitlement=ent,
        on_cto=on_cto_at(events, today),
        conditionally_discharged=period_in_force(
            events, "conditional-discharge-start", {"conditional-discharge-end"}, today),
        in_hospital=in_hospital, reviews=reviews_held,
        charges_under_s117=[f for f in facts if isinstance(f.command, RecordServiceCharged)
                            and f.command.under_s117],
        refused_endings=refused, child_notified=max(child) if child else None, explain=explain,
        precedence=precedence, disputes=disputes, flagged_endings=flagged,
        review_prompts=prompts)


def _review_prompts(ent: Entitlement, residences: Sequence[tuple[date, str, Fact]],
                    held: Sequence[date]) -> list[ReviewPrompt]:
    """Moves to another council area since the person left hospital with no review held on or
    after them (14.1: an unscheduled review "whenever the person moves to another local
    authority area"). Only while active: in hospital the plan waits for the next leaving.
    A move on the day of leaving is the discharge plan's own placement, which the 3-month
    review covers; the move does not change the responsible council (4.3.1, 17.1)."""
    if ent.status != "active" or ent.start is None:
        return []
    start = ent.start
    prompts = []
    for day, moved_from, moved_to in reviews.moves_of_area([(d, c) for d, c, _ in residences]):
        if day <= start or reviews.reviewed_since(day, held) is not None:
            continue
        told = tuple(f for d, c, f in residences if d == day)
        prompts.append(ReviewPrompt(trigger="moved-council-area", since=day,
                                    moved_from=moved_from, moved_to=moved_to, facts=told))
    return prompts


def _explain_settled(explain: dict[str, Explanation], settled: Sequence[Note],
                     ent: Entitlement, residences: Sequence[tuple[date, str, Fact]]) -> None:
    """Say where a precedence rule chose a value: on its own key, and on the register values
    it set (the trigger section, the responsible council)."""
    for note in settled:
        explain[note.key] = Explanation(note.rule, note.facts)
    by_key = {note.key: note for note in settled}
    section = by_key.get(f"detentions[{ent.trigger_episode}].section")
    if section and "entitlement.trigger_section" in explain:
        _append_rule(explain, "entitlement.trigger_section", section)
    if ent.trigger_episode is None and "entitlement.status" in explain:
        # No entitling detention because a source's section was set aside: the status says
        # whose word made it so.
        for note in settled:
            if note.key.startswith("detentions[") and note.key.endswith("].section"):
                _append_rule(explain, "entitlement.status", note)
    council = explain.get("entitlement.responsible_council")
    if council and ent.responsible_council:
        chosen = [day for day, code, f in residences
                  if code == ent.responsible_council and f.cite() in council.facts]
        residence = by_key.get(f"ordinary_residence[{chosen[-1].isoformat()}]") if chosen else None
        if residence:
            _append_rule(explain, "entitlement.responsible_council", residence)
    # A value set by a fact a rule chose says so: the named practitioner, an ICB read from a
    # GP registration, the plan date, and the review the next one is due from.
    for key, group in (("entitlement.named_practitioner", "named_practitioner"),
                       ("entitlement.responsible_icb", "gp_practice"),
                       ("entitlement.aftercare_plan", "aftercare_plan"),
                       ("entitlement.next_review_due", "review")):
        said = explain.get(key)
        notes = [note for note in settled if note.key.startswith(f"{group}[")
                 and set(note.facts) & set(said.facts)] if said else []
        if notes:
            _append_rule(explain, key, notes[-1])


def _append_rule(explain: dict[str, Explanation], key: str, note: Note) -> None:
    before = explain[key]
    explain[key] = Explanation(f"{before.rule}; {note.rule}",
                               _unique(*before.facts, *note.facts))


def _unique(*cites: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(cites))


def _disputes(facts: Sequence[Fact]) -> tuple[list[DisputeSpan], dict[str, list[Fact]]]:
    """The disputes the journal tells of (opened, maybe resolved), with their facts by id."""
    opened: dict[str, DisputeSpan] = {}
    resolved: dict[str, date] = {}
    cited: dict[str, list[Fact]] = {}
    for fact in facts:
        cmd = fact.command
        if isinstance(cmd, RecordDisputeOpened):
            opened.setdefault(cmd.dispute_id, DisputeSpan(
                id=cmd.dispute_id, kind=cmd.dispute_kind, opened=cmd.date))
            cited.setdefault(cmd.dispute_id, []).append(fact)
        elif isinstance(cmd, RecordDisputeResolved):
            resolved.setdefault(cmd.dispute_id, cmd.date)
            cited.setdefault(cmd.dispute_id, []).append(fact)
    spans = [DisputeSpan(id=span.id, kind=span.kind, opened=span.opened,
                         resolved=resolved.get(span.id)) for span in opened.values()]
    return sorted(spans, key=lambda span: (span.opened, span.id)), cited


def _ending_decision(fact: Fact, reviews_kept: Sequence[Fact], start: date | None,
                     floor: date | None, responsible_council: str | None,
                     ) -> tuple[ending.EndingDecision, Fact | None]:
    """The recorded ending as the rules judge it, with the latest review of this entitlement
    on or before its date: held since the person left hospital (``start``: the reviews the
    register counts, 14.1), and in any case after the ending that closed the previous s117
    period (``floor``). Only a review not known to be single-agency is the joint review an
    ending follows (MoU 5; 16.1): ``joint`` true or unknown (None) counts, false does not.
    ``responsible_council``: the register's on the ending date, which the council sign-off
    must be given for (16.1) when the sign-off names its organisation."""
    cmd: RecordS117Ended = fact.command  # type: ignore[assignment]
    held = [f for f in reviews_kept if f.command.date <= cmd.date  # type: ignore[attr-defined]
            and (start is None or f.command.date >= start)  # type: ignore[attr-defined]
            and (floor is None or f.command.date > floor)]  # type: ignore[attr-defined]
    joint = [f for f in held if f.command.joint is not False]  # type: ignore[attr-defined]
    single = [f.command.date for f in held  # type: ignore[attr-defined]
              if f.command.joint is False]  # type: ignore[attr-defined]
    review = max(joint, key=lambda f: f.command.date) if joint else None  # type: ignore[attr-defined]
    council, icb = cmd.council_signoff, cmd.icb_signoff
    return ending.EndingDecision(
        date=cmd.date, reason=cmd.reason,
        council_signed_by=council.by if council else None,
        icb_signed_by=icb.by if icb else None,
        council_signed_on=council.date if council else None,
        icb_signed_on=icb.date if icb else None,
        grounds=cmd.grounds,
        review=review.command.date if review else None,  # type: ignore[attr-defined]
        single_agency_review=max(single) if single else None,
        council_signed_for=council.organisation if council else None,
        responsible_council=responsible_council), review


def _ending_refusal(fact: Fact, decision: ending.EndingDecision, ent: Entitlement,
                    episodes: Sequence[Detention], events: Sequence[LegalStatusEvent],
                    disputes: Sequence[DisputeSpan]) -> RefusedEnding | None:
    """Why a recorded ending does not end the entitlement, or None when it may."""
    cmd: RecordS117Ended = fact.command  # type: ignore[assignment]
    on_leave = on_s17_leave_at(episodes, events, cmd.date)
    violations = ending.ending_violations(decision, on_cto=on_cto_at(events, cmd.date),
                                          on_s17_leave=on_leave, disputes=disputes)
    # On s17 leave is the specific reason an ending finds nothing it may end (with the leave
    # not starting the entitlement, or the person back on the ward since): said once.
    if not on_leave and ent.status != "ended" and (
            ent.status != "active" or (ent.start and cmd.date < ent.start)):
        # Nothing to end on that date (no entitlement, or still in hospital): record it, do not
        # drop it silently, so the disagreement with the other sources is seen.
        violations.append(ending.Violation(
            "ending-needs-active-entitlement", "date",
            "no active s117 entitlement to end on that date (person not yet left hospital "
            "or no entitlement on the register)", "source-conflict"))
    if not violations:
        return None
    return RefusedEnding(fact=fact, violations=tuple(violations))


def _leaving_after(ep: Detention, events: Sequence[LegalStatusEvent], since: date,
                   policy: Policy) -> tuple[str, date, Fact | None, Fact | None] | None:
    """The leaving in force of this detention (``eligibility.leaving_in_force``): how and
    when the person's present stretch out of hospital began, the fact that told it, and for
    a person back on the ward from s17 leave, the fact of the return (None while out)."""
    discharge: tuple[str, date] | None = None
    by_leaving: dict[tuple[str, date], Fact | None] = {}
    if ep.end is not None:
        kind = {"cto": "cto-start", "conditional-discharge": "conditional-discharge-start"}.get(
            ep.end_reason or "", "left-hospital")
        discharge = (kind, ep.end)
        by_leaving[discharge] = ep.end_fact
    leaves: list[tuple[date, date | None]] = []
    back_facts: dict[date, Fact] = {}
    for out, back in _s17_leaves(ep, events):
        by_leaving.setdefault((out.kind, out.date), out.fact)
        leaves.append((out.date, back.date if back else None))
        if back is not None:
            back_facts.setdefault(out.date, back.fact)
    found = eligibility.leaving_in_force(
        since, discharge, leaves, s17_leave_counts=policy.s17_leave_starts_entitlement)
    if found is None:
        return None
    kind, left, back = found
    return (kind, left, by_leaving.get((kind, left)),
            back_facts.get(left) if back is not None else None)


def _s17_leaves(ep: Detention, events: Sequence[LegalStatusEvent],
                ) -> list[tuple[LegalStatusEvent, LegalStatusEvent | None]]:
    """The detention's s17 leave periods: out on a leave start, back on the next leave end
    (None while still out; a start while already out, or an end while in, tells nothing
    new). Same-day order: out before back, whichever order the sources sent them in."""
    told = sorted((ev for ev in events if ev.kind in ("s17-leave-start", "s17-leave-end")
                   and any(ev.fact is f for f in ep.facts)),
                  key=lambda ev: (ev.date, ev.kind == "s17-leave-end", fact_order(ev.fact)))
    periods: list[tuple[LegalStatusEvent, LegalStatusEvent | None]] = []
    out: LegalStatusEvent | None = None
    for ev in told:
        if ev.kind == "s17-leave-start" and out is None:
            out = ev
        elif ev.kind == "s17-leave-end" and out is not None:
            periods.append((out, ev))
            out = None
    if out is not None:
        periods.append((out, None))
    return periods


def on_s17_leave_at(episodes: Sequence[Detention], events: Sequence[LegalStatusEvent],
                    day: date) -> bool:
    """Whether on ``day`` the person is out on s17 leave from a detention under an entitling
    section that is still in force: out on or before the day, not back on the ward by it,
    and neither discharged (left hospital, onto a CTO or conditional discharge) nor
    discharged from the section by it. The day of the return, or of the discharge, is not
    on leave: the person is back, or no longer detained (8.4: leave that results in
    discharge ends with it). Leave from an s2 stay is not counted: its discharge starts no
    duty (3.3)."""
    for ep in episodes:
        entitling = ep.entitling
        if entitling is None or entitling[1] > day:
            continue
        if (ep.end is not None and ep.end <= day) or (
                ep.detained_until is not None and ep.detained_until <= day):
            continue
        if any(out.date <= day and (back is None or back.date > day)
               for out, back in _s17_leaves(ep, events)):
            return True
    return False


def _responsible_icb(person: Person, facts: Sequence[Fact], episodes: Sequence[Detention],
                     first: date, first_episode: Detention | None,
                     policy: Policy) -> tuple[str | None, str, tuple[str, ...]]:
    """The originating ICB (4.4.1, 4.4.9) with the rule and facts that set it.

    A GP registration names a practice and maybe its ICB; a practice the configured
    ``practice_to_icb`` does not know gives no ICB (a practice code is not an ICB code).
    """
    regs = [f for f in facts if isinstance(f.command, RecordGpRegistration)]
    codes = [(f.command.date, f.command.icb_code or f.command.gp_practice_ods)  # type: ignore[attr-defined]
             for f in regs]
    icb = responsibility.originating_icb(codes, first, policy.practice_to_icb)
    before = [f for f in regs if f.command.date <= first]  # type: ignore[attr-defined]
    if before:
        chosen = before[-1]
        cmd: RecordGpRegistration = chosen.command  # type: ignore[assignment]
        if cmd.icb_code or cmd.gp_practice_ods in policy.practice_to_icb:
            return icb, ("originating ICB: GP practice immediately before the first detention "
                         "of this s117 period; it stays responsible until discharge from s117 "
                         "(4.4.1, 4.4.9)"), (chosen.cite(),)
    ordered = sorted(episodes, key=lambda e: (e.start != first, e.start))
    for ep in ordered:
        if ep.start >= first and ep.responsible_icb:
            return ep.responsible_icb, ("ICB named by the detaining provider for the first "
                                        "detention of this s117 period (4.4.1)"), (
                ep.facts[0].cite(),)
    # No usable registration: the GP practice as the journal told it at the first detention
    # (a PD1 on an A28/A01, a FHIR Patient, a registration dated later), never the current
    # demographic just because it is current: a change after it does not move the ICB (4.4.9).
    told: list[tuple[date, str, str | None, Fact]] = []
    for f in facts:
        cmd = f.command
        if isinstance(cmd, RecordGpRegistration):
            told.append((cmd.date, cmd.gp_practice_ods, cmd.icb_code, f))
        elif cmd.person.gp_practice_ods:
            told.append((fact_day(f), cmd.person.gp_practice_ods, None, f))
    told.sort(key=lambda item: (item[0], fact_order(item[3])))
    found = responsibility.originating_practice([(day, code) for day, code, _, _ in told], first)
    if found is None:
        return None, "no GP registration or commissioner known", ()
    _, practice, icb_code, chosen_fact = told[found[0]]
    icb = icb_code or policy.practice_to_icb.get(practice)
    if icb is None:
        return None, ("no GP registration or commissioner known: the GP practice at the first "
                      "detention of this s117 period is not in the configured practice_to_icb "
                      "(4.4.1)"), (chosen_fact.cite(),)
    if found[1] and first_episode is not None and chosen_fact is first_episode.facts[0]:
        rule = "ICB of the GP practice the detaining source reported at admission (4.4.1)"
    elif found[1]:
        rule = ("originating ICB: GP practice the journal told immediately before the first "
                "detention of this s117 period (4.4.1)")
    else:
        rule = ("ICB of the GP practice first known after the detention began: none known on "
                "or before the first detention of this s117 period (4.4.1; check the "
                "registration at the detention)")
    rule += "; a later change of GP practice does not move it until discharge from s117 (4.4.9)"
    if person.gp_practice_ods == practice:
        rule += "; it is also the person's current GP practice"
    elif person.gp_practice_ods:
        rule += "; the person's current GP practice differs and does not move it"
    return icb, rule, (chosen_fact.cite(),)


def _signoff(signoff: object) -> dict[str, str] | None:
    if signoff is None:
        return None
    return {"by": signoff.by, "date": signoff.date.isoformat()}  # type: ignore[attr-defined]


def _fill_duties(ent: Entitlement, facts: Sequence[Fact], explain: dict[str, Explanation],
                 start_facts: Sequence[str], floor: date | None) -> None:
    """The named practitioner and plan of this s117 period: set after the lawful ending that
    closed the previous period (``floor``), as the detectors count the period; and the
    reviews since the entitlement started."""
    def this_period(day: date) -> bool:
        return floor is None or day > floor

    practitioners = [f for f in facts if isinstance(f.command, SetNamedPractitioner)]
    current = [f for f in practitioners if this_period(fact_day(f))]
    if current:
        latest = current[-1]
        ent.named_practitioner = latest.command.name  # type: ignore[attr-defined]
        explain["entitlement.named_practitioner"] = Explanation(
            "latest named practitioner set in this s117 period (joint policy 7.3)",
            (latest.cite(),))
    elif practitioners and ent.status != "none":
        explain["entitlement.named_practitioner"] = Explanation(
            f"none named in this s117 period: one named before the ending of {floor} belongs "
            "to the period that ended (joint policy 7.3)", (practitioners[-1].cite(),))
    plans = [f for f in facts if isinstance(f.command, RecordAftercarePlanAgreed)]
    current = [f for f in plans if this_period(f.command.date)]  # type: ignore[attr-defined]
    if current:
        ent.aftercare_plan_date = current[-1].command.date  # type: ignore[attr-defined]
        explain["entitlement.aftercare_plan"] = Explanation(
            "latest aftercare plan agreed in this s117 period", (current[-1].cite(),))
    elif plans and ent.status != "none":
        explain["entitlement.aftercare_plan"] = Explanation(
            f"none agreed in this s117 period: a plan agreed before the ending of {floor} "
            "belongs to the period that ended (joint policy 7.2, 19.2)", (plans[-1].cite(),))
    if ent.status != "active" or ent.start is None:
        return
    held = [f for f in facts if isinstance(f.command, RecordReviewCompleted)
            and f.command.date >= ent.start]
    ent.last_review = max((f.command.date for f in held), default=None)  # type: ignore[attr-defined]
    ent.next_review_due = reviews.next_review_due(ent.start, [f.command.date for f in held])  # type: ignore[attr-defined]
    explain["entitlement.next_review_due"] = Explanation(
        "12 months after the latest review (joint policy 14.1)" if held else
        "within 3 months of discharge (joint policy 14.1; MoU 5)",
        tuple(f.cite() for f in held[-1:]) if held else tuple(start_facts))


def _status_explanation(ent: Entitlement, trigger_facts: Sequence[str],
                        refused: Sequence[RefusedEnding], floor: date | None,
                        disputes: Sequence[DisputeSpan],
                        dispute_facts: Mapping[str, Sequence[Fact]]) -> Explanation:
    """The status rule, and for an entitlement still going on, the endings recorded in this
    period that did not end it and why (naming any dispute about ending that held one back)."""
    rule, cites = _status_rule(ent), list(trigger_facts)
    if ent.status == "ended":
        return Explanation(rule, tuple(cites))
    for refusal in refused:
        cmd: RecordS117Ended = refusal.fact.command  # type: ignore[assignment]
        if floor is not None and cmd.date <= floor:
            continue  # refused in a period that has ended since
        rule += (f"; the ending dated {cmd.date.isoformat()} from {refusal.fact.source} did "
                 "not end it: " + "; ".join(v.message for v in refusal.violations))
        cites.append(refusal.fact.cite())
        for span in disputes:
            if span.kind == "ending" and span.open_on(cmd.date):
                cites += [f.cite() for f in dispute_facts.get(span.id, ())]
    return Explanation(rule, _unique(*cites))


def _status_rule(ent: Entitlement) -> str:
    if ent.status == "active" and ent.trigger_section is None:
        return ("confirmed by the council (s117.confirmed) with no entitling detention on the "
                "register; not ended by a lawful joint decision (joint policy 16.1)")
    if ent.status == "pending" and ent.start is not None:
        return (f"in hospital again under an entitling section after leaving on "
                f"{ent.start.isoformat()} (back from s17 leave, or detained again): pending a "
                "new leaving, the start kept; no community duties while in hospital (joint "
                "policy 8.4, 14.1, 19.2)")
    return {
        "none": "no entitling detention (s3, s37, s45A, s47, s48) and no council confirmation",
        "pending": "detained under an entitling section and not yet left hospital: on the "
                   "register from admission so planning starts (joint policy 19.2; MoU 5)",
        "active": "left hospital after an entitling detention; not ended by a lawful joint "
                  "decision (joint policy 2.2, 16.1)",
        "ended": "ended by a joint council and ICB decision with reasons (16.1-16.3)",
    }[ent.status]


def is_detained_code(code: str) -> bool:
    return normalise_code(code) in DETAINED_CODES


__all__ = ["Detention", "DisputeSpan", "Entitlement", "Explanation", "FlaggedEnding",
           "LegalStatusEvent", "Policy", "Position", "RefusedEnding", "ReviewPrompt",
           "build_detentions", "compute_position", "is_entitling", "on_cto_at",
           "on_s17_leave_at"]
