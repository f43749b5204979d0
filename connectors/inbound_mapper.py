"""The mapper workers use: a stored inbox row → canonical commands, by channel and source.

It re-reads the *raw* payload, so a replay after a code-map fix maps the message afresh.
Stored payloads per channel:
* ``hl7v2-mllp``: the ER7 text;
* ``fhir-r4``: a Bundle or a single Patient / Encounter / EpisodeOfCare, as JSON;
* ``council-rest`` and ``council-poll``: one council event, as JSON;
* ``council-csv``: ``{"line": n, "file": name, "row": {header: cell}}`` for one CSV row.

No text the hub keeps may hold a NUL character (U+0000): PostgreSQL text cannot store it, so a
worker applying such a message would fail on every attempt and hold up its partition. The
edges refuse it (``nul_location`` names where) and store what they refused with
``without_nul``; the mappers here refuse it again (a message stored before the edges did, or
replayed), so it fails once, with its location, instead of failing forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mapping.council import map_council_event, map_csv_row
from mapping.errors import MappingError
from mapping.fhir_r4 import (
    OutsideReference,
    map_bundle,
    map_encounter,
    map_episode_of_care,
    map_patient,
)
from mapping.hl7v2 import map_adt
from mapping.hl7v2_parse import parse_adt
from register_core.adapters.inbox import InboxEntry
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from register_core.domain.commands import Command
from register_core.services.inbound import Mapper

ChannelMapper = Callable[[InboxEntry, SourceDefinition], list[Command]]

NUL = "\x00"
NUL_MESSAGE = "a NUL character (U+0000) is not allowed in any text"
REPLACEMENT = "\ufffd"


def without_nul(text: str) -> str:
    """A refused body as it can be stored: each NUL replaced by U+FFFD."""
    return text.replace(NUL, REPLACEMENT)


def json_without_nul(text: str) -> str:
    """JSON text made by ``json.dumps``, with each NUL written ``\\u0000``: the same value.

    Only for JSON this process serialised: there a NUL can only be inside a string."""
    return text.replace(NUL, "\\u0000")


def may_hold_nul(text: str) -> bool:
    """Cheap: whether JSON text can decode to a string with a NUL (raw or escaped)."""
    return NUL in text or "\\u0000" in text


def nul_location(value: Any, root: str = "") -> str | None:
    """Where the first string (a value or a key) holding a NUL is, FHIRPath-like:
    ``Patient.name[0].family``, ``person.family_name``; ``root`` itself for a bare string.

    Iterative, so a document nested as deep as ``json`` decodes cannot exhaust the stack."""
    stack: list[tuple[Any, str]] = [(value, root)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return without_nul(path) or "body"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if NUL in str(key):
                    return without_nul(name)
                children.append((child, name))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, f"{path}[{index}]")
                                   for index, child in enumerate(item)]))
    return None


def nul_error(location: str | None, *, line: int | None = None) -> MappingError:
    return MappingError("invalid-value", NUL_MESSAGE, location=location, line=line)


def _json(entry: InboxEntry) -> Any:
    try:
        return json.loads(entry.payload)
    except json.JSONDecodeError as exc:
        raise MappingError("unparseable", f"not JSON: {exc.msg}", location="payload") from exc
    except RecursionError as exc:
        raise MappingError("unparseable", "not JSON this hub reads: nested too deeply",
                           location="payload") from exc


def _refuse_nul(entry: InboxEntry, value: Any, root: str = "") -> None:
    if may_hold_nul(entry.payload):
        location = nul_location(value, root)
        if location is not None:
            raise nul_error(location)


def map_hl7(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    return map_adt(parse_adt(entry.payload), source.mapping_config(), entry.received_at)


def map_fhir(entry: InboxEntry, source: SourceDefinition, *,
             outside: list[OutsideReference] | None = None) -> list[Command]:
    """``outside``: where to report patient references to records not in the message (the
    FHIR edge checks them against the register before it answers)."""
    resource = _json(entry)
    if not isinstance(resource, dict):
        raise MappingError("unparseable", "a FHIR resource must be a JSON object")
    _refuse_nul(entry, resource, str(resource.get("resourceType") or ""))
    config = source.mapping_config()
    kind = resource.get("resourceType")
    if kind == "Bundle":
        return map_bundle(resource, config, entry.received_at, source_ref=entry.message_id,
                          outside=outside)
    if kind == "Patient":
        return map_patient(resource, config, entry.received_at, source_ref=entry.message_id)
    single = {"Encounter": map_encounter,
              "EpisodeOfCare": map_episode_of_care}.get(str(kind))
    if single is None:
        raise MappingError("unsupported-message-type", f"resourceType {kind!r} is not taken",
                           location="resourceType")
    return single(resource, config, entry.received_at, source_ref=entry.message_id,
                  outside=outside)


def map_council(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    event = _json(entry)
    _refuse_nul(entry, event)
    return map_council_event(event, source.mapping_config(), entry.received_at)


def csv_nul_column(row: dict[str, str]) -> str | None:
    """The header of the first cell (or header) of a CSV row that holds a NUL."""
    for header, cell in row.items():
        if NUL in header or (isinstance(cell, str) and NUL in cell):
            return without_nul(header)
    return None


def map_csv(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    stored = _json(entry)
    if may_hold_nul(entry.payload) and isinstance(stored.get("row"), dict):
        column = csv_nul_column(stored["row"])
        if column is not None:
            line = int(stored["line"])
            raise nul_error(f"line {line}, column {column}", line=line)
    return map_csv_row(stored["row"], int(stored["line"]), source.csv,
                       source.mapping_config(), entry.received_at,
                       file_ref=stored.get("file"))


CHANNELS: dict[str, ChannelMapper] = {
    "hl7v2-mllp": map_hl7,
    "fhir-r4": map_fhir,
    "fhir-poll": map_fhir,
    "council-rest": map_council,
    "council-poll": map_council,
    "council-csv": map_csv,
}


def make_mapper(registry: SourceRegistry) -> Mapper:
    def mapper(entry: InboxEntry) -> list[Command]:
        channel = CHANNELS.get(entry.channel)
        if channel is None:
            raise MappingError("unsupported-message-type",
                               f"no mapper for channel {entry.channel!r}", location="channel")
        source = registry.get(entry.source)
        if source is None:
            raise MappingError("invalid-value",
                               f"source {entry.source!r} is no longer configured",
                               location="source")
        return channel(entry, source)

    return mapper
