"""Deterministic synthetic population: invented people and the messages their stories send.

Used by the tests, the benchmark and ``s117hub demo``. Every value is invented: NHS numbers are
in the 999 test range (never issued), names come from short lists of common English names, and
one seed always gives the same people, commands and order (a seeded ``random.Random`` per
person, never the global one). Stories keep their dates consistent so every command applies
cleanly, yet the register still meets what it must find: late and missing reviews, one-sided
endings, charges under s117, children detained 12+ weeks with or without the s85 notice,
moves between council areas before a new detention.

A person without an NHS number is known to each source only by that source's local id, so
the register holds one record per source for them until identity matching links the two.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .domain import nhs_number
from .domain.commands import (
    Command,
    PersonRef,
    Provenance,
    RecordAftercarePlanAgreed,
    RecordChildNotification,
    RecordDetentionStarted,
    RecordGpRegistration,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordOrdinaryResidenceChanged,
    RecordPersonDetails,
    RecordReviewCompleted,
    RecordS117Confirmed,
    RecordS117Ended,
    RecordServiceCharged,
    SetNamedPractitioner,
    Signoff,
)
from .domain.rules.reviews import add_months


@dataclass(frozen=True)
class Area:
    council_code: str
    name: str
    postcode_areas: tuple[str, ...]
    icb_code: str
    practice_letter: str  # ODS practice codes start with the region's letter (M85001)
    weight: int


AREAS: tuple[Area, ...] = (
    Area("E10000034", "Worcestershire", ("WR", "DY"), "QGH", "M", 30),
    Area("E06000019", "Herefordshire", ("HR",), "QGH", "M", 10),
    Area("E08000025", "Birmingham", ("B",), "QHL", "M", 30),
    Area("E10000031", "Warwickshire", ("CV",), "QWU", "M", 15),
    Area("E10000003", "Cambridgeshire", ("CB", "PE"), "QUE", "D", 15),
)
PROVIDERS: tuple[str, ...] = ("R1A", "RXT", "RRE")

GIVEN_FEMALE = ("Olivia", "Amelia", "Emily", "Sophie", "Jessica", "Grace", "Lucy", "Hannah",
                "Charlotte", "Chloe", "Emma", "Sarah", "Laura", "Rebecca", "Rachel", "Claire",
                "Helen", "Karen", "Susan", "Margaret", "Joanne", "Nicola", "Amy", "Megan")
GIVEN_MALE = ("Oliver", "Jack", "Harry", "George", "Thomas", "James", "William", "Daniel",
              "Joshua", "Samuel", "Matthew", "Michael", "David", "Andrew", "Paul", "Mark",
              "Richard", "Peter", "Stephen", "Robert", "Christopher", "Liam", "Ryan", "Adam")
FAMILY = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
          "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
          "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan", "Lewis", "Harris", "Martin",
          "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker",
          "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis",
          "Parker", "Bennett", "Price", "Griffiths", "Young", "Turner", "Edwards", "Hughes")
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXY"  # postcode units never use C I K M O V

# Admission scenario -> (MHSDS code at admission, weight). s2 is the commonest admission, and
# many s2 are regraded to s3 (joint policy 3.3).
ADMISSION_MIX: dict[str, tuple[str, int]] = {
    "s2": ("02", 28), "s2-regraded-s3": ("02", 20), "s3": ("03", 18), "s37": ("10", 6),
    "s37-41": ("09", 4), "s47": ("16", 2), "s47-49": ("15", 1), "s48": ("18", 2),
    "s48-49": ("17", 1), "s45a": ("37", 1), "s136": ("20", 9), "informal": ("01", 8),
}
RESTRICTED = frozenset({"09", "15", "17", "37"})
FORENSIC = RESTRICTED | {"10", "16", "18"}

FEATURES: frozenset[str] = frozenset({
    *ADMISSION_MIX, "no-nhs-number", "left-hospital", "s17-leave", "informal-after-detention",
    "cto", "cto-ended", "cto-revoked", "conditional-discharge", "re-detention",
    "moved-council", "aftercare-plan", "named-practitioner", "review", "review-late",
    "review-missing", "unscheduled-review", "council-confirmation", "joint-ending",
    "one-sided-ending", "ending-on-cto", "charge-s117", "charge-care-act", "child-12-weeks",
    "child-s85-notified", "child-not-notified",
})
"""Every label a story can carry (``PersonStory.features``)."""

DETENTION_COMMANDS = (RecordDetentionStarted, RecordLegalStatusChanged, RecordLeftHospital)
PRE_DETENTION_DAYS = 120  # residence, GP and demographics facts come at most this early


@dataclass(frozen=True)
class PersonStory:
    serial: int
    nhs_number: str | None
    local_ids: dict[str, str]  # source -> that source's id for the person
    given_name: str
    family_name: str
    birth_date: date
    sex: str
    postcode: str
    gp_practice_ods: str
    council_code: str
    icb_code: str
    first_admission: date
    commands: tuple[Command, ...]
    features: frozenset[str]


@dataclass(frozen=True)
class _Event:
    day: date
    source: str | None  # None: a label only (a duty missed), no message
    cls: type[Command] | None
    fields: dict[str, Any]
    person: PersonRef | None
    labels: tuple[str, ...]


def _roles(sources: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    trusts = tuple(s for s in sources if "trust" in s) or tuple(sources[:1])
    councils = tuple(s for s in sources if "council" in s) or tuple(sources[-1:])
    return trusts, councils


class _StoryBuilder:
    def __init__(self, serial: int, anchor: date, nhs: str | None, rng: random.Random,
                 sources: Sequence[str], end: date, child: bool) -> None:
        self.rng, self.end, self.serial, self.anchor, self.child = rng, end, serial, anchor, child
        trusts, councils = _roles(sources)
        self.trust = rng.choice(trusts)
        self.councils = councils
        self.council = rng.choice(councils)
        self.provider = PROVIDERS[trusts.index(self.trust) % len(PROVIDERS)]
        self.nhs = nhs
        self.sex = "female" if rng.random() < 0.45 else "male"
        self.given = rng.choice(GIVEN_FEMALE if self.sex == "female" else GIVEN_MALE)
        self.family = rng.choice(FAMILY)
        age = rng.randint(12, 16) if child else min(rng.randint(18, 60) + rng.randint(0, 25), 85)
        self.birth = anchor - timedelta(days=age * 365 + rng.randint(30, 330))
        self.area = self._pick_area()
        self.postcode, self.gp = "", ""
        self._new_address()
        self.home = (self.area, self.postcode, self.gp)
        others = [s for s in sources if s not in trusts]
        self.local_ids = {src: (f"RX{trusts.index(src) + 1}" if src in trusts else
                                f"LA{others.index(src) + 1}") + f"-{serial:06d}"
                          for src in sources}
        self.events: list[_Event] = []
        self.refs: dict[str, PersonRef] = {}
        self.episodes = 0
        self.cto_open = False
        self.labels: set[str] = set() if nhs else {"no-nhs-number"}

    # -- helpers ---------------------------------------------------------------------------

    def days(self, low: int, high: int) -> timedelta:
        return timedelta(days=self.rng.randint(low, high))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def _pick_area(self, avoid: Area | None = None) -> Area:
        options = [a for a in AREAS if a is not avoid]
        return self.rng.choices(options, weights=[a.weight for a in options])[0]

    def _new_address(self) -> None:
        rng = self.rng
        self.postcode = (f"{rng.choice(self.area.postcode_areas)}{rng.randint(1, 15)} "
                         f"{rng.randint(1, 9)}{rng.choice(_UNIT_LETTERS)}"
                         f"{rng.choice(_UNIT_LETTERS)}")
        self.gp = f"{self.area.practice_letter}{rng.randint(81000, 92999)}"
        self.refs = {}

    def ref(self, role: str) -> PersonRef:
        """How the trust or the council names the person today (cached per address)."""
        if role not in self.refs:
            source = self.trust if role == "trust" else self.council
            self.refs[role] = PersonRef(
                nhs_number=self.nhs, nhs_number_verified=True if self.nhs else None,
                local_id=self.local_ids[source], family_name=self.family,
                given_name=self.given, birth_date=self.birth, sex=self.sex,
                postcode=self.postcode,
                gp_practice_ods=self.gp if role == "trust" else None)
        return self.refs[role]

    def add(self, day: date, who: str, cls: type[Command], /, *labels: str,
            **fields: Any) -> None:
        source = self.trust if who == "trust" else self.council
        self.events.append(_Event(day, source, cls, fields, self.ref(who), labels))

    def mark(self, day: date, *labels: str) -> None:
        self.events.append(_Event(day, None, None, {}, None, labels))

    def status(self, day: date, ref: str, event: str, *labels: str, **fields: Any) -> None:
        self.add(day, "trust", RecordLegalStatusChanged, *labels, event=event, date=day,
                 episode_ref=ref, **fields)

    def left(self, day: date, ref: str | None, reason: str = "left-hospital") -> None:
        self.add(day, "trust", RecordLeftHospital, "left-hospital", date=day, episode_ref=ref,
                 reason=reason)

    def a_name(self) -> str:
        return f"{self.rng.choice(GIVEN_FEMALE + GIVEN_MALE)} {self.rng.choice(FAMILY)}"

    # -- the story -------------------------------------------------------------------------

    def build(self) -> None:
        a = self.anchor
        day = a - self.days(60, PRE_DETENTION_DAYS)
        self.add(day, "trust", RecordPersonDetails, as_of=day)
        day = a - self.days(7, PRE_DETENTION_DAYS)
        self.add(day, "council", RecordOrdinaryResidenceChanged,
                 council_code=self.area.council_code, date=day)
        day = a - self.days(7, PRE_DETENTION_DAYS)
        self.add(day, "trust", RecordGpRegistration, gp_practice_ods=self.gp,
                 icb_code=self.area.icb_code, date=day)
        kind = (self.rng.choice(("s3", "s2-regraded-s3")) if self.child
                else self._pick_kind())
        admit = a
        for episode in range(3):
            left, entitling, free_from = self._episode(admit, kind, self.child and not episode)
            readmit = None
            if free_from and self.chance(0.2):
                readmit = free_from + self.days(45, 540)
                readmit = readmit if readmit < self.end else None
            if entitling:
                self._aftercare(admit, left, readmit or self.end, free_from)
            if readmit is None:
                return
            if self.chance(0.4):
                self._move(free_from or left, readmit)
            kind = self._pick_kind()
            admit = readmit

    def _pick_kind(self) -> str:
        kinds = list(ADMISSION_MIX)
        return self.rng.choices(kinds, weights=[ADMISSION_MIX[k][1] for k in kinds])[0]

    def _episode(self, admit: date, kind: str, child: bool
                 ) -> tuple[date, bool, date | None]:
        """One stay in hospital: (left hospital, entitling, free to be re-detained from)."""
        self.episodes += 1
        ref = f"{self.local_ids[self.trust]}-V{self.episodes}"
        code = ADMISSION_MIX[kind][0]
        labels = ["re-detention"] if self.episodes > 1 else []
        labels.append("s2" if kind == "s2-regraded-s3" else kind)
        self.add(admit, "trust", RecordDetentionStarted, *labels, section=code, start=admit,
                 episode_ref=ref, provider_ods=self.provider,
                 responsible_icb=self.home[0].icb_code if self.chance(0.5) else None)
        day = admit
        if kind == "informal":
            left = admit + self.days(3, 60)
            self.left(left, ref)
            return left, False, left
        if kind == "s136":
            day = admit + self.days(0, 1)
            if self.chance(0.5):
                self.status(day, ref, "detention-ended")
                self.left(day, ref)
                return day, False, day
            kind = "s2-regraded-s3" if self.chance(0.4) else "s2"
            self.status(day, ref, "section-change", "s2", section="02")
        if kind in ("s2", "s2-regraded-s3"):
            if kind == "s2":
                day += self.days(5, 27)
                self.status(day, ref, "detention-ended")
                left = day + (self.days(1, 21) if self.chance(0.3) else timedelta(0))
                self.left(left, ref)
                return left, False, left
            day += self.days(7, 27)
            self.status(day, ref, "section-change", "s2-regraded-s3", section="03")
            code = "03"
        stay = (self.days(120, 720) if code in FORENSIC else self.days(21, 240))
        left = max(day + stay, admit + self.days(91, 200)) if child else day + stay
        if child:
            self.mark(admit + timedelta(weeks=12), "child-12-weeks")
            if self.chance(0.6):
                notice = admit + self.days(84, 95)
                self.add(notice, "council", RecordChildNotification, "child-s85-notified",
                         date=notice)
            else:
                self.mark(admit + timedelta(weeks=12), "child-not-notified")
        if self.chance(0.4) and (left - day).days > 10:
            leave = left - self.days(7, min(45, (left - day).days - 3))
            self.status(leave, ref, "s17-leave-start", "s17-leave")
            self.status(min(leave + self.days(1, 5), left), ref, "s17-leave-end")
        if code in RESTRICTED and self.chance(0.5):
            self.status(left, ref, "conditional-discharge-start", "conditional-discharge")
            self.left(left, ref, "conditional-discharge")
            if self.chance(0.5):
                until = left + self.days(365, 900)
                self.status(until, ref, "conditional-discharge-end")
                return left, True, until
            return left, True, None
        if code in ("03", "10") and self.chance(0.22):
            self.status(left, ref, "cto-start", "cto")
            self.left(left, ref, "cto")
            outcome = self.rng.random()
            if outcome < 0.1:
                revoked = left + self.days(30, 200)
                self.status(revoked, ref, "cto-revoked", "cto-revoked")
                again = revoked + self.days(14, 90)
                self.left(again, None)
                return left, True, again
            if outcome < 0.8:
                until = left + self.days(180, 540)
                self.status(until, ref, "cto-end", "cto-ended", end_reason="discharged")
                return left, True, until
            self.cto_open = True
            return left, True, None
        if self.chance(0.15):
            self.status(left - self.days(3, 20), ref, "detention-ended",
                        "informal-after-detention")
        self.left(left, ref)
        return left, True, left

    def _aftercare(self, admit: date, left: date, horizon: date, free_from: date | None
                   ) -> None:
        """Plan, practitioner, reviews, confirmation, charges and endings after leaving."""
        if self.chance(0.85):
            day = max(admit, left - self.days(0, 14))
            self.add(day, self.rng.choice(("trust", "council")), RecordAftercarePlanAgreed,
                     "aftercare-plan", date=day)
        if self.chance(0.9):
            day = max(admit, left - self.days(0, 10))
            self.add(day, "trust", SetNamedPractitioner, "named-practitioner",
                     name=self.a_name(), date=day,
                     role=self.rng.choice(("care coordinator", "social worker",
                                           "community psychiatric nurse")))
        if self.chance(0.08):
            self.add(left, "council", RecordS117Confirmed, "council-confirmation", start=left)
        for label, under, chance in (("charge-s117", True, 0.05),
                                     ("charge-care-act", False, 0.05)):
            if self.chance(chance):
                day = left + self.days(30, 300)
                if day < horizon:
                    self.add(day, "council", RecordServiceCharged, label, date=day,
                             service=self.rng.choice(("home care", "supported accommodation",
                                                      "day centre", "personal care")),
                             under_s117=under, amount=f"{self.rng.randint(40, 900)}.00")
        stop = self._ending(left, horizon, free_from)
        self._reviews(left, min(stop or horizon, horizon))

    def _ending(self, left: date, horizon: date, free_from: date | None) -> date | None:
        """Maybe an ending: lawful and joint, one-sided, or on a CTO. Returns where reviews
        stop (the joint review before a lawful ending)."""
        draw = self.rng.random()
        on_cto = self.cto_open
        day = max(left, free_from or left) + (self.days(120, 400) if on_cto
                                               else self.days(180, 600))
        if day >= horizon:
            return None
        council = Signoff(by=f"council: {self.a_name()}", date=day - self.days(0, 5))
        icb = Signoff(by=f"icb: {self.a_name()}", date=day - self.days(0, 5))
        if on_cto:
            if draw < 0.2:
                self.add(day, "council", RecordS117Ended, "ending-on-cto", date=day,
                         reason="stable in the community", council_signoff=council,
                         icb_signoff=icb)
        elif draw < 0.2 and free_from is not None:
            review = day - self.days(0, 10)
            self.add(review, "council", RecordReviewCompleted, "review", date=review,
                     review_kind="unscheduled", joint=True)
            self.add(day, "council", RecordS117Ended, "joint-ending", date=day,
                     reason="needs met: joint review agreed s117 services no longer needed",
                     council_signoff=council, icb_signoff=icb, grounds=("needs-met",))
            return review
        elif draw < 0.26:
            self.add(day, "council", RecordS117Ended, "one-sided-ending", date=day,
                     reason="person no longer engaging with services",
                     council_signoff=council, icb_signoff=None, grounds=("disengaged",))
        return None

    def _reviews(self, left: date, stop: date) -> None:
        """First review within 3 months, then yearly; some late, some never held."""
        due = add_months(left, 3)
        draw = self.rng.random()
        if draw < 0.15:
            if due < stop:
                self.mark(due, "review-missing")
            return
        day = due + self.days(7, 90) if draw < 0.3 else left + self.days(28, 88)
        late = draw < 0.3
        while day < stop:
            self.add(day, self.rng.choice(("trust", "council")), RecordReviewCompleted,
                     "review", *(("review-late",) if late else ()), date=day,
                     joint=self.chance(0.5))
            due = add_months(day, 12)
            draw = self.rng.random()
            if draw < 0.05:
                if due < stop:
                    self.mark(due, "review-missing")
                return
            late = draw < 0.2
            day = due + self.days(7, 60) if late else day + self.days(300, 364)

    def _move(self, after: date, readmit: date) -> None:
        """Move to another council area (and GP) before the next detention."""
        if (readmit - after).days < 20:
            return
        day = after + self.days(1, (readmit - after).days - 10)
        self.area = self._pick_area(avoid=self.area)
        self._new_address()
        others = [c for c in self.councils if c != self.council]
        self.council = self.rng.choice(others) if others else self.council
        self.add(day, "council", RecordOrdinaryResidenceChanged, "moved-council",
                 council_code=self.area.council_code, date=day)
        self.add(day, "trust", RecordPersonDetails, as_of=day)
        self.add(day + self.days(0, 5), "trust", RecordGpRegistration,
                 gp_practice_ods=self.gp, icb_code=self.area.icb_code, date=day)
        review = day + self.days(2, 8)
        if review < readmit:
            self.add(review, "council", RecordReviewCompleted, "unscheduled-review",
                     date=review, review_kind="unscheduled")

    # -- messages --------------------------------------------------------------------------

    def commands(self, refs: Callable[[str], str]) -> tuple[tuple[Command, ...], set[str]]:
        """Sort the events, drop those after the window, give each its provenance."""
        out: list[Command] = []
        labels = set(self.labels)
        previous = datetime.min.replace(tzinfo=UTC)
        for ev in sorted(self.events, key=lambda e: e.day):
            if ev.day > self.end:
                continue
            labels.update(ev.labels)
            if ev.cls is None or ev.source is None:
                continue
            delay = self.rng.choices((0, 1, 2, 3), weights=(75, 20, 3, 2))[0]
            received = datetime.combine(ev.day + timedelta(days=delay),
                                        time(self.rng.randint(7, 18), self.rng.randint(0, 59)),
                                        tzinfo=UTC)
            received = max(received, previous + timedelta(minutes=1))
            previous = received
            prov = Provenance(source=ev.source, source_ref=refs(ev.source),
                              received_at=received)
            out.append(ev.cls(person=ev.person, provenance=prov, **ev.fields))
        return tuple(out), labels


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(map(str, ("s117-synthetic", seed, *parts))))  # noqa: S311


def generate_population(
    n_people: int, seed: int, start: date = date(2024, 1, 1), end: date = date(2026, 11, 1),
    sources: Sequence[str] = ("trust-a", "council-a"), *, without_nhs_share: float = 0.1,
    child_share: float = 0.04,
) -> Iterator[PersonStory]:
    """``n_people`` stories, in order of first admission; the same seed gives the same stories.

    Admissions fall between ``start`` + 121 days and ``end`` − 14 days (the residence and GP
    facts before them fall inside the window too); events after ``end`` are left out.
    """
    if (end - start).days < PRE_DETENTION_DAYS + 60:
        raise ValueError("the window must be at least 180 days long")
    if not 0 < n_people <= 400_000:
        raise ValueError("n_people must be between 1 and 400,000 (999 test-range numbers)")
    master = _rng(seed, "population")
    low = start.toordinal() + PRE_DETENTION_DAYS + 1
    high = end.toordinal() - 14
    anchors = sorted(master.randint(low, high) for _ in range(n_people))
    serial_base = master.randrange(0, 50_000)
    used: set[str] = set()
    counters = dict.fromkeys(sources, 0)

    def next_ref(source: str) -> str:
        counters[source] += 1
        return f"{source}:MSG{counters[source]:06d}"

    nhs_serial = serial_base
    for i, anchor in enumerate(anchors, start=1):
        rng = _rng(seed, "person", i)
        nhs = None
        if rng.random() >= without_nhs_share:
            while nhs is None or nhs in used:
                nhs = nhs_number.make_synthetic(nhs_serial)
                nhs_serial += 1
            used.add(nhs)
        builder = _StoryBuilder(i, date.fromordinal(anchor), nhs, rng, sources, end,
                                child=rng.random() < child_share)
        builder.build()
        commands, labels = builder.commands(next_ref)
        home, postcode, gp = builder.home
        yield PersonStory(
            serial=i, nhs_number=nhs, local_ids=builder.local_ids, given_name=builder.given,
            family_name=builder.family, birth_date=builder.birth, sex=builder.sex,
            postcode=postcode, gp_practice_ods=gp,
            council_code=home.council_code, icb_code=home.icb_code,
            first_admission=builder.anchor, commands=commands, features=frozenset(labels))


def _merged(stories: Iterator[PersonStory], keep: Callable[[Command], bool]
            ) -> Iterator[Command]:
    """Commands of all stories in order of receipt, holding only stories still unfolding."""
    heap: list[tuple[datetime, int, int, Command]] = []
    for story in stories:
        not_before = datetime.combine(story.first_admission
                                      - timedelta(days=PRE_DETENTION_DAYS), time(), tzinfo=UTC)
        while heap and heap[0][0] < not_before:
            yield heapq.heappop(heap)[3]
        for i, command in enumerate(story.commands):
            if keep(command):
                heapq.heappush(heap, (command.provenance.received_at, story.serial, i, command))
    while heap:
        yield heapq.heappop(heap)[3]


def iter_commands(n_people: int, seed: int, **options: Any) -> Iterator[Command]:
    """Every command of a population, in the order the hub would receive them."""
    return _merged(generate_population(n_people, seed, **options), lambda _c: True)


def _is_detention(command: Command) -> bool:
    return isinstance(command, DETENTION_COMMANDS)


def detention_events(n: int, seed: int, **options: Any) -> Iterator[Command]:
    """Exactly ``n`` detention, legal-status and left-hospital commands, in receipt order.

    Sizes the population so it holds at least ``n`` such events, then takes the first ``n``.
    """
    people = max(1, math.ceil(n / 3))
    while True:
        total = sum(sum(map(_is_detention, story.commands))
                    for story in generate_population(people, seed, **options))
        if total >= n:
            break
        people = math.ceil(people * n / max(total, 1) * 1.02) + 1
    return itertools.islice(_merged(generate_population(people, seed, **options),
                                    _is_detention), n)
