"""OperationOutcome: how every FHIR error is answered, and which HTTP status goes with it.

    structure error (not JSON, not a resource, fails fhir.resources validation) → 400
    business rule or code we cannot accept (MappingError after validation)      → 422
    a patient reference the hub cannot find (``UnresolvedReference``)           → 422 not-found
    authentication / authorisation                                            → 401 / 403

``issue.expression`` carries the FHIRPath-like location of the MappingError
(``Bundle.entry[1].resource.period.start``), ``issue.details`` our stable mapping error code.
"""

from __future__ import annotations

from typing import Any

from mapping.errors import MappingError
from mapping.fhir_r4 import UnresolvedReference

FHIR_JSON = "application/fhir+json"
MAPPING_ERROR_SYSTEM = "urn:s117hub:mapping-error"

# MappingError.code → FHIR issue-type code (http://hl7.org/fhir/issue-type)
ISSUE_CODES: dict[str, str] = {
    "unparseable": "structure",
    "missing-field": "required",
    "invalid-value": "invalid",
    "unknown-code": "code-invalid",
    "unsupported-message-type": "not-supported",
    "unsupported-event": "not-supported",
}

# HTTP status of a refusal at the edge → issue-type code
HTTP_ISSUE_CODES: dict[int, str] = {
    400: "invalid", 401: "security", 403: "forbidden", 404: "not-found",
    405: "not-supported", 409: "conflict", 415: "not-supported", 422: "processing",
    503: "transient",
}


def operation_outcome(code: str, diagnostics: str, *, expression: str | None = None,
                      detail_code: str | None = None, severity: str = "error"
                      ) -> dict[str, Any]:
    """One-issue OperationOutcome as FHIR JSON (a plain dict: cheap, and always valid R4)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if detail_code:
        issue["details"] = {"coding": [{"system": MAPPING_ERROR_SYSTEM, "code": detail_code}],
                            "text": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_for_error(error: MappingError) -> dict[str, Any]:
    # A patient reference the hub cannot find is FHIR's not-found (stored as missing-field).
    code = ("not-found" if isinstance(error, UnresolvedReference)
            else ISSUE_CODES.get(error.code, "invalid"))
    return operation_outcome(code, error.message, expression=error.location,
                             detail_code=error.code)


def status_for_error(error: MappingError, *, structural: bool) -> int:
    """400 for what is not well-formed FHIR; 422 for a valid resource we cannot accept."""
    if error.code == "unparseable" or structural:
        return 400
    return 422


def outcome_for_http(status: int, message: str) -> dict[str, Any]:
    """An edge refusal (401, 403, 404, 405 …) as an OperationOutcome."""
    return operation_outcome(HTTP_ISSUE_CODES.get(status, "processing"), message)
