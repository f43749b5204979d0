"""Who is responsible: the council and the ICB (s117-rules.md "Who is responsible"; joint
policy 4.3.1, 4.3.3, 4.3.4, 4.4.1, 4.4.9; Worcestershire [2023] UKSC 31; NHS England "Who
Pays?")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date

from ..legal_status import is_entitling
from ..model import Person
from .disputes import DisputeSpan

WHO_PAYS_IN_FORCE = date(2020, 9, 1)


def _latest_before(dated: Sequence[tuple[date, str]], day: date) -> tuple[date, str] | None:
    """The last value dated on or before ``day`` ("immediately before the detention")."""
    best: tuple[date, str] | None = None
    for since, value in dated:
        if since <= day and (best is None or since >= best[0]):
            best = (since, value)
    return best


def responsible_council(
    residences: Sequence[tuple[date, str]], detention_start: date
) -> str | None:
    """Council of ordinary residence immediately before the (latest entitling) detention."""
    found = _latest_before(residences, detention_start)
    return found[1] if found else None


def new_detention_moves_council(section: str, entitlement_ended: bool) -> bool:
    """A *new* entitling detention before discharge from s117 moves the council duty to the
    council of residence before that detention (Worcestershire); s2 or informal does not.
    After a lawful ending a new entitling detention starts a fresh duty anyway."""
    return is_entitling(section) and not entitlement_ended


def originating_icb(
    gp_registrations: Sequence[tuple[date, str]],
    detention_start: date,
    practice_to_icb: Mapping[str, str] | None = None,
) -> str | None:
    """The ICB of the GP practice the person was registered with immediately before the
    first detention of this s117 period; it stays responsible until discharge from s117.

    ``gp_registrations`` holds (from, icb code or practice ODS); a practice code is turned
    into its ICB through ``practice_to_icb`` (local configuration).
    """
    found = _latest_before(gp_registrations, detention_start)
    if found is None:
        return None
    code = found[1]
    if practice_to_icb and code in practice_to_icb:
        return practice_to_icb[code]
    return code


def originating_practice(told: Sequence[tuple[date, str]],
                         detention_start: date) -> tuple[int, bool] | None:
    """Which of the GP practices the journal told (``(effective, practice)`` in journal
    order) was the person's at the first detention of the s117 period (4.4.1): the last one
    told on or before the detention starts; else, none known then, the first one told at all.
    Returns its index in ``told`` and whether it was known by the detention. A later change
    of practice never moves it (4.4.9): the current practice is not chosen for being current.
    """
    before = [i for i, (since, _) in enumerate(told) if since <= detention_start]
    if before:
        return max(before, key=lambda i: (told[i][0], i)), True
    if not told:
        return None
    return min(range(len(told)), key=lambda i: (told[i][0], i)), False


def dispute_holding_council(disputes: Sequence[DisputeSpan], day: date) -> DisputeSpan | None:
    """The dispute about responsibility open on ``day`` that holds the council meeting the
    need when it arose to go on doing so until it is resolved (joint policy 4.3.4): the
    earliest opened of those open."""
    held = [span for span in disputes if span.kind == "responsibility" and span.open_on(day)]
    return min(held, key=lambda span: (span.opened, span.id)) if held else None


def journal_before(person: Person, seq: int) -> Person:
    """The person's journal as it stood before fact ``seq`` was recorded: the facts recorded
    earlier, live as they were then (a cancel recorded since does not retract them yet)."""
    kept = [replace(f, retracted_by=f.retracted_by if f.retracted_by is not None
                    and f.retracted_by < seq else None)
            for f in person.facts if f.seq < seq]
    return replace(person, facts=kept, new_facts=[], changed=False)
