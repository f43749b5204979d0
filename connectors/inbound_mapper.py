"""The mapper workers use: a stored inbox row → canonical commands, by channel and source.

It re-reads the *raw* payload, so a replay after a code-map fix maps the message afresh.
"""

from __future__ import annotations

from mapping.errors import MappingError
from mapping.hl7v2 import map_adt
from mapping.hl7v2_parse import parse_adt
from register_core.adapters.inbox import InboxEntry
from register_core.adapters.sources import SourceDefinition, SourceRegistry
from register_core.domain.commands import Command
from register_core.services.inbound import Mapper


def _source(registry: SourceRegistry, entry: InboxEntry) -> SourceDefinition:
    source = registry.get(entry.source)
    if source is None:
        raise MappingError("invalid-value", f"source {entry.source!r} is no longer configured",
                           location="source")
    return source


def make_mapper(registry: SourceRegistry, extra: dict[str, Mapper] | None = None) -> Mapper:
    """``extra`` lets other connectors (FHIR, council) add their channels."""
    channels: dict[str, Mapper] = dict(extra or {})

    def map_hl7(entry: InboxEntry) -> list[Command]:
        source = _source(registry, entry)
        return map_adt(parse_adt(entry.payload), source.mapping_config(), entry.received_at)

    channels.setdefault("hl7v2-mllp", map_hl7)

    def mapper(entry: InboxEntry) -> list[Command]:
        channel = channels.get(entry.channel)
        if channel is None:
            raise MappingError("unsupported-message-type",
                               f"no mapper for channel {entry.channel!r}", location="channel")
        return channel(entry)

    return mapper
