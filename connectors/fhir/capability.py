"""The CapabilityStatement of ``/fhir/r4``: exactly what the hub takes, nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .submission import SUPPORTED_TYPES

FHIR_VERSION = "4.0.1"
DOCUMENTATION = {
    "Patient": "NHS number (https://fhir.nhs.uk/Id/nhs-number) with UK Core verification "
               "status, local identifiers, name, birth date, address, GP practice (ODS).",
    "Encounter": "Inpatient stay; the legal status comes from the UK Core extension "
                 "Extension-UKCore-LegalStatus (admission/discharge context; England codes, "
                 "or Wales codes mapped by the source's code map).",
    "EpisodeOfCare": "Only type urn:s117hub:episode-type#s117-aftercare is mapped (S117 "
                     "aftercare confirmed / ended); other episodes are accepted and ignored.",
}


def capability_statement(base_url: str, now: datetime, software_version: str = "0.1.0"
                         ) -> dict[str, Any]:
    """Built and validated with fhir.resources.R4B, returned as FHIR JSON."""
    resources = [{
        "type": kind,
        "interaction": [{"code": "create"}, {"code": "update"}],
        "versioning": "no-version",
        "updateCreate": True,
        "documentation": DOCUMENTATION[kind],
    } for kind in SUPPORTED_TYPES]
    statement = CapabilityStatement.model_validate({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.isoformat(),
        "publisher": "S117 Hub",
        "kind": "instance",
        "software": {"name": "S117 Hub", "version": software_version},
        "implementation": {"description": "S117 Hub inbound FHIR R4 endpoint",
                           "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Submit as a source-system token bound to a fhir-r4 source. A "
                             "submission is stored durably before the answer and applied to "
                             "the register by a worker; a re-post (same Bundle identifier, or "
                             "same resource version) is answered again and applied once. "
                             "Errors are OperationOutcome with a 4xx status.",
            "security": {
                "description": "Authorization: Bearer <token> (role source-system, bound to "
                               "one source); 401 without a valid token, 403 otherwise."},
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    })
    return statement.model_dump(mode="json", exclude_none=True)
