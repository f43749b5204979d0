"""Comparison levels for identity matching: cheap, deterministic, explainable.

Each field compares to a short ordered list of levels (best first); a level is an index into
that field's names and ``NULL`` means a side is missing, which is no evidence either way. A
record is normalised once into ``Prepared`` (names upper-cased, phonetic codes, postcode parts)
so the per-pair work is equality tests and at most a few C-level Jaro–Winkler calls: the bulk
linker compares millions of pairs in pure Python.

Names: "jaro-winkler-or-one-edit" is Jaro–Winkler ≥ 0.92 or one keystroke apart (JW alone
sends "EMMA"/"EKMA", 0.87, to "else"), except that two different given names both known as
names ("EMMA"/"GEMMA") are not a slip. jellyfish has Soundex and (single) Metaphone but no
Double Metaphone, so the phonetic level is "Soundex or Metaphone equal" — no extra dependency
for a marginal gain on English names.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from functools import lru_cache
from typing import Any

import jellyfish
from rapidfuzz.distance import OSA, JaroWinkler

from register_core.domain import nhs_number

from .names import known_given_names, nickname_groups

NULL = -1
FIELDS: tuple[str, ...] = (
    "family_name", "given_name", "birth_date", "sex", "postcode", "gp_practice")
LEVELS: dict[str, tuple[str, ...]] = {
    "family_name": ("exact", "jaro-winkler-or-one-edit", "phonetic", "else"),
    "given_name": ("exact", "jaro-winkler-or-one-edit", "nickname-or-initial", "swapped", "else"),
    "birth_date": ("exact", "one-component-or-transposed", "year-within-1", "else"),
    "sex": ("equal", "differs"),
    "postcode": ("exact", "sector", "district", "else"),
    "gp_practice": ("exact", "else"),
}
# Level indices the scorer and the guards test by name.
EXACT, FUZZY, PHONETIC = 0, 1, 2
NICK_OR_INITIAL, SWAPPED = 2, 3
NAME_ELSE = {"family_name": 3, "given_name": 4}
DOB_ELSE = 3
JW_THRESHOLD = 0.92

_NICKNAMES = nickname_groups()
_KNOWN_GIVEN = known_given_names()
# Distinct spellings (and postcodes, with and without the space) in a million-record batch,
# typos included: an LRU that thrashes costs more than the ~50 MiB each of these holds.
_CACHE = 1 << 18
_jw = JaroWinkler.normalized_similarity
_osa = OSA.distance


def normalise_name(raw: str, first_token: bool = False) -> str | None:
    """Upper-case ASCII letters only: "O'Brien" and "OBRIEN", "Zoë" and "ZOE" compare equal."""
    text = unicodedata.normalize("NFKD", raw).upper()
    if first_token:  # a given-name field often carries middle names; the first is the one used
        parts = text.split()
        text = parts[0] if parts else ""
    letters = "".join(ch for ch in text if "A" <= ch <= "Z")
    return letters or None


# One cache lookup per name per record: preparing records is most of a bulk run's time.
@lru_cache(maxsize=_CACHE)
def family_features(raw: str) -> tuple[str | None, str | None, str | None]:
    """(normalised, Soundex, Metaphone) of a family name."""
    name = normalise_name(raw)
    return (name, jellyfish.soundex(name), jellyfish.metaphone(name)) if name else (None,) * 3


@lru_cache(maxsize=_CACHE)
def given_features(raw: str) -> tuple[str | None, str | None, frozenset[int] | None]:
    """(normalised first given name, Soundex, nickname groups)."""
    name = normalise_name(raw, first_token=True)
    if not name:
        return None, None, None
    return name, jellyfish.soundex(name), _NICKNAMES.get(name)


def valid_nhs_number(raw: str | None) -> str | None:
    """The number if valid, else None: ``nhs_number.is_valid`` with a fast path for the usual
    ten clean digits (a million records spend seconds in the general one)."""
    if not raw:
        return None
    if len(raw) != 10 or not (raw.isascii() and raw.isdigit()):
        return nhs_number.normalise(raw) if nhs_number.is_valid(raw) else None
    d = raw.encode()
    total = (d[0] * 10 + d[1] * 9 + d[2] * 8 + d[3] * 7 + d[4] * 6 + d[5] * 5 + d[6] * 4
             + d[7] * 3 + d[8] * 2 - 48 * 54)  # 48: ord("0"); 54: the weights' sum
    check = 11 - total % 11
    return raw if check % 11 == d[9] - 48 else None  # 11 -> 0; 10 never equals a digit


@lru_cache(maxsize=_CACHE)
def postcode_parts(raw: str) -> tuple[str, str | None, str | None]:
    """(full "LS1 2AB", sector "LS1 2", district "LS1"); partial or overseas: (text, None, None)."""
    text = "".join(raw.upper().split())
    if 5 <= len(text) <= 7 and text[-3].isdigit() and text[0].isalpha():
        outward, inward = text[:-3], text[-3:]
        return f"{outward} {inward}", f"{outward} {inward[0]}", outward
    return text, None, None


_SEX = {"M": "male", "MALE": "male", "1": "male", "F": "female", "FEMALE": "female", "2": "female",
        "male": "male", "female": "female"}


class Prepared:
    """One side of a comparison, normalised once. Field names follow ``PersonRef``."""

    __slots__ = ("district", "dob", "family", "family_mp", "family_sx", "given",
                 "given_groups", "given_sx", "gp", "nhs", "postcode", "sector", "sex",
                 "verified")

    def __init__(self, person: Any) -> None:
        # An invalid number is ignored, never trusted: it is most often a typing slip.
        self.nhs = valid_nhs_number(person.nhs_number)
        self.verified = bool(person.nhs_number_verified)
        fam, giv = person.family_name, person.given_name
        self.family, self.family_sx, self.family_mp = (
            family_features(fam) if fam else (None, None, None))
        self.given, self.given_sx, self.given_groups = (
            given_features(giv) if giv else (None, None, None))
        self.dob: date | None = person.birth_date
        # "other"/"unknown" are not compared: too rare to be evidence, too easily mis-recorded.
        sex = person.sex
        self.sex = (_SEX.get(sex) or _SEX.get(sex.strip().upper())) if sex else None
        if person.postcode and person.postcode.strip():
            self.postcode, self.sector, self.district = postcode_parts(person.postcode)
        else:
            self.postcode = self.sector = self.district = None
        gp = person.gp_practice_ods.strip().upper() if person.gp_practice_ods else ""
        self.gp = gp or None


def _close(x: str, y: str) -> bool:
    """Jaro–Winkler ≥ 0.92, or one keystroke apart (insert, delete, substitute, transpose).

    JW alone drops one-letter slips in short names ("EMMA"/"EKMA" is 0.87) to "else".
    """
    return _jw(x, y) >= JW_THRESHOLD or (min(len(x), len(y)) >= 3
                                          and _osa(x, y, score_cutoff=1) <= 1)


def _given_agrees(x: str, y: str, gx: frozenset[int] | None,
                  gy: frozenset[int] | None) -> int:
    """The best given-name level short of "swapped" (``NAME_ELSE`` when none applies)."""
    if x == y:
        return EXACT
    # Two different real names one letter apart ("EMMA"/"GEMMA", "JOHN"/"JOAN") are more
    # likely two people — twins get names like that — than a slip that made another name.
    if _close(x, y) and not (x in _KNOWN_GIVEN and y in _KNOWN_GIVEN):
        return FUZZY
    if (len(x) == 1 or len(y) == 1) and x[0] == y[0]:
        return NICK_OR_INITIAL
    if gx and gy and not gx.isdisjoint(gy):
        return NICK_OR_INITIAL
    return NAME_ELSE["given_name"]


def family_level(a: Prepared, b: Prepared) -> int:
    x, y = a.family, b.family
    if x is None or y is None:
        return NULL
    if x == y:
        return EXACT
    if _close(x, y):
        return FUZZY
    if a.family_sx == b.family_sx or a.family_mp == b.family_mp:
        return PHONETIC
    return NAME_ELSE["family_name"]


def given_level(a: Prepared, b: Prepared) -> int:
    if a.given is None or b.given is None:
        return NULL
    return _given_agrees(a.given, b.given, a.given_groups, b.given_groups)


def name_levels(a: Prepared, b: Prepared) -> tuple[int, int]:
    """(family level, given level), reading a given/family swap as one piece of evidence.

    When the straight comparison is poor but each name agrees with the other's opposite field,
    the family level is scored across (family vs given) and the given level says "swapped".
    The given side of the swap may be a nickname or an initial ("N PAYNE" for "Neil Payne").
    """
    fam, giv = family_level(a, b), given_level(a, b)
    if (fam > FUZZY or giv > NICK_OR_INITIAL) and fam != NULL and giv != NULL:
        af, ag, bf, bg = a.family, a.given, b.family, b.given
        assert af and ag and bf and bg  # not NULL on either side
        if (ag == bf or _close(ag, bf)) and _given_agrees(
                af, bg, _NICKNAMES.get(af), b.given_groups) < SWAPPED:
            return (EXACT if ag == bf else FUZZY), SWAPPED
        if (af == bg or _close(af, bg)) and _given_agrees(
                ag, bf, a.given_groups, _NICKNAMES.get(bf)) < SWAPPED:
            return (EXACT if af == bg else FUZZY), SWAPPED
    return fam, giv


def birth_date_level(a: Prepared, b: Prepared) -> int:
    x, y = a.dob, b.dob
    if x is None or y is None:
        return NULL
    if x == y:
        return 0
    differing = (x.year != y.year) + (x.month != y.month) + (x.day != y.day)
    if differing == 1 or (x.year == y.year and x.month == y.day and x.day == y.month):
        return 1  # one slip of the keyboard, or the US day/month order
    if abs(x.year - y.year) <= 1:
        return 2
    return DOB_ELSE


def sex_level(a: Prepared, b: Prepared) -> int:
    if a.sex is None or b.sex is None:
        return NULL
    return 0 if a.sex == b.sex else 1


def postcode_level(a: Prepared, b: Prepared) -> int:
    if a.postcode is None or b.postcode is None:
        return NULL
    if a.postcode == b.postcode:
        return 0
    if a.sector is not None and a.sector == b.sector:
        return 1
    if a.district is not None and a.district == b.district:
        return 2
    return 3


def gp_level(a: Prepared, b: Prepared) -> int:
    if a.gp is None or b.gp is None:
        return NULL
    return 0 if a.gp == b.gp else 1


def comparison_vector(a: Prepared, b: Prepared) -> tuple[int, int, int, int, int, int]:
    """The level of every field, in ``FIELDS`` order (the scorer and the estimator read it)."""
    fam, giv = name_levels(a, b)
    return (fam, giv, birth_date_level(a, b), sex_level(a, b), postcode_level(a, b),
            gp_level(a, b))
