"""Missed entitlements and overdue duties for one person (pure; s117-rules.md, "Missed
entitlements and duties the hub should find").

``detect(person, position, today)`` reads the person's journal and the position computed from
it and returns the findings that should be open exceptions today. The rules, README-ready:

- ``missed-entitlement``: active after leaving hospital from an entitling detention, but no
  other partner has acknowledged it (a ``s117-confirmed`` fact from a source other than the one
  that reported the leaving, within this s117 period) within 5 working days of the later of
  the leaving and the hub hearing of it (2.2, 19.2, 19.6): a discharge known only to the trust.
- ``ended-on-cto``, ``ended-on-s17-leave``, ``one-sided-ending``, ``ended-during-dispute``,
  ``source-conflict``: an s117 ending the rules refused (``position.refused_endings``), one
  finding per exception kind its violations name: on a CTO (16.2); on s17 leave, still
  detained (1.1, 2.2, 8.4); without both sign-offs or reasons, with the council sign-off given
  for a council that is not the responsible one (16.1, 17.1, 17.2), or solely on a
  forbidden ground (16.1-16.3, 16.6, 16.9); dated while a dispute about ending is open, i.e.
  opened on or before the ending date and not resolved by it (dispute protocol 3, 7: care continues
  throughout; the refusal stands once the dispute is resolved, and an ending recorded on or
  after the day of its resolution may end it); with nothing active to end (a source
  conflict). The entitlement stays active.
- ``ended-during-conditional-discharge``, ``ended-without-review``: a lawful ending that
  took effect while the person was conditionally discharged, so liable to recall
  (standards.md section 6), or with no review on the register since the person left hospital
  (16.1: an ending follows a joint recorded review): flagged, the ending stands
  (``position.flagged_endings``).
- ``review-overdue``: active and ``next_review_due`` (3 months after discharge, then 12 months
  after the latest review) has passed (14.1; MoU 5); or the person moved to another council
  area after leaving hospital and no review has been held since, 5 working days after the
  later of the move and the hub hearing of it (14.1: an unscheduled review "whenever the
  person moves to another local authority area"; ``position.review_prompts``).
- ``no-named-practitioner``: pending or active with no named practitioner 5 working days after
  the s117 period began (7.3: from admission, for pre-discharge planning).
- ``no-aftercare-plan``: active with no plan agreed in this s117 period 5 working days after
  leaving hospital (7.2, 19.2: planning starts at admission).
- ``s117-charge``: a charge recorded against a service under s117 (13.1; cabinet report 11).
- ``child-12-week-notification``: under 18 at admission, in hospital 12 consecutive weeks (84
  days: due on the same weekday 12 weeks on), or still in and expected to be (an expected end
  12 weeks or more after the start: 6.1 "likely to be for at least 12 consecutive weeks"),
  and no Children Act 1989 s85 notification during that detention (6.1).
- ``source-conflict`` (``source_conflicts.py``): sources disagree on a detention's start,
  section, end or ICB, on the date of death (or tell of events after it), on the council
  of ordinary residence, GP practice or named practitioner from the same date, on the date an
  aftercare period's plan was agreed, or on a review's date or whether it was joint, and no
  precedence rule (``Policy.precedence``, carried on the position) settles it (architecture
  section 1 step 3); and a council confirmed s117 where every detention on the register is
  one that does not entitle (an s2 stay, say: the sources disagree on eligibility).

Duties (missed entitlement, reviews, practitioner, plan, child notification) are not raised
for a person whose recorded date of death has passed; endings, charges and conflicts are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from register_core.domain.calendar import add_working_days, england_date
from register_core.domain.commands import (
    RecordAftercarePlanAgreed,
    RecordChildNotification,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
)
from register_core.domain.episodes import fact_day
from register_core.domain.horizon import ONE_DAY, earliest, position_stable_until
from register_core.domain.legal_status import describe
from register_core.domain.model import Fact, Person
from register_core.domain.position import Position
from register_core.domain.rules import children
from register_core.domain.rules.ending import Violation

from . import source_conflicts
from .findings import DetectorPolicy, Finding, finding, iso

__all__ = ["DetectorPolicy", "Finding", "detect", "detect_until"]


@dataclass(frozen=True)
class _Context:
    person: Person
    position: Position
    today: date
    policy: DetectorPolicy
    facts: list[Fact]  # live facts known on ``today``
    # The last day each "not yet" answer given today still holds (see ``detect_until``).
    holds: list[date] = field(default_factory=list)

    @property
    def deceased(self) -> bool:
        death = self.person.death_date
        if death is not None and death > self.today:
            self.holds.append(death - ONE_DAY)
        return death is not None and death <= self.today

    def not_yet_due(self, due: date) -> bool:
        """Whether ``due`` (the last day a duty may still be met) has not passed; if so,
        the answer holds until then."""
        if self.today <= due:
            self.holds.append(due)
            return True
        return False

    def period_floor(self) -> date | None:
        """The date of the last lawful ending: facts after it belong to the current period."""
        refused = {id(r.fact) for r in self.position.refused_endings}
        lawful = [f.command.date for f in self.facts if isinstance(f.command, RecordS117Ended)
                  and id(f) not in refused]
        return max(lawful, default=None)

    def explained(self, key: str) -> list[str]:
        found = self.position.explain.get(key)
        return list(found.facts) if found else []


def detect(person: Person, position: Position, today: date,
           policy: DetectorPolicy | None = None) -> list[Finding]:
    """Every finding for the person as of ``today``, one per fingerprint, in a stable order."""
    return _detect(person, position, today, policy)[1]


def detect_until(person: Person, position: Position, today: date,
                 policy: DetectorPolicy | None = None) -> tuple[list[Finding], date | None]:
    """``detect``, and the last day on which the same facts give the same findings and the
    same position (None: no date alone changes them): a due date not yet passed, a death
    or a child's twelfth week still to come, and whatever moves the position
    (``position_stable_until``). The sweep need not look at the person again before then
    unless their facts change."""
    ctx, found = _detect(person, position, today, policy)
    return found, earliest(*ctx.holds, position_stable_until(person, today))


def _detect(person: Person, position: Position, today: date,
            policy: DetectorPolicy | None) -> tuple[_Context, list[Finding]]:
    facts = [f for f in person.live_facts() if fact_day(f) <= today]
    ctx = _Context(person, position, today, policy or DetectorPolicy(), facts)
    detectors: list[Callable[[_Context], list[Finding]]] = [_refused_endings, _flagged_endings,
                                                            _charges]
    if not ctx.deceased:
        detectors += [_missed_entitlement, _review_overdue, _unscheduled_review,
                      _no_named_practitioner, _no_aftercare_plan, _child_notification]
    found = [f for detector in detectors for f in detector(ctx)]
    # The precedence the position followed: what it settled is on the register, not raised.
    rules = position.precedence
    found += source_conflicts.detention_conflicts(facts, today, rules)
    found += source_conflicts.death_conflicts(facts, today, rules)
    found += source_conflicts.dated_conflicts(facts, rules)
    found += source_conflicts.aftercare_conflicts(facts, position.detentions, rules)
    found += _confirmed_without_entitling_detention(ctx)
    found += _cto_without_entitling_detention(ctx)
    unique = {f.fingerprint: f for f in reversed(found)}
    return ctx, sorted(unique.values(), key=lambda f: (f.kind, f.fingerprint))


def _section(code: str | None) -> str:
    return f"{describe(code)} ({code})" if code else "an entitling section"


def _missed_entitlement(ctx: _Context) -> list[Finding]:
    ent = ctx.position.entitlement
    if ent.status != "active" or ent.start is None or ent.trigger_section is None:
        return []  # not active, or started by a council confirmation (nothing to acknowledge)
    cited = set(ctx.explained("entitlement.start"))
    leaving = [f for f in ctx.facts if f.cite() in cited and (
        fact_day(f) == ent.start or getattr(f.command, "end", None) == ent.start)]
    if not leaving:
        return []
    # The position cites one fact for the start; every source that told of leaving on that
    # day knows of it too (a council's detention record with the end date, say), and so does
    # one whose record of this detention ends on another day (a source-conflict on the date,
    # not a discharge one partner alone knows of).
    episode = next((ep for ep in ctx.position.detentions if ep.ref == ent.trigger_episode),
                   None)
    recorded = {id(f) for f in episode.facts if _tells_leaving(f, None)} if episode else set()
    leaving += [f for f in ctx.facts if f not in leaving and f.source not in
                {known.source for known in leaving}
                and (_tells_leaving(f, ent.start) or id(f) in recorded)]
    reporters = sorted({f.source for f in leaving})
    floor = ctx.period_floor()
    acknowledging = {f.source for f in ctx.facts if f.kind in ctx.policy.acknowledging_kinds
                     and (floor is None or fact_day(f) > floor)}
    # Missed means one partner alone knows: two sources between them (a trust's discharge
    # and a council's record of it, or its s117 confirmation) mean both sides do.
    if len(set(reporters) | acknowledging) > 1:
        return []
    heard = min(england_date(f.command.provenance.received_at) for f in leaving)
    due = add_working_days(max(ent.start, heard), ctx.policy.confirmation_working_days)
    if ctx.not_yet_due(due):
        return []
    return [finding(
        "missed-entitlement", [ent.trigger_episode, ent.start],
        f"Left hospital on {iso(ent.start)} after detention under {_section(ent.trigger_section)}"
        f", told by {', '.join(reporters)} only: no s117 confirmation from another partner "
        f"by {iso(due)}",
        {"rule": "s117 begins on leaving hospital after an entitling detention (joint policy "
                 "2.2, 8.4); every partner's register records it within 5 working days of "
                 "notice (19.2, 19.6)",
         "entitlement_start": iso(ent.start), "trigger_section": ent.trigger_section,
         "episode": ent.trigger_episode, "reported_by": reporters, "heard": iso(heard),
         "confirmation_due": iso(due), "acknowledging_kinds": sorted(
             ctx.policy.acknowledging_kinds),
         "facts": [f.cite() for f in leaving]})]


def _cto_without_entitling_detention(ctx: _Context) -> list[Finding]:
    """A person on a CTO whose detentions on the register all do not entitle (an s2 stay, or
    a section a register owner's accept-source settled as s2): a CTO is made only after
    detention under s3 or an unrestricted Part 3 section (MHA s17A), which entitles, so the
    sources contradict each other and the register would show no entitlement for someone on
    a CTO. With no detention on the register there is nothing to contradict."""
    position = ctx.position
    if (not position.on_cto or not position.detentions
            or any(ep.entitling for ep in position.detentions)
            or position.entitlement.status in ("pending", "active")):
        return []
    starts = [ev for ev in position.legal_status_events
              if ev.kind == "cto-start" and ev.date <= ctx.today]
    if not starts:
        return []
    cto = max(starts, key=lambda ev: ev.date)
    told = sorted({(ep.section, ep.start) for ep in position.detentions},
                  key=lambda told: told[1])
    sections = ", ".join(f"{_section(code)} from {iso(start)}" for code, start in told)
    tellers = sorted({f.source for ep in position.detentions for f in ep.facts})
    return [finding(
        source_conflicts.KIND, ["cto-without-entitling-detention", cto.date],
        f"{cto.fact.source} says a CTO from {iso(cto.date)}, but the register's detentions "
        f"({sections}, told by {', '.join(tellers)}) entitle to none: decide which is right",
        {"rule": "a CTO follows detention under s3 or an unrestricted Part 3 section (MHA "
                 "s17A), which entitles to s117 (joint policy 2.2, 8.4; s117-rules.md, "
                 "sources disagree)",
         "field": "entitlement.trigger_section",
         "values": [{"source": cto.fact.source, "value": f"on a CTO from {iso(cto.date)}"}]
         + [{"source": source, "value": "no entitling detention"} for source in tellers],
         "detentions": [{"section": code, "start": iso(start)} for code, start in told],
         "facts": [cto.fact.cite()] + [f.cite() for ep in position.detentions
                                       for f in ep.facts]})]


def _confirmed_without_entitling_detention(ctx: _Context) -> list[Finding]:
    """A council confirmed s117 where every detention on the register is one that does not
    entitle (an s2 stay, say): the sources disagree on eligibility. With no detention on the
    register at all there is nothing to disagree with (the council may know of one elsewhere).
    """
    ent = ctx.position.entitlement
    detentions = ctx.position.detentions
    if (ent.status != "active" or ent.trigger_section is not None or not detentions
            or any(ep.entitling for ep in detentions)):
        return []
    confirmed = [f for f in ctx.facts if isinstance(f.command, RecordS117Confirmed)
                 and f.command.start == ent.start]
    told = sorted({(ep.section, ep.start) for ep in detentions}, key=lambda told: told[1])
    sections = ", ".join(f"{_section(code)} from {iso(start)}" for code, start in told)
    confirmers = sorted({f.source for f in confirmed})
    tellers = sorted({f.source for ep in detentions for f in ep.facts})
    return [finding(
        source_conflicts.KIND, ["confirmed-without-entitling-detention", ent.start],
        f"{', '.join(confirmers) or 'A council'} confirmed s117 from {iso(ent.start)}, but "
        f"the register's detentions ({sections}, told by {', '.join(tellers)}) entitle to "
        "none: decide which is right",
        {"rule": "s117 follows detention under s3, s37, s45A, s47 or s48, not s2 or another "
                 "section on its own (joint policy 3.3; s117-rules.md, sources disagree)",
         "field": "entitlement.trigger_section",
         "values": [{"source": source, "value": "entitled (s117.confirmed)"}
                    for source in confirmers]
         + [{"source": source, "value": "no entitling detention"} for source in tellers],
         "detentions": [{"section": code, "start": iso(start)} for code, start in told],
         "facts": [f.cite() for f in confirmed]
         + [f.cite() for ep in detentions for f in ep.facts]})]


def _tells_leaving(fact: Fact, day: date | None) -> bool:
    """Whether a fact reports a detention ending (left hospital) on ``day`` (None: any)."""
    command = fact.command
    if isinstance(command, RecordLeftHospital):
        return day is None or command.date == day
    # A detention that ended may leave the person in hospital informally: only an end date
    # on the detention record (as councils report it) or a discharge says they left.
    return (isinstance(command, RecordDetentionStarted) and command.end is not None
            and (day is None or command.end == day))


_ENDING_SUMMARY = {
    "ended-on-cto": "recorded while the person is on a CTO (joint policy 16.2)",
    "ended-on-s17-leave": "recorded while the person is on s17 leave, still detained (joint "
                          "policy 1.1, 2.2, 8.4)",
    "one-sided-ending": "is not a joint decision with reasons (joint policy 16.1, 16.3, 16.9)",
    "ended-during-dispute": "is dated while a dispute about ending is open: care continues "
                            "throughout (dispute protocol 3, 7)",
    "source-conflict": "has no active s117 entitlement to end on that date",
}


def _refused_endings(ctx: _Context) -> list[Finding]:
    found = []
    status = ctx.position.entitlement.status
    for refused in ctx.position.refused_endings:
        cmd = refused.fact.command
        assert isinstance(cmd, RecordS117Ended)
        by_kind: dict[str, list[Violation]] = {}
        for violation in refused.violations:
            by_kind.setdefault(violation.exception_kind, []).append(violation)
        for kind, violations in by_kind.items():
            rules = sorted({v.rule for v in violations})
            what = _ENDING_SUMMARY.get(kind, "breaks the ending rules")
            detail = {
                "rule": "; ".join(v.message for v in violations),
                "violations": [{"rule": v.rule, "field": v.field, "message": v.message}
                               for v in violations],
                "ending": {"date": iso(cmd.date), "source": refused.fact.source,
                           "reason_given": bool(cmd.reason and cmd.reason.strip()),
                           "council_signed": cmd.council_signoff is not None,
                           "icb_signed": cmd.icb_signoff is not None,
                           "grounds": list(cmd.grounds)},
                "entitlement_status": status, "facts": [refused.fact.cite()]}
            signed_for = cmd.council_signoff.organisation if cmd.council_signoff else None
            if signed_for:  # said only when the source named it (not in the contract's shape)
                detail["ending"]["council_signed_for"] = signed_for
            after = ""
            if kind == "ended-during-dispute":
                held = [span for span in ctx.position.disputes
                        if span.kind == "ending" and span.open_on(cmd.date)]
                detail["disputes"] = [{"id": span.id, "opened": iso(span.opened),
                                       "resolved": iso(span.resolved)} for span in held]
                ids = ", ".join(span.id for span in held)
                resolved = [span.resolved for span in held if span.resolved is not None]
                after = (f" (dispute {ids} still open)" if len(resolved) < len(held) else
                         f" (dispute {ids} resolved on {iso(max(resolved))}: if the outcome "
                         "is to end, the partners record the ending again, dated on or "
                         "after that day)")
            found.append(finding(
                kind, [refused.fact.source, cmd.date, *rules],
                f"s117 ending dated {iso(cmd.date)} from {refused.fact.source} {what}; the "
                f"register does not end the entitlement (now {status}){after}", detail))
    return found


_FLAG_SUMMARY = {
    "ended-during-conditional-discharge": "while the person was conditionally discharged and "
                                          "liable to recall (standards.md section 6)",
    "ended-without-review": "with no review on the register since the person left hospital "
                            "(single-agency ones aside): an ending follows a joint recorded "
                            "review (joint policy 16.1; MoU 5)",
}


def _flagged_endings(ctx: _Context) -> list[Finding]:
    """Lawful endings that stand but must be looked at (``position.flagged_endings``)."""
    found = []
    for flagged in ctx.position.flagged_endings:
        cmd = flagged.fact.command
        assert isinstance(cmd, RecordS117Ended)
        for flag in flagged.flags:
            what = _FLAG_SUMMARY.get(flag.exception_kind, "in circumstances to check")
            found.append(finding(
                flag.exception_kind, [flagged.fact.source, cmd.date, flag.rule],
                f"s117 ended on {iso(cmd.date)} (recorded by {flagged.fact.source}) {what}: "
                "the ending stands; check it", {
                    "rule": flag.message,
                    "violations": [{"rule": flag.rule, "field": flag.field,
                                    "message": flag.message}],
                    "ending": {"date": iso(cmd.date), "source": flagged.fact.source},
                    "entitlement_status": ctx.position.entitlement.status,
                    "facts": [flagged.fact.cite()]}))
    return found


def _review_overdue(ctx: _Context) -> list[Finding]:
    ent = ctx.position.entitlement
    due = ent.next_review_due
    if ent.status != "active" or due is None:
        return []
    if ctx.not_yet_due(add_working_days(due, ctx.policy.review_grace_working_days)):
        return []
    which = "3-month" if ent.last_review is None else "12-month"
    since = (f"discharge on {iso(ent.start)}" if ent.last_review is None
             else f"the last review on {iso(ent.last_review)}")
    return [finding(
        "review-overdue", [which, due],
        f"The {which} s117 review after {since} was due by {iso(due)} and is overdue",
        {"rule": "reviews within 3 months of discharge, then at least every 12 months "
                 "(joint policy 14.1; MoU 5)",
         "review": which, "due": iso(due), "last_review": iso(ent.last_review),
         "entitlement_start": iso(ent.start),
         "facts": ctx.explained("entitlement.next_review_due")})]


def _unscheduled_review(ctx: _Context) -> list[Finding]:
    """A move to another council area with no review since (``position.review_prompts``)."""
    ent = ctx.position.entitlement
    found = []
    for prompt in ctx.position.review_prompts:
        heard = min((england_date(f.command.provenance.received_at) for f in prompt.facts),
                    default=prompt.since)
        due = add_working_days(max(prompt.since, heard),
                               ctx.policy.unscheduled_review_working_days)
        if ctx.not_yet_due(due):
            continue
        found.append(finding(
            "review-overdue", ["unscheduled", prompt.trigger, prompt.since, prompt.moved_to],
            f"The person moved from {prompt.moved_from} to {prompt.moved_to} on "
            f"{iso(prompt.since)} and no s117 review has been held since; the unscheduled "
            f"review was due by {iso(due)}",
            {"rule": "an unscheduled review whenever the person moves to another local "
                     "authority area (joint policy 14.1); the responsible council does not "
                     "change with the move (4.3.1, 17.1)",
             "review": "unscheduled", "trigger": prompt.trigger, "moved": iso(prompt.since),
             "moved_from": prompt.moved_from, "moved_to": prompt.moved_to, "due": iso(due),
             "last_review": iso(ent.last_review), "entitlement_start": iso(ent.start),
             "facts": [f.cite() for f in prompt.facts]}))
    return found


def _no_named_practitioner(ctx: _Context) -> list[Finding]:
    ent = ctx.position.entitlement
    since = ent.pending_since or ent.start
    if ent.status not in ("pending", "active") or ent.named_practitioner or since is None:
        return []
    due = add_working_days(since, ctx.policy.named_practitioner_working_days)
    if ctx.not_yet_due(due):
        return []
    return [finding(
        "no-named-practitioner", [since],
        # ``since`` is when the duty began (pending, else the start), not when the status
        # became what it is now: the summary had read "active since" the pending date.
        f"No named practitioner recorded for an s117 entitlement (now {ent.status}; the duty "
        f"runs from {iso(since)}); due by {iso(due)}",
        {"rule": "each person who will be subject to s117 must have a named practitioner, "
                 "involved in pre-discharge planning (joint policy 7.3)",
         "entitlement_status": ent.status, "since": iso(since), "due": iso(due),
         "facts": ctx.explained("entitlement.status")})]


def _no_aftercare_plan(ctx: _Context) -> list[Finding]:
    ent = ctx.position.entitlement
    if ent.status != "active" or ent.start is None:
        return []
    floor = ctx.period_floor()
    plan = ent.aftercare_plan_date  # the position's: agreed in this s117 period
    if plan is not None and (floor is None or plan > floor):
        return []
    # A plan of an earlier period, said in the detail (it does not count for this one).
    plan = max((f.command.date for f in ctx.facts  # type: ignore[attr-defined]
                if isinstance(f.command, RecordAftercarePlanAgreed)), default=plan)
    due = add_working_days(ent.start, ctx.policy.aftercare_plan_working_days)
    if ctx.not_yet_due(due):
        return []
    return [finding(
        "no-aftercare-plan", [ent.start],
        f"No s117 aftercare plan agreed for the entitlement active since {iso(ent.start)}; "
        f"due by {iso(due)}",
        {"rule": "aftercare planning starts at admission and a plan is agreed on leaving "
                 "hospital (joint policy 7.2, 19.2)",
         "entitlement_start": iso(ent.start), "due": iso(due),
         "earlier_plan": iso(plan), "facts": ctx.explained("entitlement.start")})]


def _charges(ctx: _Context) -> list[Finding]:
    found = []
    for fact in ctx.position.charges_under_s117:
        cmd = fact.command
        assert isinstance(cmd, RecordServiceCharged)
        found.append(finding(
            "s117-charge", [fact.source, cmd.date, cmd.service, cmd.amount],
            f"Charge of {cmd.amount} for '{cmd.service}' on {iso(cmd.date)} recorded by "
            f"{fact.source} against a service under s117",
            {"rule": "no charge may be made for s117 aftercare services (joint policy 13.1; "
                     "cabinet report 11)",
             "service": cmd.service, "amount": cmd.amount, "date": iso(cmd.date),
             "source": fact.source,
             "entitlement_status": ctx.position.entitlement.status, "facts": [fact.cite()]}))
    return found


def _child_notification(ctx: _Context) -> list[Finding]:
    birth = ctx.person.birth_date
    if birth is None:
        return []
    notices = [f for f in ctx.facts if isinstance(f.command, RecordChildNotification)]
    episodes = sorted(ctx.position.detentions, key=lambda ep: ep.start)
    found = []
    for index, ep in enumerate(episodes):
        reached = children.twelve_weeks_on(ep.start)
        ground = children.s85_notification_ground(birth, ep.start, ep.end, ctx.today,
                                                  ep.expected_end)
        if ep.end is None and children.is_child_on(birth, ep.start) and ctx.today < reached:
            # Still in: the twelfth week (or, when expected, the wording) changes then.
            ctx.holds.append(reached - ONE_DAY)
        if ground is None:
            continue
        following = episodes[index + 1].start if index + 1 < len(episodes) else None
        if any(n.command.date >= ep.start and (following is None or n.command.date < following)
               for n in notices):  # type: ignore[attr-defined]
            continue
        age = children.age_on(birth, ep.start)
        if ground == "reached":
            what = (f"has been in hospital 12 consecutive weeks or more (reached "
                    f"{iso(reached)})")
        else:
            what = (f"is expected to be detained 12 consecutive weeks or more (to "
                    f"{iso(ep.expected_end)}; 12 weeks on {iso(reached)})")
        found.append(finding(
            "child-12-week-notification", [ep.ref, ep.start],
            f"A child (under 18 when admitted on {iso(ep.start)}) {what} with no Children Act "
            "1989 s85 notification recorded",
            {"rule": "a child or young person detained in hospital, likely to be for at least "
                     "12 consecutive weeks: the responsible council must be notified "
                     "(Children Act 1989 s85; joint policy 6.1); due once the detention is "
                     "expected to last 12 weeks, and in any case once it has",
             "ground": ground, "episode": ep.ref, "detention_start": iso(ep.start),
             "detention_end": iso(ep.end), "expected_end": iso(ep.expected_end),
             "twelve_weeks_reached": iso(reached), "age_at_admission": age,
             "facts": [f.cite() for f in ep.facts]}))
    return found


def kinds_of(findings: Sequence[Finding]) -> list[str]:
    """The kinds found, in order (handy in tests and reports)."""
    return [f.kind for f in findings]
