"""The CapabilityStatement of ``/fhir/r4``: exactly what the hub takes and serves, nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .search import RESOURCE_TYPE, SEARCH_PARAMETER
from .submission import SUPPORTED_TYPES

FHIR_VERSION = "4.0.1"
SUBJECT_DOCUMENTATION = (
    " The patient ({element}) is a Patient in the same Bundle, an NHS number identifier "
    "(https://fhir.nhs.uk/Id/nhs-number), or Patient/<id> of a record the register already "
    "holds for this source (or a Patient <id> it sent on its own that waits to be applied); "
    "anything else is refused, 422 OperationOutcome not-found (the message is kept).")
DOCUMENTATION = {
    "Patient": "NHS number (https://fhir.nhs.uk/Id/nhs-number) with UK Core verification "
               "status, local identifiers, name, birth date, address, GP practice (ODS).",
    "Encounter": "Inpatient stay; the legal status comes from the UK Core extension "
                 "Extension-UKCore-LegalStatus (admission/discharge context; England codes, "
                 "or Wales codes mapped by the source's code map)."
                 + SUBJECT_DOCUMENTATION.format(element="subject"),
    "EpisodeOfCare": "Submitted: only type urn:s117hub:episode-type#s117-aftercare is mapped "
                     "(S117 aftercare confirmed / ended); other episodes are accepted and "
                     "ignored. Read and searched: the register's S117 entitlements, one per "
                     "person whose status is not none, exactly as pushed to fhir-r4 "
                     "subscribers, with the person's register id as the logical id."
                     + SUBJECT_DOCUMENTATION.format(element="patient"),
}
BUNDLE_DOCUMENTATION = (
    "A transaction or batch Bundle is stored and applied as one message, all or nothing "
    "(a batch too): an entry the hub cannot apply refuses the whole Bundle with one "
    "OperationOutcome whose expression names the entry. Entries may be Patient, Encounter "
    "and EpisodeOfCare (POST or PUT), and Organization, read only for the ODS code other "
    "entries refer to (answered 200 OK with an informational outcome: nothing is stored). "
    "Any other resource type is 422 not-supported at Bundle.entry[i].resource.resourceType "
    "(kept, not replayable: send the Bundle again without it).")
SEARCH_DOCUMENTATION = (
    "One identifier of the patient: https://fhir.nhs.uk/Id/nhs-number|<NHS number> (or the "
    "bare number), urn:s117hub:register-id|<register id>, or <a source's local identifier "
    "system>|<value>. No other parameter, modifier or OR list; no match is an empty "
    "searchset, a malformed token a 400 OperationOutcome.")


def capability_statement(base_url: str, now: datetime, software_version: str = "0.1.0"
                         ) -> dict[str, Any]:
    """Built and validated with fhir.resources.R4B, returned as FHIR JSON."""
    resources: list[dict[str, Any]] = [{
        "type": kind,
        "interaction": [{"code": "create"}, {"code": "update"}],
        "versioning": "no-version",
        "updateCreate": True,
        "documentation": DOCUMENTATION[kind],
    } for kind in SUPPORTED_TYPES]
    for resource in resources:
        if resource["type"] == RESOURCE_TYPE:
            resource["interaction"] = [{"code": "read"}, {"code": "search-type"},
                                       *resource["interaction"]]
            resource["searchParam"] = [{"name": SEARCH_PARAMETER, "type": "token",
                                        "documentation": SEARCH_DOCUMENTATION}]
    statement = CapabilityStatement.model_validate({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.isoformat(),
        "publisher": "S117 Hub",
        "kind": "instance",
        "software": {"name": "S117 Hub", "version": software_version},
        "implementation": {"description": "S117 Hub FHIR R4 endpoint: inbound "
                                          "submissions, and the S117 register as "
                                          "EpisodeOfCare", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Submit as a source-system token bound to a fhir-r4 source. A "
                             "submission is stored durably before the answer and applied to "
                             "the register by a worker; a re-post (same Bundle identifier, or "
                             "same resource version) is answered again and applied once. "
                             "Read and search EpisodeOfCare (the S117 register) as a "
                             "register-owner or auditor; each episode served is audited. "
                             "Errors are OperationOutcome with a 4xx status. "
                             + BUNDLE_DOCUMENTATION,
            "security": {
                "description": "Authorization: Bearer <token>: source-system (bound to one "
                               "source) to submit, register-owner or auditor to read; 401 "
                               "without a valid token, 403 otherwise."},
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    })
    return statement.model_dump(mode="json", exclude_none=True)
