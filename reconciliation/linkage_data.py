"""A labelled synthetic linkage set: one population, two sources, each a noisy copy.

Every value is invented: NHS numbers in the 999 test range, names from ``names.py``, postcodes
from made-up districts. One seed gives the same people and records (one ``random.Random``,
consumed in a fixed order). What makes it hard, and why each is here:

- per-source noise: typos (insert, delete, substitute, transpose), nicknames and initials,
  given and family names swapped, a new surname, birth-date slips (one component, day/month
  transposed, year ±1), a moved postcode and new practice, missing fields, source B in capitals;
- people known to neither source by NHS number (``untraced``, default 10%: the 999 range holds
  909,091 valid numbers, so a million people need a tenth without one), plus numbers a source
  lacks or mistypes (a mistyped number fails modulus 11 and is ignored, never trusted);
- hard negatives: twins (surname, birth date, postcode, practice; a different given name),
  parents whose child has the same name and address, and the common names of the Zipf head;
- people held by only one source, who must stay unlinked.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from register_core.domain.nhs_number import check_digit

from .identity import Candidate
from .names import COMMON_SURNAMES, FEMALE_GIVEN, MALE_GIVEN, NICKNAMES, TAIL_SURNAMES

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_AREAS = ("LS", "M", "B", "S", "NE", "L", "BD", "HU", "YO", "DN", "WF", "HD", "HX", "SK", "OL",
          "BL", "WN", "PR", "BB", "LA", "SR", "DH", "TS", "DL", "NG", "DE", "LE", "CV", "ST", "WV")
_FIRST_BIRTH = date(1935, 1, 1)
_BIRTH_SPAN = (date(2008, 12, 31) - _FIRST_BIRTH).days


class Person(NamedTuple):
    nhs_number: str | None
    family_name: str
    given_name: str
    birth_date: date
    sex: str
    postcode: str
    gp_practice_ods: str


@dataclass(frozen=True)
class NoiseRates:
    """Chance, per record, of each slip. Both sources are noisy, independently."""

    nhs_missing: float = 0.01
    nhs_typo: float = 0.003
    family_typo: float = 0.03
    family_changed: float = 0.01
    given_typo: float = 0.03
    nickname: float = 0.06
    initial_only: float = 0.01
    swapped: float = 0.01
    birth_date_slip: float = 0.02
    birth_date_missing: float = 0.005
    sex_missing: float = 0.01
    sex_wrong: float = 0.002
    moved: float = 0.08  # new postcode; half of movers also change practice
    postcode_missing: float = 0.02
    gp_changed: float = 0.03
    gp_missing: float = 0.05


@dataclass(frozen=True)
class LinkageSet:
    """Two sources and the truth: ``person_a[i]`` is the person behind ``source_a[i]``."""

    people: list[Person]
    source_a: list[Candidate]
    source_b: list[Candidate]
    person_a: list[int]
    person_b: list[int]

    def true_pairs(self) -> dict[str, str]:
        """A record id -> B record id of the same person (each source holds a person once)."""
        b_of = {p: r.id for p, r in zip(self.person_b, self.source_b, strict=True)}
        return {r.id: b_of[p] for p, r in zip(self.person_a, self.source_a, strict=True)
                if p in b_of}


def _weighted(names: Sequence[str], exponent: float) -> tuple[list[str], list[float]]:
    cumulative = list(itertools.accumulate(1 / (rank + 1) ** exponent
                                           for rank in range(len(names))))
    return list(names), cumulative


def _surname_table() -> tuple[list[str], list[float]]:
    # The real head holds about a fifth of people (Smith ~1.5%); the invented tail the rest.
    head, head_cum = _weighted(COMMON_SURNAMES, 0.9)
    scale = 0.22 / head_cum[-1]
    tail_each = 0.78 / len(TAIL_SURNAMES)
    cum = [c * scale for c in head_cum]
    cum += [0.22 + tail_each * (k + 1) for k in range(len(TAIL_SURNAMES))]
    return head + list(TAIL_SURNAMES), cum


_SURNAMES = _surname_table()


def _pick(rng: random.Random, table: tuple[list[str], list[float]]) -> str:
    names, cum = table
    return names[bisect.bisect_left(cum, rng.random() * cum[-1])]


def nhs_numbers() -> Iterator[str]:
    """Every valid 999-range number in order (``make_synthetic`` repeats past serial 500,000)."""
    for stem in range(1_000_000):
        first_nine = f"999{stem:06d}"
        digit = check_digit(first_nine)
        if digit is not None:
            yield f"{first_nine}{digit}"


class _World:
    """Postcodes and practices at English densities: about 2,500 people a district, 15 a
    postcode (10 sectors of 16 units), 8,000 a practice; neighbouring districts share three."""

    def __init__(self, rng: random.Random, people: int) -> None:
        self.rng = rng
        count = max(20, people // 2500)
        self.districts = [f"{_AREAS[k % len(_AREAS)]}{k // len(_AREAS) + 1}"
                          for k in range(count)]
        codes = [f"{chr(65 + k % 26)}{81001 + k:05d}" for k in range(max(20, people // 8000))]
        self.practices = {d: [codes[(k * len(codes) // count + n) % len(codes)]
                              for n in range(3)] for k, d in enumerate(self.districts)}

    def postcode(self, district: str | None = None) -> str:
        r = self.rng
        district = district or r.choice(self.districts)
        return (f"{district} {r.randrange(10)}{r.choice(_UNIT_LETTERS[:4])}"
                f"{r.choice(_UNIT_LETTERS[:4])}")

    def practice(self, postcode: str) -> str:
        return self.rng.choice(self.practices[postcode.split()[0]])


def generate_population(people: int, seed: int = 117, *, untraced: float = 0.10,
                        twins: float = 0.01, namesakes: float = 0.01) -> list[Person]:
    """``people`` invented people, a share of them twins or a parent with a same-named child."""
    rng = random.Random(seed)  # noqa: S311 - reproducible invented data, not a secret
    world = _World(rng, people)
    given = {"male": _weighted(MALE_GIVEN, 0.7), "female": _weighted(FEMALE_GIVEN, 0.7)}
    numbers = nhs_numbers()

    def number() -> str | None:
        if rng.random() < untraced:
            return None
        try:
            return next(numbers)
        except StopIteration:
            raise ValueError("the 999 test range holds 909,091 valid numbers: raise "
                             "untraced or lower people") from None

    out: list[Person] = []
    while len(out) < people:
        sex = "male" if rng.random() < 0.5 else "female"
        born = _FIRST_BIRTH + timedelta(days=rng.randrange(_BIRTH_SPAN))
        postcode = world.postcode()
        person = Person(number(), _pick(rng, _SURNAMES), _pick(rng, given[sex]), born, sex,
                        postcode, world.practice(postcode))
        out.append(person)
        roll = rng.random()
        if roll < twins:  # same surname, birthday, home and practice; another first name
            twin_sex = sex if rng.random() < 0.6 else ("female" if sex == "male" else "male")
            name = person.given_name
            while name == person.given_name:
                name = _pick(rng, given[twin_sex])
            out.append(person._replace(nhs_number=number(), given_name=name, sex=twin_sex))
        elif roll < twins + namesakes and born.year < 1985:  # Junior: same name, same house
            child_born = born + timedelta(days=rng.randrange(20 * 365, 38 * 365))
            out.append(person._replace(nhs_number=number(), birth_date=child_born))
    return out[:people]


def _typo(rng: random.Random, text: str) -> str:
    # Slips at the first letter are rarer than later ones in keyed data.
    pos = 0 if rng.random() < 0.1 or len(text) < 2 else rng.randrange(1, len(text))
    op = rng.randrange(4)
    if op == 0:
        return text[:pos] + rng.choice(_LETTERS) + text[pos:]
    if op == 1 and len(text) > 2:
        return text[:pos] + text[pos + 1:]
    if op == 3 and pos + 1 < len(text):
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2:]
    return text[:pos] + rng.choice(_LETTERS) + text[pos + 1:]


def _slip_date(rng: random.Random, d: date) -> date:
    kind = rng.randrange(4)
    try:
        if kind == 0 and d.day <= 12 and d.day != d.month:
            return d.replace(month=d.day, day=d.month)  # day/month transposed
        if kind == 1:
            return d.replace(year=d.year + rng.choice((-1, 1)))
        if kind == 2:
            return d.replace(month=rng.choice([m for m in range(1, 13) if m != d.month]))
        return d.replace(day=rng.choice([x for x in range(1, 29) if x != d.day]))
    except ValueError:  # 29 February into a common year, 31st into a short month
        return d + timedelta(days=1)


def observe(rng: random.Random, person: Person, world: _World, noise: NoiseRates,
            record_id: str, shout: bool) -> Candidate:
    """One source's record of ``person``: the truth through that source's slips."""
    n = noise
    r = rng.random
    nhs = person.nhs_number
    if nhs is not None and r() < n.nhs_missing:
        nhs = None
    elif nhs is not None and r() < n.nhs_typo:
        k = rng.randrange(8)  # swap two adjacent different digits: modulus 11 catches it
        nhs = nhs[:k] + nhs[k + 1] + nhs[k] + nhs[k + 2:] if nhs[k] != nhs[k + 1] else None
    family, given = person.family_name, person.given_name
    if r() < n.family_changed:
        family = _pick(rng, _SURNAMES)
    if r() < n.family_typo:
        family = _typo(rng, family)
    shorts = NICKNAMES.get(given)
    if shorts and r() < n.nickname:
        given = rng.choice(shorts)
    elif r() < n.initial_only:
        given = given[0]
    elif r() < n.given_typo:
        given = _typo(rng, given)
    if r() < n.swapped:
        family, given = given, family
    born: date | None = person.birth_date
    if r() < n.birth_date_missing:
        born = None
    elif r() < n.birth_date_slip:
        born = _slip_date(rng, person.birth_date)
    sex: str | None = person.sex
    if r() < n.sex_missing:
        sex = None
    elif r() < n.sex_wrong:
        sex = "female" if sex == "male" else "male"
    postcode: str | None = person.postcode
    gp: str | None = person.gp_practice_ods
    if r() < n.moved:
        near = r() < 0.5
        postcode = world.postcode(person.postcode.split()[0] if near else None)
        if r() < 0.5:
            gp = world.practice(postcode)
    elif r() < n.gp_changed:
        gp = world.practice(person.postcode)
    if r() < n.postcode_missing:
        postcode = None
    if r() < n.gp_missing:
        gp = None
    if shout:  # council exports in capitals, postcodes without the space
        family, given = family.upper(), given.upper()
        postcode = postcode.replace(" ", "") if postcode else None
    verified = nhs is not None and nhs == person.nhs_number
    return Candidate(id=record_id, nhs_number=nhs, nhs_number_verified=verified,
                     family_name=family, given_name=given, birth_date=born, sex=sex,
                     postcode=postcode, gp_practice_ods=gp)


def generate_linkage_set(people: int, seed: int = 117, *, overlap: float = 0.8,
                         untraced: float = 0.10, noise: NoiseRates | None = None) -> LinkageSet:
    """Each person is in both sources (``overlap``), or in one only (the rest, split evenly)."""
    noise = noise or NoiseRates()
    population = generate_population(people, seed, untraced=untraced)
    rng = random.Random(seed * 7919 + 1)  # noqa: S311 - as above
    world = _World(rng, people)
    source_a: list[Candidate] = []
    source_b: list[Candidate] = []
    person_a: list[int] = []
    person_b: list[int] = []
    only_a = overlap + (1 - overlap) / 2
    for k in range(len(population)):
        roll = rng.random()
        if roll < only_a:
            person_a.append(k)
        if roll < overlap or roll >= only_a:
            person_b.append(k)
    # B in its own order, and ids by position: nothing about a record hints at its partner.
    rng.shuffle(person_b)
    for i, k in enumerate(person_a):
        source_a.append(observe(rng, population[k], world, noise, f"A{i}", shout=False))
    for j, k in enumerate(person_b):
        source_b.append(observe(rng, population[k], world, noise, f"B{j}", shout=True))
    return LinkageSet(population, source_a, source_b, person_a, person_b)
