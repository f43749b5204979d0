"""FHIR R4 (UK Core 4.0.1, validated with ``fhir.resources.R4B``) → canonical commands.

    Patient        → RecordPersonDetails (NHS number identifier + verification status)
    Encounter      with Extension-UKCore-LegalStatus:
                   admission context, detained code → RecordDetentionStarted(period.start)
                   discharge context, other detained code → section-change at period.end
                   CTO / CD (a mapped code) → cto-start / conditional-discharge-start
                   status finished with period.end → RecordLeftHospital
                   status cancelled / entered-in-error → CancelEvent of the whole episode
    EpisodeOfCare  of type ``urn:s117hub:episode-type#s117-aftercare`` → RecordS117Confirmed
                   (period.start), and RecordS117Ended when finished with period.end

fhir.resources does not check coded values, so the codes we rely on (Encounter.status,
EpisodeOfCare.status, the legal-status context and classification) are checked here.
Validation errors become MappingError with a FHIRPath-like location
(``Bundle.entry[2].resource.period.start``).

Who an Encounter/EpisodeOfCare is about: a Patient of the same Bundle (by fullUrl or
``Patient/<id>``), or an NHS number (``subject.identifier``), or — a literal ``Patient/<id>``
that is not in the Bundle — the source's own record ``<id>``. Only the register knows whether
that record exists, so the mapping reports such references (``outside``) for the edge to check;
it never decides it alone. A reference that names no Patient at all is an
``UnresolvedReference``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from register_core.domain.commands import (
    CancelEvent,
    Command,
    PersonRef,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordPersonDetails,
    RecordS117Confirmed,
    RecordS117Ended,
)

from .common import (
    is_detained,
    normalise_postcode,
    normalise_sex,
    provenance,
    require_identity,
    translate_legal_status,
    valid_nhs_number,
)
from .config import CTO, STATUS_MARKERS, SourceMappingConfig
from .errors import MappingError
from .fhir_support import (
    as_date,
    coding_path,
    location_of,
    precheck_bundle,
    reference_keys,
    resource_ref,
    validated,
    validation_error,
)

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_VERIFICATION_EXTENSION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus")
LEGAL_STATUS_EXTENSION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-LegalStatus"
LEGAL_STATUS_CONTEXT_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusContext"
EPISODE_TYPE_SYSTEM = "urn:s117hub:episode-type"  # our own: EpisodeOfCare as S117 entitlement
S117_EPISODE_CODE = "s117-aftercare"

ENCOUNTER_STATUSES = frozenset({"planned", "arrived", "triaged", "in-progress", "onleave",
                                "finished", "cancelled", "entered-in-error", "unknown"})
EPISODE_STATUSES = frozenset({"planned", "waitlist", "active", "onhold", "finished",
                              "cancelled", "entered-in-error"})
BUNDLE_TYPES = frozenset({"transaction", "batch", "collection"})
MAPPED_TYPES = ("Patient", "Encounter", "EpisodeOfCare")
# Read for what other entries refer to (an ODS code), never recorded on its own.
CONTEXT_TYPES = ("Organization",)
BUNDLE_ENTRY_TYPES = frozenset(MAPPED_TYPES + CONTEXT_TYPES)
_VERIFIED = "01"  # UK Core NHS number verification status: number present and verified
_PATIENT_REF = re.compile(r"(?:^|/)(Patient/[A-Za-z0-9\-.]{1,64})(?:/_history/.*)?$")


class UnresolvedReference(MappingError):
    """A patient reference that names no Patient the hub can find (FHIR issue ``not-found``).

    Stored with the code ``missing-field`` (the Patient it needs is absent), as before."""

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__("missing-field", message, location=location)


@dataclass(frozen=True)
class OutsideReference:
    """A literal ``Patient/<id>`` outside the Bundle: mapped as the source's record ``<id>``,
    which only the register (or a Patient still waiting in the inbox) can vouch for."""

    location: str  # ``Bundle.entry[1].resource.subject.reference``
    reference: str  # as sent
    local_id: str


def map_bundle(bundle_json: dict[str, Any], config: SourceMappingConfig,
               received_at: datetime, recorded_by: str = "system", *,
               source_ref: str | None = None,
               outside: list[OutsideReference] | None = None) -> list[Command]:
    """Map a transaction/batch Bundle: Patients first resolve, then every entry in order.

    ``outside`` collects the patient references to records not in the Bundle."""
    precheck_bundle(bundle_json)
    try:
        bundle = Bundle.model_validate(bundle_json)
    except ValidationError as exc:
        raise validation_error(exc, "Bundle") from exc
    if bundle.type not in BUNDLE_TYPES:
        raise MappingError("unknown-code", f"Bundle.type {bundle.type!r} is not one of "
                           f"{sorted(BUNDLE_TYPES)}", location="Bundle.type")
    ref = source_ref or (bundle.identifier.value if bundle.identifier else None) or bundle.id
    entries = [(i, e) for i, e in enumerate(bundle.entry or []) if e.resource is not None]
    patients: dict[str, PersonRef] = {}
    organisations = _organisations(entries)
    for index, entry in entries:
        if entry.resource.get_resource_type() == "Patient":
            person = _person(entry.resource, config, f"Bundle.entry[{index}].resource",
                             organisations)
            for key in reference_keys(entry.fullUrl, entry.resource):
                patients[key] = person
    commands: list[Command] = []
    for index, entry in entries:
        resource, where = entry.resource, f"Bundle.entry[{index}].resource"
        entry_ref = ref or resource_ref(entry.fullUrl, resource)
        kind = resource.get_resource_type()
        if kind == "Patient":
            commands += map_patient(resource, config, received_at, recorded_by,
                                    source_ref=entry_ref, location=where,
                                    organisations=organisations)
        elif kind == "Encounter":
            commands += map_encounter(resource, config, received_at, recorded_by,
                                      source_ref=entry_ref, location=where, patients=patients,
                                      organisations=organisations, outside=outside)
        elif kind == "EpisodeOfCare":
            commands += map_episode_of_care(resource, config, received_at, recorded_by,
                                            source_ref=entry_ref, location=where,
                                            patients=patients, outside=outside)
    return commands


def map_patient(resource: dict[str, Any] | Patient, config: SourceMappingConfig,
                received_at: datetime, recorded_by: str = "system", *,
                source_ref: str | None = None, location: str = "Patient",
                organisations: Mapping[str, str] | None = None) -> list[Command]:
    patient = validated(Patient, resource, location)
    as_of = patient.meta.lastUpdated.date() if patient.meta and patient.meta.lastUpdated else None
    return [RecordPersonDetails(
        person=_person(patient, config, location, organisations or {}),
        provenance=provenance(config, source_ref or resource_ref(None, patient), received_at,
                              recorded_by),
        as_of=as_of)]


def map_encounter(resource: dict[str, Any] | Encounter, config: SourceMappingConfig,
                  received_at: datetime, recorded_by: str = "system", *,
                  source_ref: str | None = None, location: str = "Encounter",
                  patients: Mapping[str, PersonRef] | None = None,
                  organisations: Mapping[str, str] | None = None,
                  outside: list[OutsideReference] | None = None) -> list[Command]:
    encounter = validated(Encounter, resource, location)
    if encounter.status not in ENCOUNTER_STATUSES:
        raise MappingError("unknown-code", f"Encounter.status {encounter.status!r} is not an "
                           "R4 encounter status", location=f"{location}.status")
    statuses = _legal_statuses(encounter, config, location)
    person = _subject(encounter.subject, patients or {}, f"{location}.subject", outside)
    prov = provenance(config, source_ref or resource_ref(None, encounter), received_at,
                      recorded_by)
    episode = (encounter.identifier[0].value if encounter.identifier else None) or encounter.id
    admission, discharge = statuses.get("admission"), statuses.get("discharge")
    if encounter.status in ("cancelled", "entered-in-error"):
        if admission and (is_detained(admission) or admission in STATUS_MARKERS):
            # Withdrawn: all the source told of this encounter, in every version, goes.
            return [CancelEvent(person=person, provenance=prov, cancels="detention-started",
                                episode_ref=episode, scope="episode")]
        return []
    period = encounter.period
    start = as_date(period.start if period else None, f"{location}.period.start")
    end = as_date(period.end if period else None, f"{location}.period.end")
    provider = _ods_of(encounter.serviceProvider, organisations or {}) \
        or config.default_provider_ods
    commands: list[Command] = []
    if admission and is_detained(admission):
        if start is None:
            raise MappingError("missing-field", "a detention needs Encounter.period.start",
                               location=f"{location}.period.start")
        commands.append(RecordDetentionStarted(
            person=person, provenance=prov, section=admission, start=start,
            episode_ref=episode, provider_ods=provider))
    elif admission in STATUS_MARKERS and start is not None:
        commands.append(_marker(admission, start, person, prov, episode, provider))
    if discharge and end is not None:
        if is_detained(discharge) and discharge != admission:
            # The regrade date is not in the Encounter; the discharge date stands in for it.
            commands.append(RecordLegalStatusChanged(
                person=person, provenance=prov, event="section-change", date=end,
                section=discharge, episode_ref=episode, provider_ods=provider))
    if encounter.status == "finished" and end is not None:
        commands.append(RecordLeftHospital(person=person, provenance=prov, date=end,
                                           episode_ref=episode))
    elif encounter.status == "finished" and admission and is_detained(admission):
        raise MappingError("missing-field", "a finished detention needs period.end",
                           location=f"{location}.period.end")
    if discharge in STATUS_MARKERS and end is not None:
        commands.append(_marker(discharge, end, person, prov, episode, provider))
    return commands


def map_episode_of_care(resource: dict[str, Any] | EpisodeOfCare,
                        config: SourceMappingConfig, received_at: datetime,
                        recorded_by: str = "system", *, source_ref: str | None = None,
                        location: str = "EpisodeOfCare",
                        patients: Mapping[str, PersonRef] | None = None,
                        outside: list[OutsideReference] | None = None) -> list[Command]:
    episode = validated(EpisodeOfCare, resource, location)
    if episode.status not in EPISODE_STATUSES:
        raise MappingError("unknown-code", f"EpisodeOfCare.status {episode.status!r} is not "
                           "an R4 episode status", location=f"{location}.status")
    if not any(c.system == EPISODE_TYPE_SYSTEM and c.code == S117_EPISODE_CODE
               for concept in episode.type or [] for c in concept.coding or []):
        return []  # another kind of episode (CPA, a team caseload): not ours to map
    person = _subject(episode.patient, patients or {}, f"{location}.patient", outside)
    prov = provenance(config, source_ref or resource_ref(None, episode), received_at,
                      recorded_by)
    period = episode.period
    start = as_date(period.start if period else None, f"{location}.period.start")
    end = as_date(period.end if period else None, f"{location}.period.end")
    commands: list[Command] = []
    if episode.status in ("active", "onhold", "finished"):
        if start is None and episode.status != "finished":
            raise MappingError("missing-field", "an active S117 episode needs period.start",
                               location=f"{location}.period.start")
        if start is not None:
            commands.append(RecordS117Confirmed(person=person, provenance=prov, start=start))
    if episode.status == "finished":
        if end is None:
            raise MappingError("missing-field", "a finished S117 episode needs period.end",
                               location=f"{location}.period.end")
        commands.append(RecordS117Ended(person=person, provenance=prov, date=end, reason=None,
                                        council_signoff=None, icb_signoff=None))
    return commands


# --- pieces ---------------------------------------------------------------------------------

def _legal_statuses(encounter: Encounter, config: SourceMappingConfig,
                    location: str) -> dict[str, str]:
    """{context: MHSDS code or marker} from the UK Core legal-status extensions."""
    found: dict[str, str] = {}
    for i, ext in enumerate(encounter.extension or []):
        if ext.url != LEGAL_STATUS_EXTENSION:
            continue
        here = f"{location}.extension[{i}]"
        subs = {sub.url: (j, sub) for j, sub in enumerate(ext.extension or [])}
        contexts, context_path = _sub_concept(subs, "legalStatusContext", here)
        context = (contexts[0].code or "") if contexts else ""
        if context not in ("admission", "discharge"):
            raise MappingError("unknown-code", f"legal-status context {context!r} is not "
                               "admission or discharge", location=coding_path(context_path, 0))
        codings, path = _sub_concept(subs, "legalStatusClassification", here)
        if not codings or not codings[0].code:
            raise MappingError("missing-field", "the legal-status classification has no code",
                               location=f"{path}.coding")
        errors: list[MappingError] = []
        for k, coding in enumerate(codings):  # the first coding we can read wins
            try:
                found[context] = translate_legal_status(
                    coding.code or "", config, coding_path(path, k), system=coding.system)
                break
            except MappingError as exc:
                errors.append(exc)
        else:
            raise errors[0]
    return found


def _sub_concept(subs: dict[str, tuple[int, Any]], url: str,
                 here: str) -> tuple[list[Any], str]:
    """(codings, FHIRPath of the CodeableConcept) of one sub-extension."""
    if url not in subs or subs[url][1].valueCodeableConcept is None:
        raise MappingError("missing-field", f"no {url} sub-extension", location=f"{here}.extension")
    j, sub = subs[url]
    return sub.valueCodeableConcept.coding or [], f"{here}.extension[{j}].valueCodeableConcept"


def _marker(code: str, when: date, person: PersonRef, prov: Any, episode: str | None,
            provider: str | None) -> Command:
    return RecordLegalStatusChanged(
        person=person, provenance=prov,
        event="cto-start" if code == CTO else "conditional-discharge-start", date=when,
        episode_ref=episode, provider_ods=provider)


def _person(patient: Patient, config: SourceMappingConfig, location: str,
            organisations: Mapping[str, str]) -> PersonRef:
    nhs: str | None = None
    verified: bool | None = None
    local: str | None = None
    fallback_local: str | None = None
    for i, ident in enumerate(patient.identifier or []):
        if not ident.value:
            continue
        if ident.system == NHS_NUMBER_SYSTEM:
            if nhs is None:
                nhs = valid_nhs_number(ident.value, f"{location}.identifier[{i}].value")
                verified = _verification(ident)
        elif config.fhir_local_id_system and ident.system == config.fhir_local_id_system:
            local = local or ident.value
        else:
            fallback_local = fallback_local or ident.value
    name = _preferred(patient.name, ("official", "usual"))
    address = _preferred(patient.address, ("home",))
    birth = patient.birthDate if isinstance(patient.birthDate, date) else None
    person = PersonRef(
        nhs_number=nhs, nhs_number_verified=verified,
        # The sender's logical id before any identifier of a system the source did not name:
        # an Encounter elsewhere (a poll, a separate POST) refers to ``Patient/<id>``, and a
        # Patient keyed by its MRN could never be found by that reference.
        local_id=local or patient.id or fallback_local,
        family_name=(name.family if name else None) or None,
        given_name=(name.given[0] if name and name.given else None) or None,
        birth_date=birth, sex=normalise_sex(patient.gender),
        postcode=normalise_postcode(address.postalCode if address else None),
        gp_practice_ods=next((o for o in (_ods_of(r, organisations)
                                          for r in patient.generalPractitioner or []) if o),
                             None),
        death_date=as_date(patient.deceasedDateTime, f"{location}.deceasedDateTime"))
    return require_identity(person, f"{location}.identifier")


def _verification(identifier: Any) -> bool | None:
    for ext in identifier.extension or []:
        if ext.url == NHS_VERIFICATION_EXTENSION and ext.valueCodeableConcept:
            codes = [c.code for c in ext.valueCodeableConcept.coding or []]
            return _VERIFIED in codes
    return None


def _preferred(items: list[Any] | None, uses: tuple[str, ...]) -> Any | None:
    for use in uses:
        for item in items or []:
            if item.use == use:
                return item
    return items[0] if items else None


def _subject(reference: Any, patients: Mapping[str, PersonRef], location: str,
             outside: list[OutsideReference] | None = None) -> PersonRef:
    """The Patient an Encounter/EpisodeOfCare is about: in the Bundle, by identifier, or by id
    (reported in ``outside``: whether the source's record exists is the register's to say)."""
    if reference is None:
        raise MappingError("missing-field", "no patient reference", location=location)
    literal = reference.reference or ""
    if literal in patients:
        return patients[literal]
    match = _PATIENT_REF.search(literal)
    if match and match.group(1) in patients:
        return patients[match.group(1)]
    ident = reference.identifier
    if ident is not None and ident.system == NHS_NUMBER_SYSTEM and ident.value:
        return PersonRef(nhs_number=valid_nhs_number(ident.value,
                                                     f"{location}.identifier.value"))
    if match:  # a Patient the sender holds but did not include: its logical id is local
        local_id = match.group(1).split("/", 1)[1]
        if outside is not None:
            outside.append(OutsideReference(f"{location}.reference", literal, local_id))
        return PersonRef(local_id=local_id)
    raise UnresolvedReference(f"cannot resolve patient reference {literal!r}: not a Patient "
                              "in this Bundle, a Patient/<id>, or an NHS number identifier",
                              location=f"{location}.reference")


def _organisations(entries: list[tuple[int, Any]]) -> dict[str, str]:
    """fullUrl / Organization/id → ODS code, for references to Organizations in the Bundle."""
    found: dict[str, str] = {}
    for _, entry in entries:
        resource = entry.resource
        if resource.get_resource_type() != "Organization":
            continue
        ods = next((i.value for i in resource.identifier or [] if i.system == ODS_SYSTEM), None)
        if ods:
            for key in reference_keys(entry.fullUrl, resource):
                found[key] = ods
    return found


def _ods_of(reference: Any, organisations: Mapping[str, str]) -> str | None:
    if reference is None:
        return None
    ident = reference.identifier
    if ident is not None and ident.system == ODS_SYSTEM and ident.value:
        return ident.value.upper()
    literal = reference.reference or ""
    return organisations.get(literal)


__all__ = ["BUNDLE_ENTRY_TYPES", "CONTEXT_TYPES", "EPISODE_TYPE_SYSTEM",
           "LEGAL_STATUS_EXTENSION", "MAPPED_TYPES", "NHS_NUMBER_SYSTEM", "S117_EPISODE_CODE",
           "OutsideReference", "UnresolvedReference", "location_of", "map_bundle",
           "map_encounter", "map_episode_of_care", "map_patient"]
