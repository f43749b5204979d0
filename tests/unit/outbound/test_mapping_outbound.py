"""Register state → council JSON, FHIR EpisodeOfCare and HL7 ADT^A08 with ZSE (pure)."""

from __future__ import annotations

import datetime as dt

import hl7
import pytest
from fhir.resources.R4B.episodeofcare import EpisodeOfCare

from mapping.config import SourceMappingConfig
from mapping.errors import MappingError
from mapping.fhir_r4 import map_episode_of_care
from mapping.outbound import (
    CouncilStatusDocument,
    Ended,
    EntitlementState,
    FieldChange,
    PersonState,
    StatusChange,
    adt_a08,
    council_document,
    episode_identifier,
    episode_of_care,
    read_ack,
)

AT = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


def change(status: str = "active", **entitlement: object) -> StatusChange:
    ent = {"status": status, "start": dt.date(2026, 3, 1), "trigger_section": "03",
           "responsible_council": "E10000034", "responsible_icb": "QGH", **entitlement}
    return StatusChange(
        change_id=42, person=PersonState(register_id="p-1", nhs_number="9990000018"),
        family_name="O'Brien|Smith^Jr", given_name="Robin", birth_date=dt.date(1980, 2, 2),
        entitlement=EntitlementState.model_validate(ent),
        changes=[FieldChange(field="entitlement.status", old="pending", new=status)],
        notice_received_at=AT, changed_at=AT)


def test_the_council_document_follows_its_published_schema() -> None:
    doc = council_document(change(), "KEY1")
    assert CouncilStatusDocument.model_validate(doc).delivery_id == "KEY1"
    assert doc["entitlement"]["status"] == "active" and doc["change_id"] == 42
    assert "family_name" not in str(doc)  # councils get ids, not names
    example = CouncilStatusDocument.model_json_schema()["examples"][0]
    CouncilStatusDocument.model_validate(example)


@pytest.mark.parametrize("status, fhir_status", [("pending", "planned"), ("active", "active"),
                                                 ("ended", "finished"),
                                                 ("none", "cancelled")])
def test_episode_of_care_is_valid_r4b(status: str, fhir_status: str) -> None:
    ended = Ended(date=dt.date(2026, 5, 20), reason="joint review") if status == "ended" else None
    resource = episode_of_care(change(status, ended=ended))
    episode = EpisodeOfCare.model_validate(resource)
    assert episode.status == fhir_status
    assert resource["identifier"] == [{"system": "urn:s117hub:register-id", "value": "p-1"}]
    assert resource["patient"]["identifier"]["value"] == "9990000018"
    assert resource["managingOrganization"]["identifier"]["value"] == "QGH"
    assert episode_identifier(change()) == "urn:s117hub:register-id|p-1"


def test_our_episode_of_care_reads_back_as_the_same_entitlement() -> None:
    config = SourceMappingConfig(source_id="trust-a", kind="fhir-r4")
    [confirmed] = map_episode_of_care(episode_of_care(change()), config, AT)
    assert confirmed.start == dt.date(2026, 3, 1)  # type: ignore[attr-defined]


def test_adt_a08_carries_the_status_in_zse() -> None:
    text = adt_a08(change("ended", ended=Ended(date=dt.date(2026, 5, 20), reason="met")),
                   "KEY0000000000000001", now=AT, receiving_application="PAS",
                   receiving_facility="RX2")
    message = hl7.parse(text)
    msh = message.segment("MSH")
    assert str(msh[9]) == "ADT^A08^ADT_A01" and str(msh[10]) == "KEY0000000000000001"
    assert (str(msh[5]), str(msh[6]), str(msh[12])) == ("PAS", "RX2", "2.4")
    pid = message.segment("PID")
    assert str(pid[3][0][0]) == "9990000018" and str(pid[3][1][0]) == "p-1"
    assert message.unescape(str(pid[5][0][0])) == "O'Brien|Smith^Jr"
    zse = message.segment("ZSE")
    assert [str(zse[i]) for i in range(1, 12)] == [
        "ended", "20260301", "20260520", "met", "03", "E10000034", "QGH", "N", "", "",
        "42"]
    assert str(zse[12]) == "entitlement.status"


def test_control_id_must_fit_msh_10() -> None:
    with pytest.raises(MappingError):
        adt_a08(change(), "X" * 21, now=AT)


@pytest.mark.parametrize("raw, code, error", [
    ("MSH|^~\\&|PAS|RX2|||2026||ACK|1|P|2.4\rMSA|AA|K1", "AA", ""),
    ("MSH|^~\\&|PAS|RX2|||2026||ACK|1|P|2.4\nMSA|AE|K1|busy\nERR|||207|E||||db down", "AE",
     "db down"),
    ("\x0bMSH|^~\\&|PAS|RX2|||2026||ACK|1|P|2.4\rMSA|AR|K1\r\x1c\r", "AR", ""),
])
def test_read_ack(raw: str, code: str, error: str) -> None:
    ack = read_ack(raw)
    assert (ack.code, ack.control_id, ack.error) == (code, "K1", error)


def test_a_reply_without_msa_is_no_ack() -> None:
    with pytest.raises(MappingError):
        read_ack("MSH|^~\\&|PAS|RX2|||2026||ACK|1|P|2.4\r")
