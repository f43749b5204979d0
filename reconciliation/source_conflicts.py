"""Source conflicts: where the partners' systems tell the register different things.

Each source's detentions are folded on their own (the same ``build_detentions`` the position
uses) and compared with the other sources' detentions that overlap them in time. Silence is
not disagreement: a source that does not know a detention's end is not in conflict with one
that does (that gap is what ``missed-entitlement`` looks for).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from itertools import combinations

from register_core.domain.commands import (
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordOrdinaryResidenceChanged,
    RecordPersonDetails,
)
from register_core.domain.episodes import Detention, build_detentions, fact_day
from register_core.domain.legal_status import describe
from register_core.domain.model import Fact

from .findings import Finding, finding, iso

KIND = "source-conflict"
_DETENTION_COMMANDS = (RecordDetentionStarted, RecordLegalStatusChanged, RecordLeftHospital)


def detention_conflicts(facts: Sequence[Fact], today: date) -> list[Finding]:
    """Sources disagree on a detention's start, section, end or named ICB (s117-rules.md,
    "Sources disagree: section, dates, responsible council or ICB")."""
    by_source: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        if isinstance(fact.command, _DETENTION_COMMANDS):
            by_source[fact.source].append(fact)
    episodes = {source: build_detentions(own, today)[0] for source, own in by_source.items()}
    found: list[Finding] = []
    for a, b in combinations(sorted(episodes), 2):
        for ea in episodes[a]:
            for eb in episodes[b]:
                if _overlap(ea, eb, today):
                    found.extend(_compare(a, ea, b, eb))
    return found


def _overlap(a: Detention, b: Detention, today: date) -> bool:
    return a.start <= (b.end or today) and b.start <= (a.end or today)


def _starts_agree(a: Detention, b: Detention) -> bool:
    """Same start, or one source tells the detention from a regrade the other also tells
    (a council that only hears of the s3 reports it from the s2 → s3 regrade date)."""
    return (a.start == b.start or (b.sections[0][0], b.start) in a.sections
            or (a.sections[0][0], a.start) in b.sections)


def _compare(a: str, ea: Detention, b: str, eb: Detention) -> list[Finding]:
    found = []
    if not _starts_agree(ea, eb):
        found.append(_detention_finding("start", a, ea, ea.start, b, eb, eb.start))
    if ea.section != eb.section:
        found.append(_detention_finding("section", a, ea, ea.section, b, eb, eb.section))
    if ea.end and eb.end and ea.end != eb.end:
        found.append(_detention_finding("end", a, ea, ea.end, b, eb, eb.end))
    if ea.responsible_icb and eb.responsible_icb and ea.responsible_icb != eb.responsible_icb:
        found.append(_detention_finding("responsible_icb", a, ea, ea.responsible_icb,
                                        b, eb, eb.responsible_icb))
    return found


def _show(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return f"{describe(text)} ({text})" if text.isdigit() and len(text) == 2 else text


def _detention_finding(field: str, a: str, ea: Detention, va: object, b: str, eb: Detention,
                       vb: object) -> Finding:
    label = {"start": "start date", "section": "section", "end": "end (left hospital) date",
             "responsible_icb": "ICB"}[field]
    summary = (f"Sources disagree on a detention's {label}: {a} says {_show(va)}, "
               f"{b} says {_show(vb)}")
    detail = {
        "rule": "the same detention told differently by two sources: decide which is right "
                "(s117-rules.md, sources disagree)",
        "field": f"detention.{field}",
        "values": [
            {"source": src, "value": iso(v) if isinstance(v, date) else v, "episode": ep.ref,
             "detention_start": iso(ep.start), "facts": [f.cite() for f in ep.facts]}
            for src, ep, v in ((a, ea, va), (b, eb, vb))],
    }
    parts = ["detention", field, f"{a}={_show(va)}", f"{b}={_show(vb)}"]
    if field != "start":
        parts += [iso(ea.start), iso(eb.start)]
    return finding(KIND, parts, summary, detail)


def death_conflicts(facts: Sequence[Fact], today: date) -> list[Finding]:
    """Sources disagree on the date of death, or tell of the person alive after it."""
    deaths: dict[str, dict[date, list[Fact]]] = defaultdict(lambda: defaultdict(list))
    for fact in facts:
        if fact.command.person.death_date is not None:
            deaths[fact.source][fact.command.person.death_date].append(fact)
    if not deaths:
        return []
    found = []
    told = sorted((src, day) for src, days in deaths.items() for day in days)
    if len({day for _, day in told}) > 1:
        found.append(finding(
            KIND, ["death", *(f"{src}={iso(day)}" for src, day in told)],
            "Sources disagree on the date of death: " + ", ".join(
                f"{src} says {iso(day)}" for src, day in told),
            {"rule": "one person has one date of death (s117-rules.md, alive/deceased)",
             "field": "person.death_date",
             "values": [{"source": src, "value": iso(day),
                         "facts": [f.cite() for f in deaths[src][day]]} for src, day in told]}))
    earliest = min(day for _, day in told)
    later = [f for f in facts if not isinstance(f.command, RecordPersonDetails)
             and f.effective is not None and f.effective > earliest and fact_day(f) <= today]
    if later:
        found.append(finding(
            KIND, ["alive-after-death", iso(earliest),
                   *sorted(f"{f.source}/{f.kind}/{iso(f.effective)}" for f in later)],
            f"{len(later)} event(s) dated after the recorded date of death ({iso(earliest)})",
            {"rule": "no event can follow the person's death: either the date of death or "
                     "the events are wrong (s117-rules.md, alive/deceased)",
             "field": "person.death_date", "death_date": iso(earliest),
             "death_told_by": [{"source": src, "facts": [f.cite() for f in deaths[src][day]]}
                               for src, day in told if day == earliest],
             "later_events": [{"source": f.source, "kind": f.kind, "date": iso(f.effective),
                               "fact": f.cite()} for f in later]}))
    return found


def residence_conflicts(facts: Sequence[Fact]) -> list[Finding]:
    """Sources name different councils of ordinary residence from the same date (which sets
    the responsible council, joint policy 4.3.1)."""
    by_day: dict[date, dict[str, dict[str, list[Fact]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for fact in facts:
        cmd = fact.command
        if isinstance(cmd, RecordOrdinaryResidenceChanged):
            by_day[cmd.date][cmd.council_code][fact.source].append(fact)
    found = []
    for day, councils in sorted(by_day.items()):
        if len(councils) < 2 or len({s for srcs in councils.values() for s in srcs}) < 2:
            continue  # one source correcting itself is not a disagreement between sources
        told = sorted((src, council) for council, srcs in councils.items() for src in srcs)
        found.append(finding(
            KIND, ["residence", iso(day), *(f"{src}={council}" for src, council in told)],
            f"Sources disagree on the council of ordinary residence from {iso(day)}: "
            + ", ".join(f"{src} says {council}" for src, council in told),
            {"rule": "ordinary residence sets the responsible council (joint policy 4.3.1, "
                     "4.3.3): one council from one date",
             "field": "ordinary_residence.council_code", "date": iso(day),
             "values": [{"source": src, "value": council,
                         "facts": [f.cite() for f in councils[council][src]]}
                        for src, council in told]}))
    return found
