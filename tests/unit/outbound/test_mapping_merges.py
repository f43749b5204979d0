"""Merges as partners receive them (pure): the HL7 ADT^A40, the FHIR Patient with its merge
links and the transaction Bundle, the council document's ``merged_into`` / ``merged_from``;
which merge links a person's next document reports as changed; and that no merge notice
carries a source's local identifiers (only the register id and NHS number partners were
sent). Synthetic data only."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import hl7
import pytest

from mapping.errors import MappingError
from mapping.outbound import (
    COUNCIL_EXAMPLE,
    CouncilStatusDocument,
    EntitlementState,
    FieldChange,
    LinkedRecord,
    PersonState,
    RecordRef,
    StatusChange,
    adt_a08,
    adt_a40,
    council_document,
    merge_bundle,
    patient,
)
from register_core.services.outbound import MergeLinks, link_changes

AT = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
SURVIVOR = LinkedRecord(
    register_id="s-1", nhs_number="9990000018", family_name="Payne", given_name="Neil",
    birth_date=dt.date(1979, 3, 14))
MERGED_RECORD = RecordRef(register_id="m-1", nhs_number="9990000026")


def merged_away(**fields: object) -> StatusChange:
    """The emptied person's change: status none, merged into the survivor."""
    values: dict[str, object] = {
        "change_id": 9, "person": PersonState(register_id="m-1"), "family_name": "Paine",
        "given_name": "Neil\rEVN|x", "birth_date": dt.date(1979, 3, 14),
        "entitlement": EntitlementState(status="none"),
        "changes": [FieldChange(field="entitlement.status", old="active", new="none"),
                    FieldChange(field="person.merged_into", old=None, new="s-1")],
        "notice_received_at": AT, "changed_at": AT, "merged_into": SURVIVOR,
        "merged_record": MERGED_RECORD, **fields}
    return StatusChange.model_validate(values)


def survivor_change(merged_from: list[RecordRef] | None = None,
                    changes: list[FieldChange] | None = None) -> StatusChange:
    return StatusChange(
        change_id=10, person=PersonState(register_id="s-1", nhs_number="9990000018"),
        family_name="Payne", given_name="Neil", birth_date=dt.date(1979, 3, 14),
        entitlement=EntitlementState(status="active", start=dt.date(2026, 3, 2)),
        changes=changes if changes is not None else [
            FieldChange(field="person.merged_from", old=None, new="m-1")],
        notice_received_at=AT, changed_at=AT,
        merged_from=merged_from if merged_from is not None else [MERGED_RECORD])


# -- HL7 v2 ----------------------------------------------------------------------------------

def test_the_a40_names_the_survivor_in_pid_and_the_merged_record_in_mrg() -> None:
    text = adt_a40(merged_away(), "KEY-40", now=AT, receiving_application="PAS",
                   receiving_facility="RX2", version="2.4")
    message = hl7.parse(text)
    assert [str(segment[0]) for segment in message] == ["MSH", "EVN", "PID", "MRG"]
    msh = message.segment("MSH")
    assert (str(msh[9]), str(msh[10]), str(msh[12])) == ("ADT^A40^ADT_A39", "KEY-40", "2.4")
    assert str(message.segment("EVN")[1]) == "A40"

    def ids(segment: hl7.Segment, index: int) -> list[tuple[str, str, str]]:
        return [(message.unescape(str(rep[0])), str(rep[3]), str(rep[4]))
                for rep in segment[index]]

    # PID-3 and MRG-1 as the A08 names people: NHS number and register id, no source's own.
    assert ids(message.segment("PID"), 3) == [("9990000018", "NHS", "NH"),
                                              ("s-1", "S117HUB", "PI")]
    assert str(message.segment("PID")[5]) == "Payne^Neil"
    assert str(message.segment("PID")[7]) == "19790314"
    mrg = message.segment("MRG")
    assert ids(mrg, 1) == [("9990000026", "NHS", "NH"), ("m-1", "S117HUB", "PI")]
    assert message.unescape(str(mrg[7][0][1])) == "Neil\rEVN|x"  # no segment injected


def test_an_a40_without_a_survivor_is_refused_and_an_a08_ignores_the_links() -> None:
    with pytest.raises(MappingError):
        adt_a40(merged_away(merged_into=None), "KEY-1", now=AT)
    # The survivor's status goes as an A08 as usual, the link change listed in ZSE-12.
    message = hl7.parse(adt_a08(survivor_change(), "KEY-2", now=AT))
    assert [str(rep) for rep in message.segment("ZSE")[12]] == ["person.merged_from"]
    assert "MRG" not in [str(segment[0]) for segment in message]


# -- FHIR R4 ---------------------------------------------------------------------------------

def test_the_merged_patient_is_inactive_and_replaced_by_the_survivor() -> None:
    resource = patient(merged_away())
    assert resource["active"] is False
    assert resource["identifier"] == [{"system": "urn:s117hub:register-id", "value": "m-1"}]
    assert resource["link"] == [{"other": {"identifier": {
        "system": "urn:s117hub:register-id", "value": "s-1"}}, "type": "replaced-by"}]
    survivor = patient(survivor_change(), "https://trust.example/Id/s117")
    assert survivor["active"] is True
    assert survivor["link"] == [{"other": {"identifier": {
        "system": "https://trust.example/Id/s117", "value": "m-1"}}, "type": "replaces"}]
    assert {"system": "https://fhir.nhs.uk/Id/nhs-number",
            "value": "9990000018"} in survivor["identifier"]
    # Un-merged: active, no links.
    alone = patient(survivor_change(merged_from=[]))
    assert alone["active"] is True and "link" not in alone


def test_the_merge_bundle_puts_patient_and_episode_in_one_transaction() -> None:
    bundle = merge_bundle(merged_away())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    requests = [entry["request"] for entry in bundle["entry"]]
    assert [r["method"] for r in requests] == ["PUT", "PUT"]
    for request, kind in zip(requests, ("Patient", "EpisodeOfCare"), strict=True):
        path, query = request["url"].split("?")
        assert path == kind
        assert urllib.parse.parse_qs(query) == {"identifier": ["urn:s117hub:register-id|m-1"]}
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient",
                                                                        "EpisodeOfCare"]
    assert bundle["entry"][1]["resource"]["status"] == "cancelled"  # status none
    # A retry sends the same Bundle (entry fullUrls are fixed by the person).
    assert merge_bundle(merged_away()) == bundle
    assert len({e["fullUrl"] for e in bundle["entry"]}) == 2


# -- council REST ----------------------------------------------------------------------------

def test_the_council_document_names_the_survivor_without_names() -> None:
    doc = council_document(merged_away(), "KEY1")
    CouncilStatusDocument.model_validate(doc)
    assert doc["merged_into"] == {"register_id": "s-1", "nhs_number": "9990000018"}
    assert doc["merged_from"] == []
    assert "Payne" not in str(doc) and "Paine" not in str(doc)
    assert {"field": "person.merged_into", "old": None, "new": "s-1"} in doc["changes"]
    survivor = council_document(survivor_change(), "KEY2")
    assert survivor["merged_into"] is None
    assert survivor["merged_from"] == [{"register_id": "m-1", "nhs_number": "9990000026"}]


def test_merge_notices_carry_no_source_local_identifiers() -> None:
    """Least privilege: partners know a record by the register id and NHS number the hub
    sent them; another system's local ids (a trust's MRN to a council) are not theirs to
    have, and the published schema offers no place for them."""
    for model in (RecordRef, LinkedRecord):
        assert "identifiers" not in model.model_fields
    with pytest.raises(ValueError):
        RecordRef.model_validate({"register_id": "s-1", "identifiers": [
            {"source": "trust-a", "value": "RX1-802"}]})
    schema = CouncilStatusDocument.model_json_schema()
    assert set(schema["$defs"]["RecordRef"]["properties"]) == {"register_id", "nhs_number"}
    assert "identifiers" not in str(COUNCIL_EXAMPLE)


def test_the_contract_only_grows_and_documents_queued_before_still_render() -> None:
    """Architecture section 7: the JSON names keep their meaning; merges only add fields.
    A change queued before this version (no merge fields) is rendered as before."""
    CouncilStatusDocument.model_validate(COUNCIL_EXAMPLE)
    old = survivor_change(merged_from=[], changes=[
        FieldChange(field="entitlement.status", old="pending", new="active")]).model_dump(
        mode="json", exclude={"merged_into", "merged_record", "merged_from"})
    rendered = StatusChange.model_validate(old)
    assert rendered.merged_into is None and not rendered.links_changed
    doc = council_document(rendered, "KEY3")
    assert set(doc) == {"schema_version", "type", "delivery_id", "change_id", "occurred_at",
                        "notice_received_at", "person", "entitlement", "changes",
                        "merged_into", "merged_from"}


# -- which links changed ---------------------------------------------------------------------

@pytest.mark.parametrize(("told", "links", "expected"), [
    ((None, ()), MergeLinks(merged_into="s-1"),
     [("person.merged_into", None, "s-1")]),
    (("s-1", ()), MergeLinks(), [("person.merged_into", "s-1", None)]),
    (("s-1", ()), MergeLinks(merged_into="s-1"), []),
    ((None, ("m-1",)), MergeLinks(brought=(("m-1", {}), ("m-2", {}))),
     [("person.merged_from", None, "m-2")]),
    ((None, ("m-1", "m-2")), MergeLinks(brought=(("m-2", {}),)),
     [("person.merged_from", "m-1", None)]),
])
def test_link_changes_are_what_the_last_document_did_not_say(
        told: tuple[str | None, tuple[str, ...]], links: MergeLinks,
        expected: list[tuple[str, str | None, str | None]]) -> None:
    assert [(c.field, c.old, c.new) for c in link_changes(told, links)] == expected
