"""Source conflicts: where the partners' systems tell the register different things.

Each source's detentions are folded on their own (the same ``build_detentions`` the position
uses) and compared with the other sources' detentions that overlap them in time. Silence is
not disagreement: a source that does not know a detention's end is not in conflict with one
that does (that gap is what ``missed-entitlement`` looks for).

The aftercare plan and reviews are compared within one aftercare period (from a detention's
start, as the register folds detentions, to the next detention after leaving hospital; see
``register_core.domain.precedence``): two sources' first plans on different dates, neither
telling the other's; a review of one kind told on two dates within 28 days by two sources,
neither telling the other's; or a review both tell on one date, one as joint and the other as
single-agency.

A disagreement a configured precedence rule settles (``register_core.domain.precedence``,
``[precedence]`` in the config file), or a register owner's ``accept-source`` decision on
the same question, is no exception: the position follows the winner and says so in its
explain. Only what nothing settles is raised, exactly as without rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from register_core.domain.commands import REGISTER_COMMANDS, RecordPersonDetails
from register_core.domain.episodes import Detention, fact_day
from register_core.domain.model import Fact
from register_core.domain.precedence import (
    DATED_FIELDS,
    DETENTION_FIELD_LABEL,
    JOINT_LABEL,
    REVIEW_WINDOW_DAYS,
    AftercareDisagreement,
    Precedence,
    aftercare_disagreements,
    dated_disagreements,
    death_questions,
    deaths_told,
    detention_disagreements,
    settle_detention,
    show,
)

from .findings import Finding, finding, iso

KIND = "source-conflict"
_NO_RULES = Precedence()


def detention_conflicts(facts: Sequence[Fact], today: date,
                        precedence: Precedence = _NO_RULES) -> list[Finding]:
    """Sources disagree on a detention's start, section, end or named ICB (s117-rules.md,
    "Sources disagree: section, dates, responsible council or ICB") and no rule says whose
    word stands."""
    found: list[Finding] = []
    for disagreement in detention_disagreements(facts, today):
        if settle_detention(precedence, disagreement) is not None:
            continue
        a, ea, b, eb = disagreement.a, disagreement.ea, disagreement.b, disagreement.eb
        found += [_detention_finding(name, a, ea, va, b, eb, vb)
                  for name, va, vb in disagreement.fields]
    return found


def _detention_finding(field: str, a: str, ea: Detention, va: object, b: str, eb: Detention,
                       vb: object) -> Finding:
    label = DETENTION_FIELD_LABEL[field]
    summary = (f"Sources disagree on a detention's {label}: {a} says {show(va)}, "
               f"{b} says {show(vb)}")
    detail = {
        "rule": "the same detention told differently by two sources: decide which is right "
                "(s117-rules.md, sources disagree)",
        "field": f"detention.{field}",
        "values": [
            {"source": src, "value": iso(v) if isinstance(v, date) else v, "episode": ep.ref,
             "detention_start": iso(ep.start), "facts": [f.cite() for f in ep.facts]}
            for src, ep, v in ((a, ea, va), (b, eb, vb))],
    }
    parts = ["detention", field, f"{a}={show(va)}", f"{b}={show(vb)}"]
    if field != "start":
        parts += [iso(ea.start), iso(eb.start)]
    return finding(KIND, parts, summary, detail)


def death_conflicts(facts: Sequence[Fact], today: date,
                    precedence: Precedence = _NO_RULES) -> list[Finding]:
    """Sources disagree on the date of death (unless a rule settles it), or tell of the
    person alive after it (always raised: either the death or the events are wrong, which no
    ranking of sources can tell)."""
    deaths = deaths_told(facts)
    if not deaths:
        return []
    found = []
    told = sorted((src, day) for src, days in deaths.items() for day in days)
    if len({day for _, day in told}) > 1 and precedence.settle(
            "death", deaths, death_questions(deaths)) is None:
        found.append(finding(
            KIND, ["death", *(f"{src}={iso(day)}" for src, day in told)],
            "Sources disagree on the date of death: " + ", ".join(
                f"{src} says {iso(day)}" for src, day in told),
            {"rule": "one person has one date of death (s117-rules.md, alive/deceased)",
             "field": "person.death_date",
             "values": [{"source": src, "value": iso(day),
                         "facts": [f.cite() for f in deaths[src][day]]} for src, day in told]}))
    earliest = min(day for _, day in told)
    # The register's own records (a dispute logged about past care) tell of no event.
    later = [f for f in facts if not isinstance(f.command, RecordPersonDetails)
             and f.kind not in REGISTER_COMMANDS
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


# Why one value from one date matters, per group (the exception's detail says it).
_DATED_RULES = {
    "ordinary_residence": "ordinary residence sets the responsible council (joint policy "
                          "4.3.1, 4.3.3): one council from one date",
    "gp_practice": "the GP practice before the detention sets the originating ICB (joint "
                   "policy 4.4.1): one practice from one date",
    "named_practitioner": "one named practitioner leads the aftercare (joint policy 7.3): "
                          "one from one date",
}
# Fingerprint prefix per group ("residence" as before, so open exceptions keep their ids).
_DATED_PREFIX = {"ordinary_residence": "residence", "gp_practice": "gp-practice",
                 "named_practitioner": "named-practitioner"}


def dated_conflicts(facts: Sequence[Fact],
                    precedence: Precedence = _NO_RULES) -> list[Finding]:
    """Sources tell different values from the same date — the council of ordinary residence
    (which sets the responsible council), the GP practice (the originating ICB), the named
    practitioner — and no rule says whose word stands."""
    found = []
    for group, spec in DATED_FIELDS.items():
        for disagreement in dated_disagreements(group, facts):
            if precedence.settle(group, disagreement.by_source(),
                                 disagreement.questions()) is not None:
                continue
            day, values = disagreement.day, disagreement.told
            told = sorted((src, value) for value, srcs in values.items() for src in srcs)
            found.append(finding(
                KIND, [_DATED_PREFIX[group], iso(day), *(f"{src}={value}" for src, value in told)],
                f"Sources disagree on the {spec.label} from {iso(day)}: "
                + ", ".join(f"{src} says {value}" for src, value in told),
                {"rule": _DATED_RULES[group], "field": spec.register_field, "date": iso(day),
                 "values": [{"source": src, "value": value,
                             "facts": [f.cite() for f in values[value][src]]}
                            for src, value in told]}))
    return found


def aftercare_conflicts(facts: Sequence[Fact], detentions: Sequence[Detention],
                        precedence: Precedence = _NO_RULES) -> list[Finding]:
    """Sources tell the aftercare plan of one period, or one review, differently (the date the
    plan was agreed, the date a review was held, whether it was joint) and no rule says whose
    word stands. ``detentions`` are the position's: the periods it settled plans and reviews
    in."""
    return [_aftercare_finding(disagreement)
            for disagreement in aftercare_disagreements(facts, detentions)
            if precedence.settle(disagreement.group, disagreement.by_source(),
                                 disagreement.questions()) is None]


# Per kind of aftercare disagreement: fingerprint prefix, what the summary says they disagree
# on, the register field it feeds, and why one answer matters (the exception's detail).
_AFTERCARE = {
    ("aftercare_plan", "date"): (
        "aftercare-plan", "Sources disagree on the aftercare plan agreed date",
        "entitlement.aftercare_plan_date",
        "one aftercare plan is agreed for the aftercare after a detention (joint policy 7.2, "
        "19.2): the first plan each source tells differs, and neither tells the other's"),
    ("review", "date"): (
        "review", "Sources tell one review on different dates", "entitlement.last_review",
        f"reviews of one kind told by two sources within {REVIEW_WINDOW_DAYS} days of each "
        "other, neither telling the other's date, are one review; its date sets the next "
        "review due (joint policy 14.1)"),
    ("review", "joint"): (
        "review-joint", "Sources disagree on whether the review of {day} was joint",
        "reviews.joint",
        "an ending needs a joint review of council and NHS (joint policy 16.1, 16.3): one "
        "answer on whether this review was joint"),
}


def _aftercare_finding(d: AftercareDisagreement) -> Finding:
    prefix, what, field, rule = _AFTERCARE[(d.group, d.field)]
    said = [(src, _shown(value), told) for src, value, told in ((d.a, d.va, d.fa),
                                                                 (d.b, d.vb, d.fb))]
    parts: list[object] = [prefix, *([d.day] if d.day else []),
                           *(f"{src}={value}" for src, value, _ in said)]
    detail = {"rule": rule, "field": field, **({"date": iso(d.day)} if d.day else {}),
              "period": {"from": iso(d.opener.start), "detention": d.opener.ref}
              if d.opener else None,
              "values": [{"source": src, "value": value, "facts": [f.cite() for f in told]}
                         for src, value, told in said]}
    return finding(KIND, parts, what.format(day=iso(d.day)) + ": " + ", ".join(
        f"{src} says {value}" for src, value, _ in said), detail)


def _shown(value: date | bool) -> str:
    return JOINT_LABEL[value] if isinstance(value, bool) else value.isoformat()
