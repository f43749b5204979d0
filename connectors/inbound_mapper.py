"""The mapper workers use: a stored inbox row → canonical commands, by channel and source.

It re-reads the *raw* payload, so a replay after a code-map fix maps the message afresh.
Stored payloads per channel:
* ``hl7v2-mllp``: the ER7 text;
* ``fhir-r4``: a Bundle or a single Patient / Encounter / EpisodeOfCare, as JSON;
* ``council-rest`` and ``council-poll``: one council event, as JSON;
* ``council-csv``: ``{"line": n, "file": name, "row": {header: cell}}`` for one CSV row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mapping.council import map_council_event, map_csv_row
from mapping.errors import MappingError
from mapping.fhir_r4 import map_bundle, map_encounter, map_episode_of_care, map_patient
from mapping.hl7v2 import map_adt
from mapping.hl7v2_parse import parse_adt
from register_core.adapters.inbox import InboxEntry
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from register_core.domain.commands import Command
from register_core.services.inbound import Mapper

ChannelMapper = Callable[[InboxEntry, SourceDefinition], list[Command]]


def _json(entry: InboxEntry) -> Any:
    try:
        return json.loads(entry.payload)
    except json.JSONDecodeError as exc:
        raise MappingError("unparseable", f"not JSON: {exc.msg}", location="payload") from exc


def map_hl7(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    return map_adt(parse_adt(entry.payload), source.mapping_config(), entry.received_at)


def map_fhir(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    resource = _json(entry)
    if not isinstance(resource, dict):
        raise MappingError("unparseable", "a FHIR resource must be a JSON object")
    config = source.mapping_config()
    kind = resource.get("resourceType")
    if kind == "Bundle":
        return map_bundle(resource, config, entry.received_at, source_ref=entry.message_id)
    single = {"Patient": map_patient, "Encounter": map_encounter,
              "EpisodeOfCare": map_episode_of_care}.get(str(kind))
    if single is None:
        raise MappingError("unsupported-message-type", f"resourceType {kind!r} is not taken",
                           location="resourceType")
    return single(resource, config, entry.received_at, source_ref=entry.message_id)


def map_council(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    return map_council_event(_json(entry), source.mapping_config(), entry.received_at)


def map_csv(entry: InboxEntry, source: SourceDefinition) -> list[Command]:
    stored = _json(entry)
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
