"""The inbox partition key: one source's messages about one person share a partition, so a
worker applies them in the order the source sent them (architecture section 1). Found by a
concurrency audit on PostgreSQL, where partitions are drained in parallel: keyed by the NHS
number when a message had one and by the local id otherwise, an A11 carrying the local id
alone was applied before the A01 (NHS number and local id) it cancelled."""

from __future__ import annotations

from datetime import datetime

from connectors.intake import person_key
from register_core.adapters.inbox import partition_for
from register_core.domain.commands import (
    CancelEvent,
    Command,
    MergePersons,
    PersonRef,
    Provenance,
    RecordDetentionStarted,
    RecordPersonDetails,
)

PROV = Provenance(source="trust-a", source_ref="m-1", received_at=datetime(2026, 1, 5, 9))
NHS = "9990000018"


def admitted(nhs: str | None, local: str | None) -> Command:
    return RecordDetentionStarted(person=PersonRef(nhs_number=nhs, local_id=local),
                                  provenance=PROV, section="03",
                                  start=datetime(2026, 1, 5).date(), episode_ref="V1")


def cancelled(nhs: str | None, local: str | None) -> Command:
    return CancelEvent(person=PersonRef(nhs_number=nhs, local_id=local), provenance=PROV,
                       cancels="detention-started", episode_ref="V1")


def test_a_sources_messages_about_a_person_share_a_partition_with_or_without_nhs() -> None:
    keys = {person_key([admitted(NHS, "L-1")], "trust-a"),
            person_key([cancelled(None, "L-1")], "trust-a"),
            person_key([RecordPersonDetails(person=PersonRef(nhs_number=NHS, local_id="L-1"),
                                            provenance=PROV)], "trust-a")}
    assert keys == {"trust-a:L-1"}


def test_without_a_local_id_the_nhs_number_keys_it() -> None:
    assert person_key([admitted(NHS, None)], "council-a") == NHS
    assert person_key([RecordPersonDetails(person=PersonRef(family_name="Testwood"),
                                           provenance=PROV)], "council-a") is None


def test_a_merge_goes_with_the_record_it_merges_away() -> None:
    """After every message about B it follows in B's partition, and B's later messages
    (which by then name the survivor's record) follow it."""
    merge = MergePersons(person=PersonRef(nhs_number=NHS, local_id="L-A"), provenance=PROV,
                         merged_local_id="L-B")
    assert person_key([merge], "trust-a") == "trust-a:L-B"
    assert partition_for(person_key([merge], "trust-a")) == partition_for(
        person_key([admitted(None, "L-B")], "trust-a"))
