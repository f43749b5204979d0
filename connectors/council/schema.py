"""The council event schema as the OpenAPI document publishes it, with an example per type.

pydantic's JSON schema for the discriminated union refers to its own ``$defs``; a request
body that FastAPI does not validate (the route reads the raw body so that invalid events are
still stored) cannot register those as components, so the refs are resolved in place and
the schema stands alone. Pure: no web framework here.
"""

from __future__ import annotations

from typing import Any

from mapping.council_models import COUNCIL_EVENT_ADAPTER, EVENT_MODELS


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {**target, **{k: _inline(v, defs) for k, v in node.items() if k != "$ref"}}
    return {key: _inline(value, defs) for key, value in node.items()}


def council_event_schema() -> dict[str, Any]:
    raw = COUNCIL_EVENT_ADAPTER.json_schema()
    defs = raw.pop("$defs", {})
    raw.pop("discriminator", None)  # its mapping names $defs; each branch pins `type` anyway
    return {"title": "CouncilEvent", "description": "One council event; `type` selects the "
            "shape of `data` (architecture section 4).", **_inline(raw, defs)}


def event_examples() -> dict[str, Any]:
    """OpenAPI ``examples``: one per event type, and an array of several."""
    each = {name: model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
            for name, model in EVENT_MODELS.items()}
    examples: dict[str, Any] = {name: {"summary": f"One {name} event", "value": value}
                                for name, value in each.items()}
    several = [dict(each["ordinary-residence.changed"], event_id="evt-000001"),
               dict(each["detention.notified"], event_id="evt-000002"),
               dict(each["s117.confirmed"], event_id="evt-000003")]
    examples["array"] = {"summary": "Several events in one request", "value": several}
    return examples


def events_request_body(max_events: int) -> dict[str, Any]:
    """The ``requestBody`` of ``POST /api/v1/sources/{source}/events``."""
    event = council_event_schema()
    return {"required": True,
            "description": f"One council event, or a JSON array of 1 to {max_events} events.",
            "content": {"application/json": {
                "schema": {"oneOf": [event, {"type": "array", "items": event, "minItems": 1,
                                             "maxItems": max_events}]},
                "examples": event_examples()}}}


_CSV_EXAMPLE = ("event_id,type,nhs_number,family_name,section,start,end,date,council_code\n"
                "csv-1,ordinary-residence.changed,9990000018,Testperson,,,,2020-01-01,"
                "E10000034\n"
                "csv-2,detention.notified,9990000018,Testperson,03,2026-01-05,2026-03-01,,\n")


def csv_request_body() -> dict[str, Any]:
    """The ``requestBody`` of ``POST /api/v1/sources/{source}/csv``."""
    return {"required": True,
            "description": "A council CSV export, one event per row; headers per the "
                           "source's column map (by default the field names).",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": _CSV_EXAMPLE},
                "multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string",
                                            "contentMediaType": "text/csv"}}}}}}
