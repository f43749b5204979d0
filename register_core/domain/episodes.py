"""A person's detentions and legal-status periods, folded from their journal of facts.

Facts are folded in effective-date order, and facts of one day in a fixed order of kinds, so
the order in which sources happened to send them does not change the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from .calendar import england_date
from .commands import RecordDetentionStarted, RecordLeftHospital, RecordLegalStatusChanged
from .legal_status import DETAINED_CODES, normalise_code
from .model import Fact
from .rules import eligibility


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
    # An end a source dated after ``today``: when the detention is expected to end (the
    # latest told). It becomes ``end`` on that day; the child rule reads it (6.1: "likely").
    expected_end: date | None = None
    continuation: bool = False  # re-detained by CTO revocation: not a new detention
    revives: str | None = None  # the source's episode ref a CTO revocation returned to
    end_fact: Fact | None = None  # the fact that says how and when the person left
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


def fact_day(fact: Fact) -> date:
    """When a fact takes effect; an undated one (a practitioner set at the console) when the
    hub received it, so a later undated change is not outranked by an older dated one."""
    return fact.effective or england_date(fact.command.provenance.received_at)


def _rank(fact: Fact) -> int:
    """Order of facts dated the same day, so the order sources happened to send them in
    does not change the position: the detention, its regrades, the events on it, then the
    leaving."""
    cmd = fact.command
    if isinstance(cmd, RecordDetentionStarted):
        return 0
    if isinstance(cmd, RecordLegalStatusChanged):
        if cmd.event in ("section-change", "transfer"):
            return 1
        return 3 if cmd.event == "cto-revoked" else 2
    if isinstance(cmd, RecordLeftHospital):
        return 4
    return 5


def fact_order(fact: Fact) -> tuple[date, int, int]:
    return (fact_day(fact), _rank(fact), fact.seq)


def _matches_ref(ep: Detention, ref: str) -> bool:
    return ep.ref == ref or ep.revives == ref


def _episode_in_force(episodes: list[Detention], ref: str | None,
                      when: date) -> Detention | None:
    """The episode of this ref, else the one the person is in on ``when``."""
    if ref is not None:
        for ep in reversed(episodes):  # after a CTO revocation: the revived detention
            if _matches_ref(ep, ref):
                return ep
    for ep in reversed(episodes):
        if ep.start <= when and (ep.end is None or ep.end >= when):
            return ep
    return None


def _find_episode(episodes: list[Detention], ref: str | None, when: date) -> Detention | None:
    """As ``_episode_in_force``, else the latest episode begun by ``when``: a discharge or an
    event told after another source closed the episode still belongs to it."""
    found = _episode_in_force(episodes, ref, when)
    if found is not None:
        return found
    return episodes[-1] if episodes and episodes[-1].start <= when else None


def _find_cto_episode(episodes: list[Detention], ref: str | None,
                      when: date) -> Detention | None:
    """The detention a revoked CTO came from: by ref, else the latest that ended on a CTO."""
    if ref is not None:
        for ep in reversed(episodes):
            if _matches_ref(ep, ref):
                return ep
    for ep in reversed(episodes):
        if ep.end_reason == "cto" and ep.end is not None and ep.end <= when:
            return ep
    return _find_episode(episodes, None, when)


def _same_detention(ep: Detention, cmd: RecordDetentionStarted, section: str) -> bool:
    """Two sources telling of one detention: same start and same section, or same ref."""
    return (cmd.episode_ref is not None and ep.ref == cmd.episode_ref) or (
        ep.start == cmd.start and ep.sections[0][0] == section)


def build_detentions(facts: Sequence[Fact], today: date | None = None,
                     ) -> tuple[list[Detention], list[LegalStatusEvent]]:
    """Fold detention and legal-status facts, in effective-date order, into episodes.

    With ``today``, a detention end dated after it (an expected end) is not yet an end.
    """
    episodes: list[Detention] = []
    events: list[LegalStatusEvent] = []
    for fact in sorted(facts, key=fact_order):
        cmd = fact.command
        if isinstance(cmd, RecordDetentionStarted):
            section = normalise_code(cmd.section)
            end = cmd.end if cmd.end and (today is None or cmd.end <= today) else None
            expected = cmd.end if cmd.end and end is None else None
            existing = next((ep for ep in episodes if _same_detention(ep, cmd, section)), None)
            if existing:
                existing.facts.append(fact)
                # Silence is not disagreement: another source's record fills what is unknown.
                existing.provider_ods = existing.provider_ods or cmd.provider_ods
                existing.responsible_icb = existing.responsible_icb or cmd.responsible_icb
                if end and existing.end is None:
                    existing.end, existing.end_reason, existing.end_fact = (
                        end, "left-hospital", fact)
                if expected and (existing.expected_end is None or expected > existing.expected_end):
                    existing.expected_end = expected
                continue
            ep = Detention(ref=cmd.episode_ref or f"detention-{cmd.start.isoformat()}-{section}",
                           section=section, start=cmd.start, provider_ods=cmd.provider_ods,
                           responsible_icb=cmd.responsible_icb,
                           sections=[(section, cmd.start)], facts=[fact],
                           expected_end=expected)
            if end:
                ep.end, ep.end_reason, ep.end_fact = end, "left-hospital", fact
            episodes.append(ep)
        elif isinstance(cmd, RecordLegalStatusChanged):
            section = normalise_code(cmd.section) if cmd.section else None
            if cmd.event == "section-change":
                ep = _episode_in_force(episodes, cmd.episode_ref, cmd.date)
                if ep is not None and ep.section == section:
                    # Trusts send the status in force on every message: a "change" to it is
                    # no regrade and no event (the fact stays with the detention it told of).
                    ep.facts.append(fact)
                    continue
            events.append(LegalStatusEvent(kind=cmd.event, date=cmd.date, section=section,
                                           episode_ref=cmd.episode_ref, end=cmd.end, fact=fact))
            if cmd.event == "cto-revoked":
                ep = _find_cto_episode(episodes, cmd.episode_ref, cmd.date)
                if ep is not None:
                    # Revocation returns the person to the original detention (s17F): not new.
                    episodes.append(Detention(
                        ref=f"{ep.revives or ep.ref}-revoked-{cmd.date.isoformat()}",
                        section=ep.section, start=cmd.date, provider_ods=ep.provider_ods,
                        responsible_icb=ep.responsible_icb, sections=[(ep.section, cmd.date)],
                        continuation=True, revives=ep.revives or ep.ref, facts=[fact]))
                continue
            if cmd.event == "section-change" and section in DETAINED_CODES:
                ep = _episode_in_force(episodes, cmd.episode_ref, cmd.date)
                if ep is None:
                    # Detained on the ward after an informal admission (an A08, or a FHIR
                    # Encounter admitted informal and discharged detained): the detention
                    # starts here. Hung on the last episode, ended or not, it was lost.
                    episodes.append(Detention(
                        ref=cmd.episode_ref or f"detention-{cmd.date.isoformat()}-{section}",
                        section=section, start=cmd.date, provider_ods=cmd.provider_ods,
                        sections=[(section, cmd.date)], facts=[fact]))
                    continue
            else:
                ep = _find_episode(episodes, cmd.episode_ref, cmd.date)
            if ep is None:
                continue
            ep.facts.append(fact)
            if cmd.event == "section-change" and section:
                ep.sections.append((section, cmd.date))
                ep.section = section
            elif cmd.event == "transfer" and cmd.provider_ods:
                ep.provider_ods = cmd.provider_ods
            elif cmd.event == "detention-ended":
                ep.detained_until = cmd.date
            elif cmd.event in ("cto-start", "conditional-discharge-start") and ep.end is None:
                ep.end, ep.end_fact = cmd.date, fact
                ep.end_reason = "cto" if cmd.event == "cto-start" else "conditional-discharge"
        elif isinstance(cmd, RecordLeftHospital):
            ep = _find_episode(episodes, cmd.episode_ref, cmd.date)
            if ep is not None and (ep.end is None or _earlier_than_a_record_end(ep, cmd.date)):
                ep.end, ep.end_reason, ep.end_fact = cmd.date, cmd.reason, fact
                ep.facts.append(fact)
    return episodes, events


def _earlier_than_a_record_end(ep: Detention, day: date) -> bool:
    """Whether a discharge on ``day`` comes before the end another source's detention record
    gave the episode. A record's end is folded at the record's start date, ahead of every
    discharge: without this, a council's later end date would always beat the trust's
    discharge. Where sources tell different ends the earliest stands (the duties that run
    from leaving start no later than any source says) and a source-conflict is raised; a
    ``[precedence]`` rule restates the facts first."""
    return (ep.end is not None and day < ep.end and ep.end_fact is not None
            and isinstance(ep.end_fact.command, RecordDetentionStarted))


def period_in_force(events: Sequence[LegalStatusEvent], start: str, stops: set[str],
                  today: date) -> bool:
    """Whether a CTO (or conditional discharge) is in force on ``today``."""
    in_force = False
    for ev in sorted(events, key=lambda e: fact_order(e.fact)):
        if ev.date > today:
            break
        if ev.kind == start:
            in_force = ev.end is None or ev.end > today
        elif ev.kind in stops:
            in_force = False
    return in_force


def on_cto_at(events: Sequence[LegalStatusEvent], day: date) -> bool:
    return period_in_force(events, "cto-start", {"cto-end", "cto-revoked"}, day)
