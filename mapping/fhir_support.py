"""FHIR plumbing: validation errors as MappingErrors with FHIRPath-like locations, shapes, dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .errors import MappingError

_MISSING = frozenset({"missing"})


def location_of(loc: Sequence[str | int], prefix: str) -> str:
    """('entry', 2, 'resource', 'period', 'start') → ``Bundle.entry[2].resource.period.start``.

    pydantic adds validator names (``function-after[...]``) to some paths: they are not FHIR
    elements, so they are dropped.
    """
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier():
            path += f".{part}"
    return path


def validation_error(exc: ValidationError, prefix: str) -> MappingError:
    """The first error of a ValidationError, as a MappingError that names where it is."""
    errors = exc.errors(include_url=False)
    if not errors:
        return MappingError("invalid-value", str(exc), location=prefix)
    first_error = errors[0]
    code = "missing-field" if first_error.get("type") in _MISSING else "invalid-value"
    message = str(first_error.get("msg") or "invalid value").splitlines()[0]
    message = message.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return MappingError(code, message + more,
                        location=location_of(first_error.get("loc", ()), prefix))


def coding_path(concept_path: str, index: int) -> str:
    return f"{concept_path}.coding[{index}].code"


def precheck_bundle(bundle_json: Any) -> None:
    """Shape checks fhir.resources answers with KeyError or TypeError rather than errors."""
    if not isinstance(bundle_json, dict) or bundle_json.get("resourceType") != "Bundle":
        raise MappingError("unparseable", "expected a JSON object with resourceType Bundle",
                           location="Bundle.resourceType")
    entries = bundle_json.get("entry")
    if entries is None:
        return
    if not isinstance(entries, list):
        raise MappingError("invalid-value", "Bundle.entry must be a list", location="Bundle.entry")
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue  # fhir.resources reports these with a proper location
        kind = resource.get("resourceType")
        if not isinstance(kind, str) or not _known_type(kind):
            raise MappingError("invalid-value", f"unknown resourceType {kind!r}",
                               location=f"Bundle.entry[{index}].resource.resourceType")


def known_type(kind: str) -> bool:
    """Whether ``kind`` is an R4 resource type at all (as against one the hub maps)."""
    return _known_type(kind)


def _known_type(kind: str) -> bool:
    try:
        get_fhir_model_class(kind)
    except (ValueError, KeyError, TypeError, ImportError):
        return False
    return True


def validated(model: Any, resource: Any, location: str) -> Any:
    if isinstance(resource, model):
        return resource
    if not isinstance(resource, dict) or resource.get("resourceType") != model.__name__:
        raise MappingError("invalid-value", f"expected a {model.__name__} resource",
                           location=f"{location}.resourceType")
    try:
        return model.model_validate(resource)
    except ValidationError as exc:
        raise validation_error(exc, location) from exc


def reference_keys(full_url: str | None, resource: Any) -> list[str]:
    """The references another entry may use for this one: its fullUrl and Type/id."""
    found = [full_url] if full_url else []
    if resource.id:
        found.append(f"{resource.get_resource_type()}/{resource.id}")
    return found


def resource_ref(full_url: str | None, resource: Any) -> str:
    if resource.id:
        return f"{resource.get_resource_type()}/{resource.id}"
    return full_url or resource.get_resource_type()


def as_date(value: Any, location: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()  # the sender's own calendar date, as with HL7 TS
    if isinstance(value, date):
        return value
    raise MappingError("invalid-value", f"{value!r} is not a full date", location=location)
