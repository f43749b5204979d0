"""A default person and a way to vary one field: tests say only what they change."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from reconciliation.comparisons import Prepared
from reconciliation.identity import Candidate

BASE = Candidate(id="R1", nhs_number=None, nhs_number_verified=None, family_name="Thornley",
                 given_name="Margaret", birth_date=date(1961, 4, 23), sex="female",
                 postcode="LS6 2AB", gp_practice_ods="B86001")


def record(id: str = "R1", **changes: Any) -> Candidate:
    return replace(BASE, id=id, **changes)


def prep(**changes: Any) -> Prepared:
    return Prepared(record(**changes))
