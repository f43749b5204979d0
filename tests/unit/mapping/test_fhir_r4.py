"""FHIR R4 Bundle / Patient / Encounter / EpisodeOfCare → commands, and precise error paths."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from mapping.config import SourceMappingConfig
from mapping.errors import MappingError
from mapping.fhir_r4 import (
    OutsideReference,
    UnresolvedReference,
    map_bundle,
    map_encounter,
    map_episode_of_care,
    map_patient,
)
from register_core.domain.commands import (
    CancelEvent,
    Command,
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordLegalStatusChanged,
    RecordPersonDetails,
    RecordS117Confirmed,
    RecordS117Ended,
)
from register_core.domain.model import Person
from register_core.domain.position import compute_position

from . import samples as s
from .conftest import RECEIVED


def mapped(bundle: dict[str, Any], config: SourceMappingConfig) -> list[Command]:
    return map_bundle(bundle, config, RECEIVED, "system")


def error_of(bundle: dict[str, Any], config: SourceMappingConfig) -> MappingError:
    with pytest.raises(MappingError) as caught:
        mapped(bundle, config)
    return caught.value


def encounter(**changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(s.ENCOUNTER_S2_TO_S3)
    resource.update(changes)
    return resource


def test_admission_bundle(fhir_trust: SourceMappingConfig) -> None:
    details, started, regrade, left = mapped(s.ADMISSION_BUNDLE, fhir_trust)
    assert isinstance(details, RecordPersonDetails)
    person = details.person
    assert (person.nhs_number, person.nhs_number_verified, person.local_id) == (
        s.NHS_1, True, s.LOCAL_1)
    assert (person.family_name, person.given_name, person.birth_date, person.sex) == (
        "Testwood", "Robin", date(1980, 1, 1), "female")
    assert (person.postcode, person.gp_practice_ods) == ("AB1 2CD", "M85019")
    assert isinstance(started, RecordDetentionStarted)
    assert (started.section, started.start, started.episode_ref, started.provider_ods) == (
        "02", date(2026, 1, 5), "V0001", "RX1")
    assert started.person == person  # the subject reference resolved to the Bundle's Patient
    assert isinstance(regrade, RecordLegalStatusChanged)
    assert (regrade.event, regrade.section, regrade.date) == ("section-change", "03",
                                                              date(2026, 3, 1))
    assert isinstance(left, RecordLeftHospital)
    assert left.date == date(2026, 3, 1)
    assert {c.provenance.source_ref for c in (details, started, regrade, left)} == {"bundle-1"}
    assert details.provenance.source == "trust-f"


def test_configured_local_id_system(fhir_trust: SourceMappingConfig) -> None:
    patient = copy.deepcopy(s.PATIENT)
    patient["identifier"].insert(1, {"system": "https://other.example/id", "value": "OTHER-1"})
    config = fhir_trust.model_copy(
        update={"fhir_local_id_system": "https://sample-trust.example/Id/mrn"})
    [details] = mapped(s.bundle(patient), config)
    assert details.person.local_id == s.LOCAL_1
    [default] = mapped(s.bundle(patient), fhir_trust)
    assert default.person.local_id == "OTHER-1"


def test_in_progress_detention_has_no_leaving(fhir_trust: SourceMappingConfig) -> None:
    current = encounter(status="in-progress", period={"start": "2026-01-05"},
                        extension=[s.legal_status("admission", "3")])
    _, started = mapped(s.bundle(s.PATIENT, current), fhir_trust)
    assert isinstance(started, RecordDetentionStarted)
    assert started.section == "03"


def test_subject_by_patient_id_and_by_identifier(fhir_trust: SourceMappingConfig) -> None:
    patient = {**copy.deepcopy(s.PATIENT), "id": "pat-1"}
    by_id = encounter(subject={"reference": "Patient/pat-1"})
    _, started, *_ = mapped(s.bundle(patient, by_id), fhir_trust)
    # The logical id keys the record (its MRN's system is not the source's configured one),
    # so a reference to Patient/pat-1 from outside the Bundle finds the same person.
    assert started.person.local_id == "pat-1"
    configured = fhir_trust.model_copy(update={"fhir_local_id_system": s.PATIENT[
        "identifier"][1]["system"]})
    _, started, *_ = mapped(s.bundle(patient, by_id), configured)
    assert started.person.local_id == s.LOCAL_1
    by_nhs = encounter(subject={"identifier": {"system": s.NHS_SYSTEM, "value": s.NHS_2}})
    started, *_ = mapped(s.bundle(by_nhs), fhir_trust)
    assert started.person.nhs_number == s.NHS_2
    elsewhere = encounter(subject={"reference": "https://ehr.example/fhir/Patient/ext-9"})
    started, *_ = mapped(s.bundle(elsewhere), fhir_trust)
    assert started.person.local_id == "ext-9"


def test_references_outside_the_bundle_are_reported_for_the_edge_to_check(
        fhir_trust: SourceMappingConfig) -> None:
    """Only a literal Patient/<id> the Bundle does not carry: the register must vouch for it
    (connectors.fhir.patients). In the Bundle or by NHS number, the mapping settles it."""
    patient = {**copy.deepcopy(s.PATIENT), "id": "pat-1"}
    outside: list[OutsideReference] = []
    mapped_with = map_bundle(s.bundle(patient, encounter(subject={"reference": "Patient/pat-1"}),
                                      encounter(subject={"identifier": {
                                          "system": s.NHS_SYSTEM, "value": s.NHS_2}})),
                             fhir_trust, RECEIVED, outside=outside)
    assert mapped_with and outside == []
    elsewhere = {**copy.deepcopy(s.EPISODE_S117), "patient": {
        "reference": "https://ehr.example/fhir/Patient/ext-9/_history/2"}}
    map_bundle(s.bundle(encounter(subject={"reference": "Patient/pat-8"}), elsewhere),
               fhir_trust, RECEIVED, outside=outside)
    assert outside == [
        OutsideReference("Bundle.entry[0].resource.subject.reference", "Patient/pat-8",
                         "pat-8"),
        OutsideReference("Bundle.entry[1].resource.patient.reference",
                         "https://ehr.example/fhir/Patient/ext-9/_history/2", "ext-9")]
    single: list[OutsideReference] = []
    map_encounter(encounter(subject={"reference": "Patient/pat-8"}), fhir_trust, RECEIVED,
                  outside=single)
    assert single == [OutsideReference("Encounter.subject.reference", "Patient/pat-8",
                                       "pat-8")]


def test_a_reference_to_no_patient_is_unresolved(fhir_trust: SourceMappingConfig) -> None:
    error = error_of(s.bundle(s.PATIENT, encounter(subject={"reference": "urn:uuid:nobody"})),
                     fhir_trust)
    assert isinstance(error, UnresolvedReference)  # FHIR not-found at the edge
    assert (error.code, error.location) == ("missing-field",
                                            "Bundle.entry[1].resource.subject.reference")


def test_service_provider_organisation_in_the_bundle(fhir_trust: SourceMappingConfig) -> None:
    organisation = {"resourceType": "Organization", "id": "org-1",
                    "identifier": [{"system": s.ODS_SYSTEM, "value": "RX9"}]}
    enc = encounter(serviceProvider={"reference": "Organization/org-1"})
    commands = mapped(s.bundle(s.PATIENT, enc, organisation), fhir_trust)
    assert commands[1].provider_ods == "RX9"  # type: ignore[attr-defined]


def test_wales_codes_need_a_mapping(fhir_trust: SourceMappingConfig) -> None:
    welsh = encounter(extension=[s.legal_status("admission", "34", s.WALES)])
    error = error_of(s.bundle(s.PATIENT, welsh), fhir_trust)
    assert error.code == "unknown-code"
    assert error.location == ("Bundle.entry[1].resource.extension[0].extension[1]"
                              ".valueCodeableConcept.coding[0].code")
    config = fhir_trust.model_copy(update={"code_map": {f"{s.WALES}|34": "37"}})
    _, started, *_ = mapped(s.bundle(s.PATIENT, welsh), config)
    assert started.section == "37"


def test_cto_at_discharge_from_a_mapped_code(fhir_trust: SourceMappingConfig) -> None:
    config = fhir_trust.model_copy(update={"code_map": {f"{s.WALES}|35": "CTO"}})
    enc = encounter(extension=[s.legal_status("admission", "03"),
                               s.legal_status("discharge", "35", s.WALES)])
    commands = mapped(s.bundle(s.PATIENT, enc), config)
    assert [type(c).__name__ for c in commands] == [
        "RecordPersonDetails", "RecordDetentionStarted", "RecordLeftHospital",
        "RecordLegalStatusChanged"]
    assert (commands[-1].event, commands[-1].date) == ("cto-start", date(2026, 3, 1))  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_withdrawn_encounter_cancels_the_detention(status: str,
                                                   fhir_trust: SourceMappingConfig) -> None:
    _, cancel = mapped(s.bundle(s.PATIENT, encounter(status=status)), fhir_trust)
    assert isinstance(cancel, CancelEvent)
    assert (cancel.cancels, cancel.episode_ref, cancel.scope) == (
        "detention-started", "V0001", "episode")


def test_withdrawn_encounter_retracts_all_the_encounter_told(
        fhir_trust: SourceMappingConfig) -> None:
    """Applied: the cancel takes back the detention and the leaving and CTO start the same
    Bundle told of that encounter; the Patient's demographics are no event and stay."""
    config = fhir_trust.model_copy(update={"code_map": {f"{s.WALES}|35": "CTO"}})
    enc = encounter(extension=[s.legal_status("admission", "03"),
                               s.legal_status("discharge", "35", s.WALES)])
    person = Person(id="p-1")
    for command in map_bundle(s.bundle(s.PATIENT, enc), config, RECEIVED, source_ref="b-1"):
        person.record(command)
    withdrawn = encounter(status="entered-in-error")
    for command in map_bundle(s.bundle(s.PATIENT, withdrawn), config, RECEIVED,
                              source_ref="b-2"):
        person.record(command)
    assert [(f.kind, f.command.provenance.source_ref, f.retracted_by) for f in person.facts] == [
        ("person-details", "b-1", None), ("detention-started", "b-1", 6),
        ("left-hospital", "b-1", 6), ("legal-status", "b-1", 6),
        ("person-details", "b-2", None), ("cancel", "b-2", None)]


def test_withdrawn_encounter_retracts_what_every_version_told(
        fhir_trust: SourceMappingConfig) -> None:
    """A FHIR trust sends each version of the Encounter (in progress, then finished onto a
    CTO): withdrawing it takes back the detention both versions told, the leaving and the CTO;
    another encounter of the same person stays."""
    config = fhir_trust.model_copy(update={"code_map": {f"{s.WALES}|35": "CTO"}})
    in_progress = encounter(status="in-progress", period={"start": "2026-01-05T09:30:00Z"},
                            extension=[s.legal_status("admission", "03")])
    finished = encounter(extension=[s.legal_status("admission", "03"),
                                    s.legal_status("discharge", "35", s.WALES)])
    other = encounter(identifier=[{"value": "V0002"}], status="in-progress",
                      period={"start": "2026-06-01T09:30:00Z"},
                      extension=[s.legal_status("admission", "03")])
    withdrawn = encounter(status="entered-in-error",
                          extension=[s.legal_status("admission", "03")])
    person = Person(id="p-1")
    for n, version in enumerate([in_progress, finished, other, withdrawn]):
        for command in map_bundle(s.bundle(s.PATIENT, version), config, RECEIVED,
                                  source_ref=f"b-{n}"):
            person.record(command)
    live = [(f.kind, f.command.provenance.source_ref) for f in person.live_facts()
            if f.kind != "person-details"]
    assert live == [("detention-started", "b-2")]
    pos = compute_position(person, date(2026, 7, 1))
    assert [(d.ref, d.start, d.end) for d in pos.detentions] == [
        ("V0002", date(2026, 6, 1), None)]
    assert not pos.on_cto


def test_withdrawn_encounter_of_a_cto_patient_takes_the_cto_back(
        fhir_trust: SourceMappingConfig) -> None:
    admitted = encounter(status="in-progress", period={"start": "2026-01-05T09:30:00Z"},
                         extension=[s.legal_status("admission", "CTO")])
    withdrawn = encounter(status="entered-in-error",
                          extension=[s.legal_status("admission", "CTO")])
    person = Person(id="p-1")
    for n, version in enumerate([admitted, withdrawn]):
        for command in map_bundle(s.bundle(s.PATIENT, version), fhir_trust, RECEIVED,
                                  source_ref=f"b-{n}"):
            person.record(command)
    assert [f.kind for f in person.live_facts()] == ["person-details", "person-details"]
    assert not compute_position(person, date(2026, 7, 1)).on_cto


@pytest.mark.parametrize(("change", "code", "location"), [
    ({"status": "bogus"}, "unknown-code", "Bundle.entry[1].resource.status"),
    ({"period": {"start": "2026-02-30"}}, "invalid-value",
     "Bundle.entry[1].resource.period.start"),
    ({"period": {"end": "2026-03-01"}}, "missing-field", "Bundle.entry[1].resource.period.start"),
    ({"period": {"start": "2026-01-05"}}, "missing-field", "Bundle.entry[1].resource.period.end"),
    ({"colour": "blue"}, "invalid-value", "Bundle.entry[1].resource.colour"),
    ({"class": None}, "missing-field", "Bundle.entry[1].resource.class"),
    ({"subject": {"reference": "urn:uuid:nobody"}}, "missing-field",
     "Bundle.entry[1].resource.subject.reference"),
    ({"extension": [s.legal_status("transfer", "03")]}, "unknown-code",
     "Bundle.entry[1].resource.extension[0].extension[0].valueCodeableConcept.coding[0].code"),
    ({"extension": [s.legal_status("admission", "11")]}, "unknown-code",
     "Bundle.entry[1].resource.extension[0].extension[1].valueCodeableConcept.coding[0].code"),
    ({"extension": [{"url": s.LEGAL_STATUS_URL, "extension": [
        s.legal_status("admission", "03")["extension"][0]]}]}, "missing-field",
     "Bundle.entry[1].resource.extension[0].extension"),
])
def test_encounter_errors_have_locations(change: dict[str, Any], code: str, location: str,
                                         fhir_trust: SourceMappingConfig) -> None:
    enc = encounter(**change)
    if change.get("class", "") is None:
        del enc["class"]
    error = error_of(s.bundle(s.PATIENT, enc), fhir_trust)
    assert (error.code, error.location) == (code, location)


def test_invalid_nhs_number_in_a_patient(fhir_trust: SourceMappingConfig) -> None:
    patient = copy.deepcopy(s.PATIENT)
    patient["identifier"][0]["value"] = s.NHS_BAD_CHECK
    error = error_of(s.bundle(patient), fhir_trust)
    assert (error.code, error.location) == ("invalid-value",
                                            "Bundle.entry[0].resource.identifier[0].value")


@pytest.mark.parametrize(("bundle", "code", "location"), [
    ([], "unparseable", "Bundle.resourceType"),
    ({"resourceType": "Patient"}, "unparseable", "Bundle.resourceType"),
    ({"resourceType": "Bundle", "type": "searchset"}, "unknown-code", "Bundle.type"),
    ({"resourceType": "Bundle", "type": "batch", "entry": {}}, "invalid-value", "Bundle.entry"),
    ({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"resourceType": "Nope"}}]},
     "invalid-value", "Bundle.entry[0].resource.resourceType"),
    ({"resourceType": "Bundle", "type": "batch", "entry": [{"fullUrl": 5}]}, "invalid-value",
     "Bundle.entry[0].fullUrl"),
])
def test_bundle_shape_errors(bundle: Any, code: str, location: str,
                             fhir_trust: SourceMappingConfig) -> None:
    error = error_of(bundle, fhir_trust)
    assert (error.code, error.location) == (code, location)


def test_s117_episode_active_and_finished(fhir_trust: SourceMappingConfig) -> None:
    [confirmed] = map_episode_of_care(s.EPISODE_S117, fhir_trust, RECEIVED)
    assert isinstance(confirmed, RecordS117Confirmed)
    assert (confirmed.start, confirmed.person.local_id) == (date(2026, 3, 1), "pat-1")
    assert confirmed.provenance.source_ref == "EpisodeOfCare"
    finished = {**s.EPISODE_S117, "id": "eoc-1", "status": "finished",
                "period": {"start": "2026-03-01", "end": "2027-02-01"}}
    confirmed, ended = map_episode_of_care(finished, fhir_trust, RECEIVED)
    assert isinstance(ended, RecordS117Ended)
    assert (ended.date, ended.council_signoff, ended.icb_signoff) == (date(2027, 2, 1), None,
                                                                      None)
    assert ended.provenance.source_ref == "EpisodeOfCare/eoc-1"


def test_other_episodes_are_not_ours(fhir_trust: SourceMappingConfig) -> None:
    cpa = {**s.EPISODE_S117, "type": [{"coding": [{"system": "urn:x", "code": "cpa"}]}]}
    assert map_episode_of_care(cpa, fhir_trust, RECEIVED) == []


@pytest.mark.parametrize(("change", "code", "location"), [
    ({"status": "done"}, "unknown-code", "EpisodeOfCare.status"),
    ({"status": "finished"}, "missing-field", "EpisodeOfCare.period.end"),
    ({"period": {}}, "missing-field", "EpisodeOfCare.period.start"),
    ({"patient": {"reference": "Group/1"}}, "missing-field", "EpisodeOfCare.patient.reference"),
])
def test_episode_errors(change: dict[str, Any], code: str, location: str,
                        fhir_trust: SourceMappingConfig) -> None:
    with pytest.raises(MappingError) as caught:
        map_episode_of_care({**s.EPISODE_S117, **change}, fhir_trust, RECEIVED)
    assert (caught.value.code, caught.value.location) == (code, location)


def test_single_resources_validate_with_their_own_paths(fhir_trust: SourceMappingConfig) -> None:
    [details] = map_patient(s.PATIENT, fhir_trust, RECEIVED, source_ref="msg-7")
    assert details.provenance.source_ref == "msg-7"
    with pytest.raises(MappingError) as caught:
        map_encounter(encounter(period={"start": "yesterday"}), fhir_trust, RECEIVED)
    assert caught.value.location == "Encounter.period.start"
    with pytest.raises(MappingError) as caught:
        map_patient(s.ENCOUNTER_S2_TO_S3, fhir_trust, RECEIVED)
    assert caught.value.location == "Patient.resourceType"


def test_patient_without_any_identity(fhir_trust: SourceMappingConfig) -> None:
    with pytest.raises(MappingError) as caught:
        map_patient({"resourceType": "Patient", "gender": "male"}, fhir_trust, RECEIVED)
    assert (caught.value.code, caught.value.location) == ("missing-field", "Patient.identifier")
