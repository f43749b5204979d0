"""Every operation in ``/openapi.json`` is documented: a summary, and an example for every
JSON response and JSON request body (so partners can build against the schema alone).

Examples count where OpenAPI puts them: on the media type (``example``/``examples``) or on
the schema it refers to (a model's ``json_schema_extra`` examples); a union needs one on
every branch, a list on its items.
"""

from __future__ import annotations

from typing import Any

from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

JSON_MEDIA = ("application/json", "application/fhir+json")
SECTION_7_PERSON_FIELDS = {"id", "nhs_number", "identifiers", "detentions",
                           "legal_status_events", "entitlement", "open_exceptions",
                           "disputes", "explain"}
SECTION_7_ENTITLEMENT_FIELDS = {"status", "start", "trigger_section", "responsible_council",
                                "responsible_icb", "named_practitioner", "next_review_due",
                                "ended"}
SECTION_7_DISPUTE_FIELDS = {"id", "person_id", "kind", "opened", "stage", "stage_due",
                            "overdue", "summary", "outcome"}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _has_example(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    schema = _resolve(schema, components)
    if "example" in schema or "examples" in schema:
        return True
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return all(_has_example(branch, components) for branch in schema[union])
    if schema.get("type") == "array" and "items" in schema:
        return _has_example(schema["items"], components)
    return False


def _documented(content: dict[str, Any], components: dict[str, Any]) -> bool:
    return ("example" in content or "examples" in content
            or _has_example(content.get("schema", {}), components))


def _operations(hub: Hub) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, Any]]:
    schema = create_app(hub).openapi()
    operations = [(method.upper(), path, operation)
                  for path, item in schema["paths"].items()
                  for method, operation in item.items()]
    return operations, schema.get("components", {}).get("schemas", {})


def test_every_operation_has_a_summary(hub: Hub) -> None:
    operations, _ = _operations(hub)
    missing = [f"{method} {path}" for method, path, op in operations
               if not op.get("summary", "").strip()]
    assert missing == []


def test_every_json_response_and_request_has_an_example(hub: Hub) -> None:
    operations, components = _operations(hub)
    missing = []
    for method, path, op in operations:
        for status, response in op.get("responses", {}).items():
            for media, content in response.get("content", {}).items():
                if media in JSON_MEDIA and not _documented(content, components):
                    missing.append(f"{method} {path} → {status} {media}")
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            if media in JSON_MEDIA and not _documented(content, components):
                missing.append(f"{method} {path} ← request {media}")
    assert missing == [], "\n".join(missing)


def test_section_7_names_are_unchanged_in_the_examples(hub: Hub) -> None:
    """The schema keeps section 7's names and the examples use no other names.

    (FastAPI leaves null values out of the examples it publishes, so an example shows
    fewer names than a response; the schema's properties are the full list.)"""
    _, components = _operations(hub)
    person_names = components["PersonOut"]["properties"].keys()
    entitlement_names = components["PersonEntitlementOut"]["properties"].keys()
    assert SECTION_7_PERSON_FIELDS <= person_names
    assert SECTION_7_ENTITLEMENT_FIELDS <= entitlement_names
    person = components["PersonOut"]["examples"][0]
    assert person.keys() <= person_names
    assert person["entitlement"].keys() <= entitlement_names
    dispute = components["s117hub__api__routes_disputes__DisputeOut"]  # two models share the name
    assert SECTION_7_DISPUTE_FIELDS <= dispute["properties"].keys()
    assert dispute["examples"][0].keys() <= dispute["properties"].keys()
