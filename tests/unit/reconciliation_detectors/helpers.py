"""Run the detectors over a journal built with the domain test builders (synthetic data)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TypeVar

from reconciliation.detectors import DetectorPolicy, Finding, detect
from register_core.domain.commands import (
    Command,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordS117Confirmed,
)
from register_core.domain.position import Policy, Position, compute_position

from ..domain.builders import d, person_ref, prov, record_all

C = TypeVar("C", bound=Command)


def run(commands: list[Command], today: str | date, *, birth: str | None = None,
        policy: DetectorPolicy | None = None,
        position_policy: Policy | None = None) -> tuple[list[Finding], Position]:
    person = record_all(commands, birth=birth)
    position = compute_position(person, d(today), position_policy)
    return detect(person, position, d(today), policy), position


def found(commands: list[Command], today: str | date, **kw: object) -> list[Finding]:
    return run(commands, today, **kw)[0]  # type: ignore[arg-type]


def kinds(commands: list[Command], today: str | date, **kw: object) -> list[str]:
    return [f.kind for f in found(commands, today, **kw)]


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def confirmed_by(source: str, start: str | date) -> RecordS117Confirmed:
    return RecordS117Confirmed(person=person_ref(), provenance=prov(source, d(start)),
                               start=d(start))


def council_detention(start: str | date, section: str = "03", end: str | date | None = None,
                      *, icb: str | None = None, source: str = "council") -> list[Command]:
    """As ``mapping.council`` maps ``detention.notified``: no episode ref, a leaving if ended."""
    commands: list[Command] = [RecordDetentionStarted(
        person=person_ref(), provenance=prov(source, d(start)), section=section, start=d(start),
        responsible_icb=icb, end=d(end) if end else None)]
    if end:
        commands.append(RecordLeftHospital(person=person_ref(), provenance=prov(source, d(end)),
                                           date=d(end)))
    return commands


def heard_late(when: str | date, heard: str | date, *, episode: str = "ep-1",
               source: str = "trust-a") -> RecordLeftHospital:
    """A leaving the hub is told of only on ``heard``."""
    p = prov(source, d(heard))
    return RecordLeftHospital(person=person_ref(), provenance=p, date=d(when), episode_ref=episode)


def from_source(command: C, source: str) -> C:
    """The same command told by another source."""
    return replace(command, provenance=replace(command.provenance, source=source))
