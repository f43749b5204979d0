"""The register as FHIR: each person's S117 entitlement as an R4 EpisodeOfCare, read-only.

    GET /fhir/r4/EpisodeOfCare?patient.identifier=<token>   searchset Bundle
    GET /fhir/r4/EpisodeOfCare/{id}                          one EpisodeOfCare

The resource is the outbound one: the register's position as of today is snapshotted by
``register_core.services.outbound.snapshot`` (what a status change is kept as in the
outbox) and rendered by ``mapping.outbound.episode_of_care`` (what a ``fhir-r4``
subscriber is sent by PUT). A search adds only the logical ``id``: the person's register id,
which is also the value of the resource's ``urn:s117hub:register-id`` identifier. A person
whose entitlement status is ``none`` has no S117 episode and is not found (as in
``/api/v1/entitlements``).

``patient.identifier`` (one token; an OR list, a repeat or a modifier is refused):

    https://fhir.nhs.uk/Id/nhs-number|<NHS number>   the NHS number (modulus-11 checked)
    <NHS number>                                     a bare value is read as an NHS number
    urn:s117hub:register-id|<register id>            the hub's id (the patient reference
                                                     of a person without an NHS number)
    <a source's fhir_local_id_system>|<value>        that source's local identifier (MRN)

Anything else (no parameter, another parameter, an unknown or empty system, a value that is
no valid NHS number) is a ``SearchError``: 400 with an OperationOutcome whose expression
names the part at fault (``EpisodeOfCare.patient.identifier.value``). The value is never
echoed back: it may be an NHS number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Connection

from mapping.fhir_r4 import NHS_NUMBER_SYSTEM
from mapping.outbound import REGISTER_ID_SYSTEM, episode_of_care
from register_core.adapters.repository import SqlPersonRepository
from register_core.adapters.sources import SourceDefinition
from register_core.domain import nhs_number as nhs
from register_core.domain.errors import InvalidValue
from register_core.domain.position import Policy, compute_position
from register_core.ports import Clock
from register_core.services.outbound import snapshot

from .outcome import operation_outcome

RESOURCE_TYPE = "EpisodeOfCare"
SEARCH_PARAMETER = "patient.identifier"
EXPRESSION = "EpisodeOfCare.patient.identifier"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_ESCAPED = frozenset("\\,|$")  # FHIR search escapes: \, \| \$ \\

QueryKind = Literal["nhs-number", "register-id", "local-id"]


class SearchError(Exception):
    """A search the hub cannot run as asked: answered 400 with this OperationOutcome."""

    def __init__(self, code: str, diagnostics: str, expression: str) -> None:
        super().__init__(diagnostics)
        self.status = 400
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.diagnostics, expression=self.expression)


@dataclass(frozen=True)
class IdentifierQuery:
    """One patient identifier to look for; ``token`` is it as sent (for the self link)."""

    kind: QueryKind
    value: str
    token: str
    sources: tuple[str, ...] = ()  # local-id: the sources whose identifier system it is


def local_id_systems(sources: Iterable[SourceDefinition]) -> dict[str, tuple[str, ...]]:
    """FHIR identifier system → the sources that send their local ids under it."""
    systems: dict[str, list[str]] = {}
    for source in sources:
        if source.fhir_local_id_system:
            systems.setdefault(source.fhir_local_id_system, []).append(source.source_id)
    return {system: tuple(sorted(ids)) for system, ids in systems.items()}


def parse_search(params: Sequence[tuple[str, str]],
                 local_systems: Mapping[str, tuple[str, ...]]) -> IdentifierQuery:
    """The query string of an EpisodeOfCare search → what to look for, or a SearchError."""
    for name, _ in params:
        if name != SEARCH_PARAMETER:
            shown = nhs.redact(name[:80])
            raise SearchError("not-supported", f"search parameter {shown!r} is not supported; "
                              f"search by {SEARCH_PARAMETER} only", shown)
    tokens = [value for _, value in params]
    if not tokens:
        raise SearchError("required", f"{SEARCH_PARAMETER} is required: "
                          f"{SEARCH_PARAMETER}={NHS_NUMBER_SYSTEM}|<NHS number>", EXPRESSION)
    if len(tokens) > 1:
        raise SearchError("invalid", f"give {SEARCH_PARAMETER} once", EXPRESSION)
    token = tokens[0]
    alternatives = _split_token(token)
    if len(alternatives) > 1:
        raise SearchError("not-supported", f"{SEARCH_PARAMETER} takes one identifier, not a "
                          "comma-separated list", EXPRESSION)
    system, value = alternatives[0]
    if system is None:
        return IdentifierQuery("nhs-number", _nhs_number(value, bare=True), token)
    if not system:
        raise SearchError("not-supported", "identifiers without a system are not held; give "
                          "system|value", f"{EXPRESSION}.system")
    if not value:
        raise SearchError("required", "the identifier value is empty", f"{EXPRESSION}.value")
    if system == NHS_NUMBER_SYSTEM:
        return IdentifierQuery("nhs-number", _nhs_number(value, bare=False), token)
    if system == REGISTER_ID_SYSTEM:
        return IdentifierQuery("register-id", value, token)
    if system in local_systems:
        return IdentifierQuery("local-id", value, token, local_systems[system])
    known = ", ".join([NHS_NUMBER_SYSTEM, REGISTER_ID_SYSTEM, *sorted(local_systems)])
    raise SearchError("not-supported", f"identifier system {system[:200]!r} is not known "
                      f"here; one of {known}", f"{EXPRESSION}.system")


def _nhs_number(value: str, *, bare: bool) -> str:
    try:
        return nhs.validate(value)
    except InvalidValue as exc:
        how = " (a value without a system is read as an NHS number)" if bare else ""
        raise SearchError("value", f"{exc.message}{how}", f"{EXPRESSION}.value") from exc


def _split_token(raw: str) -> list[tuple[str | None, str]]:
    """``[system|]value[,…]`` with FHIR's escapes → (system or None, value) per alternative."""
    alternatives: list[tuple[str | None, str]] = []
    system: str | None = None
    text: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in _ESCAPED:
            text.append(raw[i + 1])
            i += 2
            continue
        if char == ",":
            alternatives.append((system, "".join(text)))
            system, text = None, []
        elif char == "|" and system is None:
            system, text = "".join(text), []
        else:
            text.append(char)
        i += 1
    alternatives.append((system, "".join(text)))
    return alternatives


def matching_people(conn: Connection, query: IdentifierQuery) -> list[str]:
    """Register ids of the people the identifier names (at most one per source)."""
    people = SqlPersonRepository(conn)
    if query.kind == "nhs-number":
        found = [people.id_by_nhs_number(query.value)]
    elif query.kind == "register-id":
        found = [query.value if FHIR_ID.fullmatch(query.value) else None]
    else:
        found = [people.id_by_identifier(source, query.value) for source in query.sources]
    return sorted({person_id for person_id in found if person_id})


def episode_for(conn: Connection, person_id: str, clock: Clock,
                policy: Policy | None = None) -> dict[str, Any] | None:
    """The person's S117 entitlement as the outbound EpisodeOfCare, with ``id`` = register
    id; None when there is no such person or their status is ``none``."""
    if not FHIR_ID.fullmatch(person_id):
        return None
    person = SqlPersonRepository(conn).get(person_id)
    if person is None:
        return None
    position = compute_position(person, clock.today(), policy)
    if position.entitlement.status == "none":
        return None
    now = clock.now()
    change = snapshot(conn, person_id, position, [], now, now)
    rendered = episode_of_care(change)
    return {"resourceType": RESOURCE_TYPE, "id": person_id,
            **{key: value for key, value in rendered.items() if key != "resourceType"}}


def searchset(base_url: str, query: IdentifierQuery, episodes: Sequence[dict[str, Any]],
              now: datetime) -> dict[str, Any]:
    """A searchset Bundle of ``episodes`` (all matches: no paging), validated as R4B."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": now.isoformat(),
        "total": len(episodes),
        "link": [{"relation": "self", "url": f"{base_url}/{RESOURCE_TYPE}?"
                  + urlencode({SEARCH_PARAMETER: query.token})}],
    }
    if episodes:
        bundle["entry"] = [{"fullUrl": f"{base_url}/{RESOURCE_TYPE}/{episode['id']}",
                            "resource": episode, "search": {"mode": "match"}}
                           for episode in episodes]
    Bundle.model_validate(bundle)  # our own answer must be valid R4B
    return bundle
