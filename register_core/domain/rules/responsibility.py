"""Who is responsible: the council and the ICB (s117-rules.md "Who is responsible"; joint
policy 4.3.1, 4.3.3, 4.4.1, 4.4.9; Worcestershire [2023] UKSC 31; NHS England "Who Pays?")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from ..legal_status import is_entitling

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
