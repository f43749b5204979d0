"""Where partners' systems disagree, and which source's word stands (local configuration).

s117-rules.md ("Sources disagree: section, dates, responsible council or ICB, alive/deceased")
asks the hub to find disagreements (here: detentions, ordinary residence, GP practice, named
practitioner, death, the aftercare plan and reviews); architecture section 1 step 3 lets a
*rule* settle one and leaves the rest to a person. The rule is per field group, an ordered
list of source-id patterns (``fnmatch`` globs such as ``trust-*``): the first pattern naming
one of the disagreeing sources picks the winner, provided the sources it names agree among
themselves. No pattern naming any of them, or the named ones disagreeing with each other: not
settled.

A register owner's decision settles one disagreement the same way, ahead of the rules: a
source-conflict exception resolved ``accept-source:<source>`` is journalled as a
``RecordSourceAccepted`` fact, read back here as a ``Ruling`` on the ``Question`` the
exception showed (its field, the date the value applies from, what each source told). It
settles that disagreement only while the sources tell exactly that; new values are a new
question. For a detention, as with a rule, the accepted source's version of it stands whole.

Both sides read this module, so they cannot drift apart: the position (which follows the
winner) and ``reconciliation.source_conflicts`` (which raises only what no rule settles).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from fnmatch import fnmatchcase
from itertools import combinations

from .commands import (
    RecordAftercarePlanAgreed,
    RecordDetentionStarted,
    RecordGpRegistration,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordOrdinaryResidenceChanged,
    RecordReviewCompleted,
    RecordSourceAccepted,
    SetNamedPractitioner,
)
from .episodes import Detention, build_detentions, fact_day
from .legal_status import describe
from .model import Fact

FIELD_GROUPS: tuple[str, ...] = ("detention", "ordinary_residence", "gp_practice",
                                  "named_practitioner", "death", "aftercare_plan", "review")
_GROUP_LABEL = {"detention": "detention facts", "ordinary_residence": "ordinary residence",
                "gp_practice": "GP practice", "named_practitioner": "named practitioner",
                "death": "date of death", "aftercare_plan": "aftercare plan",
                "review": "review"}
DETENTION_FIELD_LABEL = {"start": "start date", "section": "section",
                         "end": "end (left hospital) date", "responsible_icb": "ICB"}
_DETENTION_COMMANDS = (RecordDetentionStarted, RecordLegalStatusChanged, RecordLeftHospital)
_LEAVING_EVENTS = ("cto-start", "conditional-discharge-start")


@dataclass(frozen=True)
class Question:
    """One disagreement between sources as its source-conflict exception shows it: the field
    (the exception detail's ``field``), the date the value applies from where it has one (a
    residence, a review's joint), and what each source told, as (source, value, the start of
    that source's detention for a detention field), sorted."""

    field: str
    day: str | None
    told: tuple[tuple[str, str, str | None], ...]

    @property
    def sources(self) -> set[str]:
        return {src for src, _, _ in self.told}


@dataclass(frozen=True, kw_only=True)
class Ruling:
    """A register owner's ``accept-source`` decision on one question (a journalled fact)."""

    question: Question
    source: str
    exception_id: str
    by: str
    fact: str  # how explain cites the decision's fact

    @property
    def decision(self) -> str:
        return (f"register owner {self.by} resolving exception {self.exception_id}: "
                f"accept-source:{self.source}")


def rulings_in(facts: Sequence[Fact]) -> tuple[Ruling, ...]:
    """The owners' decisions in a journal, oldest first (a later one on a question wins)."""
    return tuple(Ruling(question=Question(cmd.field, cmd.day.isoformat() if cmd.day else None,
                                          tuple(sorted(cmd.told))),
                        source=cmd.source, exception_id=cmd.exception_id,
                        by=cmd.provenance.recorded_by, fact=f.cite())
                 for f in facts if isinstance(cmd := f.command, RecordSourceAccepted))


# The exception detail's ``field`` for an aftercare disagreement (``source_conflicts``).
_AFTERCARE_QUESTION_FIELD = {("aftercare_plan", "date"): "entitlement.aftercare_plan_date",
                             ("review", "date"): "entitlement.last_review",
                             ("review", "joint"): "reviews.joint"}
DEATH_FIELD = "person.death_date"


def group_of(field: str) -> str | None:
    """The precedence group a source-conflict's field belongs to (None: no group, so no
    source's word can settle it: an eligibility or ending question, events after a death)."""
    if field.removeprefix("detention.") in DETENTION_FIELD_LABEL:
        return "detention"
    for group, spec in DATED_FIELDS.items():
        if spec.register_field == field:
            return group
    for (group, _), name in _AFTERCARE_QUESTION_FIELD.items():
        if name == field:
            return group
    return "death" if field == DEATH_FIELD else None


def question_of(detail: Mapping[str, object] | None) -> Question | None:
    """The question a source-conflict exception's detail asks (as ``source_conflicts`` built
    it), or None where it is not one a source's value settles."""
    if not detail:
        return None
    field, values, day = detail.get("field"), detail.get("values"), detail.get("date")
    if not isinstance(field, str) or group_of(field) is None or not isinstance(values, list):
        return None
    told = []
    for value in values:
        if not isinstance(value, Mapping) or value.get("value") is None:
            return None
        start = value.get("detention_start")
        told.append((str(value.get("source")), str(value["value"]),
                     str(start) if start is not None else None))
    if len({src for src, _, _ in told}) < 2:
        return None
    return Question(field, str(day) if day is not None else None, tuple(sorted(told)))


@dataclass(frozen=True, kw_only=True)
class Precedence:
    """Per field group, source-id patterns in order of preference; empty settles nothing.
    ``rulings``: the owners' decisions journalled for the person the position is about (the
    position adds them), settling their questions ahead of the patterns."""

    detention: tuple[str, ...] = ()
    ordinary_residence: tuple[str, ...] = ()
    gp_practice: tuple[str, ...] = ()
    named_practitioner: tuple[str, ...] = ()
    death: tuple[str, ...] = ()
    aftercare_plan: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    rulings: tuple[Ruling, ...] = ()

    def patterns(self, group: str) -> tuple[str, ...]:
        if group not in FIELD_GROUPS:
            raise ValueError(f"unknown precedence group {group!r}")
        patterns: tuple[str, ...] = getattr(self, group)
        return patterns

    def settles(self, group: str) -> bool:
        """Whether anything here may settle a disagreement of ``group``."""
        return bool(self.patterns(group)) or any(
            group_of(r.question.field) == group for r in self.rulings)

    def settle(self, group: str, told: Mapping[str, Collection[Hashable]],
               questions: Collection[Question] = ()) -> Settlement | None:
        """The settlement of a disagreement (``told``: source → the values it asserted;
        ``questions``: how its exceptions ask it, which an owner's decision may answer)."""
        ruled = [r for r in self.rulings if r.question in questions and r.source in told]
        if ruled:
            ruling = ruled[-1]
            said = set(told[ruling.source])
            if len(said) != 1:
                return None  # the accepted source tells two values: nothing to take
            [value] = said
            overruled = tuple(sorted(src for src, other in told.items()
                                     if src != ruling.source and set(other) != {value}))
            return Settlement(group=group, pattern=f"accept-source:{ruling.source}",
                              winners=(ruling.source,), value=value, overruled=overruled,
                              ruling=ruling)
        for pattern in self.patterns(group):
            named = sorted(src for src in told if fnmatchcase(src, pattern))
            if not named:
                continue
            values = {value for src in named for value in told[src]}
            if len(values) != 1:
                return None  # the preferred sources disagree among themselves
            [value] = values
            overruled = tuple(sorted(src for src, said in told.items()
                                     if src not in named and set(said) != {value}))
            return Settlement(group=group, pattern=pattern, winners=tuple(named),
                              value=value, overruled=overruled)
        return None


@dataclass(frozen=True, kw_only=True)
class Settlement:
    group: str
    pattern: str
    winners: tuple[str, ...]
    value: Hashable
    overruled: tuple[str, ...]
    ruling: Ruling | None = None  # an owner's decision, not a configured pattern

    @property
    def rule(self) -> str:
        chosen = (f"{_GROUP_LABEL[self.group]} from {', '.join(self.winners)} over "
                  f"{', '.join(self.overruled)}")
        if self.ruling is not None:
            return f"{self.ruling.decision} ({chosen})"
        return f"precedence: {chosen} (config precedence.{self.group}: '{self.pattern}')"

    @property
    def cites(self) -> tuple[str, ...]:
        """The decision's own fact, cited beside the winner's (a rule has none)."""
        return (self.ruling.fact,) if self.ruling else ()

    def as_dict(self) -> dict[str, object]:
        return {"group": self.group, "pattern": self.pattern, "winners": list(self.winners),
                "overruled": list(self.overruled)}


@dataclass(frozen=True)
class Note:
    """What a settlement did to the register, for the position's ``explain``."""

    key: str
    rule: str
    facts: tuple[str, ...]


@dataclass(kw_only=True)
class RestatedFact(Fact):
    """A losing source's fact as the winner's word restates it; cited as the source told it."""

    told: Fact

    def cite(self) -> str:
        return self.told.cite()


def show(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return f"{describe(text)} ({text})" if text.isdigit() and len(text) == 2 else text


# -- detentions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class DetentionDisagreement:
    """Two sources' own versions of one detention, and the fields they tell differently."""

    a: str
    ea: Detention
    b: str
    eb: Detention
    fields: tuple[tuple[str, object, object], ...]  # (field, a's value, b's value)

    def questions(self) -> tuple[Question, ...]:
        """One per differing field, as its exception asks it."""
        return tuple(Question(f"detention.{name}", None, tuple(sorted((
            (self.a, _told(va), self.ea.start.isoformat()),
            (self.b, _told(vb), self.eb.start.isoformat())))))
            for name, va, vb in self.fields)


def _told(value: object) -> str:
    """A value as an exception's detail holds it."""
    if isinstance(value, bool):
        return JOINT_LABEL[value]
    return value.isoformat() if isinstance(value, date) else str(value)


def detention_disagreements(facts: Sequence[Fact], today: date) -> list[DetentionDisagreement]:
    """Each source's detentions folded on their own and compared with the other sources'
    that overlap them in time. Silence is not disagreement: a source that does not know an
    end (or an ICB) does not disagree with one that does."""
    by_source: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        if isinstance(fact.command, _DETENTION_COMMANDS):
            by_source[fact.source].append(fact)
    episodes = {source: build_detentions(own, today)[0] for source, own in by_source.items()}
    found = []
    for a, b in combinations(sorted(episodes), 2):
        for ea in episodes[a]:
            for eb in episodes[b]:
                if _overlap(ea, eb, today):
                    fields = _differing(ea, eb)
                    if fields:
                        found.append(DetentionDisagreement(a, ea, b, eb, fields))
    return found


def _overlap(a: Detention, b: Detention, today: date) -> bool:
    return a.start <= (b.end or today) and b.start <= (a.end or today)


def _starts_agree(a: Detention, b: Detention) -> bool:
    """Same start, or one source tells the detention from a regrade the other also tells
    (a council that only hears of the s3 reports it from the s2 → s3 regrade date)."""
    return (a.start == b.start or (b.sections[0][0], b.start) in a.sections
            or (a.sections[0][0], a.start) in b.sections)


def _differing(ea: Detention, eb: Detention) -> tuple[tuple[str, object, object], ...]:
    fields: list[tuple[str, object, object]] = []
    if not _starts_agree(ea, eb):
        fields.append(("start", ea.start, eb.start))
    if ea.section != eb.section:
        fields.append(("section", ea.section, eb.section))
    if ea.end and eb.end and ea.end != eb.end:
        fields.append(("end", ea.end, eb.end))
    if ea.responsible_icb and eb.responsible_icb and ea.responsible_icb != eb.responsible_icb:
        fields.append(("responsible_icb", ea.responsible_icb, eb.responsible_icb))
    return tuple(fields)


def settle_detention(precedence: Precedence,
                     disagreement: DetentionDisagreement) -> Settlement | None:
    """One winner for the pair: every field of the detention group follows the same rule (or
    the same owner's decision on any one of them)."""
    return precedence.settle("detention", {disagreement.a: ("a",), disagreement.b: ("b",)},
                             disagreement.questions())


def restate_detentions(facts: Sequence[Fact], today: date,
                       precedence: Precedence) -> tuple[list[Fact], list[Note]]:
    """The facts the position folds, with each settled loser's version of a detention restated
    as the winner's: same start, opening section, ref and provider, so the fold merges them
    into the winner's detention. The loser keeps filling what the winner is silent on (an end,
    an ICB); where it said otherwise (its regrades on a section, its leaving on an end) its
    facts are set aside."""
    if not precedence.settles("detention"):
        return list(facts), []
    replaced: dict[int, Fact | None] = {}  # id(fact) → its restatement (None: set aside)
    notes: list[Note] = []
    restated_episodes: set[int] = set()
    for disagreement in detention_disagreements(facts, today):
        settled = settle_detention(precedence, disagreement)
        if settled is None:
            continue
        winner_is_a = settled.winners == (disagreement.a,)
        ew, el = ((disagreement.ea, disagreement.eb) if winner_is_a
                  else (disagreement.eb, disagreement.ea))
        loser = disagreement.b if winner_is_a else disagreement.a
        fields = {name: (va, vb) if winner_is_a else (vb, va)
                  for name, va, vb in disagreement.fields}
        notes += [Note(f"detentions[{ew.ref}].{name}",
                       f"{settled.rule}: {DETENTION_FIELD_LABEL[name]} {show(won)}, not "
                       f"{loser}'s {show(lost)}",
                       (*(f.cite() for f in ew.facts), *settled.cites))
                  for name, (won, lost) in fields.items()]
        if id(el) in restated_episodes:
            continue  # already restated as another winner's detention
        restated_episodes.add(id(el))
        replaced.update(_restate(el, ew, set(fields), facts, loser))
    kept: list[Fact] = []
    for fact in facts:
        if id(fact) not in replaced:
            kept.append(fact)
        elif (restated := replaced[id(fact)]) is not None:
            kept.append(restated)
    return kept, notes


def _restate(el: Detention, ew: Detention, fields: set[str], facts: Sequence[Fact],
             loser: str) -> dict[int, Fact | None]:
    out: dict[int, Fact | None] = {}
    opening = ew.facts[0].command
    ref = opening.episode_ref if isinstance(opening, RecordDetentionStarted) else None
    ref = ref or ew.ref
    for fact in el.facts:
        cmd = fact.command
        if isinstance(cmd, RecordDetentionStarted):
            out[id(fact)] = _restated(fact, replace(
                cmd, start=ew.start, section=ew.sections[0][0], episode_ref=ref,
                provider_ods=ew.provider_ods or cmd.provider_ods,
                responsible_icb=ew.responsible_icb or cmd.responsible_icb,
                end=None if "end" in fields else cmd.end))
        elif isinstance(cmd, RecordLegalStatusChanged) and "section" in fields and (
                cmd.event in ("section-change", "transfer")):
            out[id(fact)] = None  # the winner's section history stands
        elif "end" in fields and _tells_leaving(cmd, el.end):
            out[id(fact)] = None  # the winner's leaving stands
        elif getattr(cmd, "episode_ref", None) is not None:
            out[id(fact)] = _restated(fact, replace(cmd, episode_ref=ref))  # type: ignore[call-arg]
    if "end" in fields:
        # A leaving told beside the detention record (a council's) never joins the loser's
        # episode, which its own end already closed: set aside every one on that date.
        for fact in facts:
            if fact.source == loser and id(fact) not in out and isinstance(
                    fact.command, RecordLeftHospital) and fact.command.date == el.end:
                out[id(fact)] = None
    return out


def _tells_leaving(cmd: object, day: date | None) -> bool:
    if isinstance(cmd, RecordLeftHospital):
        return cmd.date == day
    return (isinstance(cmd, RecordLegalStatusChanged) and cmd.event in _LEAVING_EVENTS
            and cmd.date == day)


def _restated(fact: Fact, command: object) -> RestatedFact:
    return RestatedFact(id=fact.id, seq=fact.seq, command=command,  # type: ignore[arg-type]
                        retracted_by=fact.retracted_by, told=fact)


# -- values told from a date: ordinary residence, GP practice, named practitioner -----------

@dataclass(frozen=True)
class _DatedField:
    command: type
    field: str  # the command's attribute holding the value
    label: str  # for summaries: "council of ordinary residence"
    register_field: str  # what it sets, for the exception's detail


DATED_FIELDS: dict[str, _DatedField] = {
    "ordinary_residence": _DatedField(RecordOrdinaryResidenceChanged, "council_code",
                                      "council of ordinary residence",
                                      "ordinary_residence.council_code"),
    "gp_practice": _DatedField(RecordGpRegistration, "gp_practice_ods", "GP practice",
                               "gp_registration.gp_practice_ods"),
    "named_practitioner": _DatedField(SetNamedPractitioner, "name", "named practitioner",
                                      "entitlement.named_practitioner"),
}


@dataclass(frozen=True)
class DatedDisagreement:
    """Two or more sources telling different values of one field from one date."""

    group: str
    day: date
    told: dict[str, dict[str, list[Fact]]]  # value → source → facts

    def by_source(self) -> dict[str, set[str]]:
        said: dict[str, set[str]] = defaultdict(set)
        for value, sources in self.told.items():
            for src in sources:
                said[src].add(value)
        return said

    def questions(self) -> tuple[Question, ...]:
        return (Question(DATED_FIELDS[self.group].register_field, self.day.isoformat(),
                         tuple(sorted((src, value, None) for value, sources in self.told.items()
                                      for src in sources))),)


def dated_disagreements(group: str, facts: Sequence[Fact]) -> list[DatedDisagreement]:
    spec = DATED_FIELDS[group]
    by_day: dict[date, dict[str, dict[str, list[Fact]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for fact in facts:
        if isinstance(fact.command, spec.command):
            by_day[fact_day(fact)][getattr(fact.command, spec.field)][fact.source].append(fact)
    found = []
    for day, values in sorted(by_day.items()):
        if len(values) < 2 or len({s for srcs in values.values() for s in srcs}) < 2:
            continue  # one source correcting itself is not a disagreement between sources
        found.append(DatedDisagreement(group, day, {v: dict(s) for v, s in values.items()}))
    return found


def settle_dated(group: str, facts: Sequence[Fact],
                 precedence: Precedence) -> tuple[set[int], list[Note]]:
    """The facts of ``group`` a settlement sets aside (by id), and what it decided."""
    if not precedence.settles(group):
        return set(), []
    overruled: set[int] = set()
    notes = []
    for disagreement in dated_disagreements(group, facts):
        settled = precedence.settle(group, disagreement.by_source(), disagreement.questions())
        if settled is None:
            continue
        winning = disagreement.told[str(settled.value)]
        overruled |= {id(f) for value, sources in disagreement.told.items()
                      if value != settled.value for fs in sources.values() for f in fs}
        notes.append(Note(f"{group}[{disagreement.day.isoformat()}]",
                          f"{settled.rule}: {settled.value} from {disagreement.day.isoformat()}",
                          (*(f.cite() for src in settled.winners
                             for f in winning.get(src, [])), *settled.cites)))
    return overruled, notes


# -- the aftercare plan and reviews, within one aftercare period ----------------------------
#
# The person's history is split into aftercare periods at the detentions the register folds
# (the position's own ``build_detentions`` episodes are passed in, so both sides split alike).
# A period opens at a detention's start rather than at leaving hospital, because planning
# starts at admission and a plan is often agreed before discharge (joint policy 19.2; MoU 5);
# it runs to the start of the next detention that begins after the person left hospital from
# the ones before it, as far as any source tells. A detention starting while that stay is open
# (another source's version of it, an s3 episode after an s2 one) joins the stay.
#
# Plan: in one period, each source's first plan. Two sources whose first plans differ, neither
# also telling a plan on the other's date, disagree on the date the plan was agreed (a source
# that tells the other's date as well only knows of one more plan: silence, not disagreement).
# Review: a review one source tells and another source's review of the same kind (scheduled,
# unscheduled) within ``REVIEW_WINDOW_DAYS`` of it, on another date, neither source telling a
# review on the other's date, are one review told on two dates (a scheduled review and an
# unscheduled one, say on a move of council area, may well be two); two sources telling a
# review on one date, one only as joint and the other only as single-agency, disagree on
# whether it was joint (an ending needs a joint review, joint policy 16.1, 16.3). Each
# disagreement is between two sources.

REVIEW_WINDOW_DAYS = 28
JOINT_LABEL = {True: "joint", False: "single-agency"}
_AFTERCARE_VERB = {("aftercare_plan", "date"): "agreed", ("review", "date"): "held"}


def aftercare_periods(detentions: Sequence[Detention]) -> list[Detention]:
    """The detentions that open an aftercare period, in date order."""
    openers: list[Detention] = []
    stay_until: date | None = None  # latest end any source tells of the open stay; None: none
    for ep in sorted(detentions, key=lambda e: (e.start, e.ref)):
        if openers and (stay_until is None or ep.start <= stay_until):
            if ep.end is not None:  # one version's end is the stay's; silence moves nothing
                stay_until = ep.end if stay_until is None else max(stay_until, ep.end)
            continue
        openers.append(ep)
        stay_until = ep.end
    return openers


@dataclass(frozen=True)
class AftercareDisagreement:
    """Two sources telling the plan of one period, or one review, differently."""

    group: str  # the precedence group: "aftercare_plan" or "review"
    field: str  # "date" (the plan agreed, the review held) or "joint" (whether a review was)
    opener: Detention | None  # the detention that opened the period; None: before any
    a: str
    va: date | bool
    fa: tuple[Fact, ...]  # a's facts telling va
    b: str
    vb: date | bool
    fb: tuple[Fact, ...]
    day: date | None = None  # for "joint": the date of the review both tell

    def by_source(self) -> dict[str, set[Hashable]]:
        return {self.a: {self.va}, self.b: {self.vb}}

    def questions(self) -> tuple[Question, ...]:
        return (Question(_AFTERCARE_QUESTION_FIELD[(self.group, self.field)],
                         self.day.isoformat() if self.day else None,
                         tuple(sorted(((self.a, _told(self.va), None),
                                       (self.b, _told(self.vb), None))))),)

    def key(self, value: date | bool) -> str:
        """Where the position's explain records a settlement choosing ``value``."""
        if self.field == "joint":
            return f"review[{_iso(self.day)}].joint"
        return f"{self.group}[{_iso(value)}]"

    def decided(self, won: date | bool, loser: str, lost: date | bool) -> str:
        """What a settlement decided, for the explain: ``held 2026-05-01, not council's …``."""
        if self.field == "joint":
            return (f"the review of {_iso(self.day)} was {JOINT_LABEL[bool(won)]}, not "
                    f"{loser}'s {JOINT_LABEL[bool(lost)]}")
        verb = _AFTERCARE_VERB[(self.group, self.field)]
        return f"{verb} {_iso(won)}, not {loser}'s {_iso(lost)}"


def _iso(value: date | bool | None) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def aftercare_disagreements(facts: Sequence[Fact],
                            detentions: Sequence[Detention]) -> list[AftercareDisagreement]:
    """Every pair of sources telling a period's plan or a review differently (see above)."""
    openers = aftercare_periods(detentions)
    found: list[AftercareDisagreement] = []
    plans = _told_by_period(facts, RecordAftercarePlanAgreed, openers)
    for period, told in sorted(plans.items()):
        opener = openers[period - 1] if period else None
        for a, b in combinations(sorted(told), 2):
            da, db = told[a], told[b]
            first_a, first_b = min(da), min(db)
            if first_a != first_b and first_a not in db and first_b not in da:
                found.append(AftercareDisagreement(
                    "aftercare_plan", "date", opener, a, first_a, tuple(da[first_a]),
                    b, first_b, tuple(db[first_b])))
    reviews = _told_by_period(facts, RecordReviewCompleted, openers)
    for period, told in sorted(reviews.items()):
        opener = openers[period - 1] if period else None
        for a, b in combinations(sorted(told), 2):
            ra, rb = told[a], told[b]
            found += [AftercareDisagreement("review", "date", opener, a, x, tuple(ra[x]),
                                            b, y, tuple(rb[y]))
                      for x in sorted(ra.keys() - rb.keys())
                      for y in sorted(rb.keys() - ra.keys())
                      if abs((x - y).days) <= REVIEW_WINDOW_DAYS
                      and _kinds(ra[x]) & _kinds(rb[y])]
            for day in sorted(ra.keys() & rb.keys()):
                # A source that did not say whether it was joint is silent, not disagreeing.
                ja = {_joint(f) for f in ra[day]} - {None}
                jb = {_joint(f) for f in rb[day]} - {None}
                if ja and jb and ja.isdisjoint(jb):  # each tells one answer, not the other's
                    [va], [vb] = ja, jb
                    found.append(AftercareDisagreement("review", "joint", opener, a, va,
                                                       tuple(ra[day]), b, vb, tuple(rb[day]),
                                                       day=day))
    return found


def _told_by_period(facts: Sequence[Fact], command: type,
                    openers: Sequence[Detention]) -> dict[int, dict[str, dict[date, list[Fact]]]]:
    """Period (0: before any detention, n: from the n-th opener) → source → date → facts."""
    starts = [ep.start for ep in openers]
    told: dict[int, dict[str, dict[date, list[Fact]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for fact in facts:
        if isinstance(fact.command, command):
            day = fact_day(fact)
            told[bisect_right(starts, day)][fact.source][day].append(fact)
    return told


def _kinds(facts: Sequence[Fact]) -> set[str]:
    return {f.command.review_kind for f in facts if isinstance(f.command, RecordReviewCompleted)}


def _joint(fact: Fact) -> bool | None:
    return fact.command.joint if isinstance(fact.command, RecordReviewCompleted) else None


def settle_aftercare(facts: Sequence[Fact], detentions: Sequence[Detention],
                     precedence: Precedence) -> tuple[set[int], list[Note]]:
    """The plan and review facts a settlement sets aside (by id): the losing source's plan or
    review on its date, or its word on whether a review was joint; and what it decided."""
    if not (precedence.settles("aftercare_plan") or precedence.settles("review")):
        return set(), []
    overruled: set[int] = set()
    notes = []
    for d in aftercare_disagreements(facts, detentions):
        settled = precedence.settle(d.group, d.by_source(), d.questions())
        if settled is None:
            continue
        won, won_facts, loser, lost, lost_facts = (
            (d.va, d.fa, d.b, d.vb, d.fb) if settled.winners == (d.a,)
            else (d.vb, d.fb, d.a, d.va, d.fa))
        overruled |= {id(f) for f in lost_facts}
        notes.append(Note(d.key(won), f"{settled.rule}: {d.decided(won, loser, lost)}",
                          (*(f.cite() for f in won_facts), *settled.cites)))
    return overruled, notes


# -- death -------------------------------------------------------------------------------------

def deaths_told(facts: Sequence[Fact]) -> dict[str, dict[date, list[Fact]]]:
    """Source → date of death → the facts telling it."""
    deaths: dict[str, dict[date, list[Fact]]] = defaultdict(lambda: defaultdict(list))
    for fact in facts:
        if fact.command.person.death_date is not None:
            deaths[fact.source][fact.command.person.death_date].append(fact)
    return {src: dict(days) for src, days in deaths.items()}


def death_questions(told: Mapping[str, Mapping[date, object]]) -> tuple[Question, ...]:
    return (Question(DEATH_FIELD, None, tuple(sorted(
        (src, day.isoformat(), None) for src, days in told.items() for day in days))),)


def settle_death(facts: Sequence[Fact], precedence: Precedence) -> Note | None:
    """Which date of death a rule chose when sources disagree (recorded, not applied: the
    register's date of death is the person's latest demographics)."""
    if not precedence.settles("death"):
        return None
    told = deaths_told(facts)
    if len({day for days in told.values() for day in days}) < 2:
        return None
    settled = precedence.settle("death", told, death_questions(told))
    if settled is None:
        return None
    day: date = settled.value  # type: ignore[assignment]
    return Note("person.death_date", f"{settled.rule}: {day.isoformat()}",
                (*(f.cite() for src in settled.winners for f in told[src].get(day, [])),
                 *settled.cites))
