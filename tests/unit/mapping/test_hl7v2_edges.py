"""HL7 v2 edge pieces without a socket: what counts as the same message sent again, ERR-3
conditions the mapping codes do not name (203, 205), the answer to an oversized frame, and
the MLLP reader's handling of frames over its limit. The wire behaviour is in
tests/integration/test_mllp_edges.py."""

from __future__ import annotations

import hl7

from connectors.hl7v2.framing import HEAD_BYTES, FrameReader, Oversized, frame
from mapping.hl7v2_ack import (
    DUPLICATE_KEY,
    UNSUPPORTED_VERSION,
    Hl7Condition,
    build_ack,
    fallback_ack,
    oversized_answer,
)
from mapping.hl7v2_parse import SUPPORTED_VERSIONS, comparable, parse_adt

from .samples import A01_SECTION_3, A01_V23, A01_V251


def _ack(er7: str) -> hl7.Message:
    return hl7.parse(er7)


# -- the same message sent again --------------------------------------------------------------

def test_a_resend_compares_equal_whatever_its_msh_7_and_line_endings() -> None:
    resent = A01_SECTION_3.replace("|20260105093000||ADT", "|20260105101500||ADT", 1)
    assert resent != A01_SECTION_3
    assert comparable(resent) == comparable(A01_SECTION_3)
    assert comparable(A01_SECTION_3.replace("\r", "\r\n")) == comparable(A01_SECTION_3)
    assert comparable(A01_SECTION_3.replace("\r", "\n")) == comparable(A01_SECTION_3)


def test_any_other_difference_is_a_different_message() -> None:
    assert comparable(A01_SECTION_3.replace("Testwood", "Testwold")) != comparable(
        A01_SECTION_3)
    assert comparable(A01_SECTION_3.replace("|P|2.4|", "|T|2.4|")) != comparable(A01_SECTION_3)
    # MSH-7 is the seventh field whatever the field separator
    other = A01_SECTION_3.replace("|", "#")
    assert comparable(other.replace("#20260105093000#", "#20990101#", 1)) == comparable(other)
    assert comparable("not HL7") == "not HL7"


def test_the_contract_versions_are_supported() -> None:
    assert {"2.3", "2.3.1", "2.4", "2.5", "2.5.1"} <= SUPPORTED_VERSIONS
    assert not {"2.6", "2.7", "2.8", "banana", ""} & SUPPORTED_VERSIONS
    assert {parse_adt(m).version for m in (A01_SECTION_3, A01_V23, A01_V251)} <= (
        SUPPORTED_VERSIONS)


# -- ERR conditions of their own --------------------------------------------------------------

def test_a_condition_goes_to_err_3_built_by_hl7apy_and_by_hand() -> None:
    for condition, location in ((UNSUPPORTED_VERSION, "MSH-12"), (DUPLICATE_KEY, "MSH-10")):
        error = Hl7Condition(condition, "refused", location=location)
        assert error.code == "invalid-value"  # stored as any mapping error
        for version in ("2.3", "2.5"):
            message = A01_SECTION_3.replace("|P|2.4|", f"|P|{version}|")
            built = build_ack(message, "AR", error, control_id="OWN")
            err = _ack(built).segment("ERR")
            assert str(err[3]) == f"{condition[0]}^{condition[1]}^HL70357"
            assert str(err[8]) == "refused"
            fallback = _ack(fallback_ack(message, "AR", error, control_id="OWN"))
            assert str(fallback.segment("ERR")[3]) == str(err[3])
            if version == "2.3":  # the ELD of v2.3/2.4 carries it too
                assert str(err[1]).endswith(f"{condition[0]}&{condition[1]}&HL70357")


# -- the answer to an oversized frame ---------------------------------------------------------

def test_an_oversized_frame_is_answered_ar_echoing_msh_10_from_its_head() -> None:
    original = A01_SECTION_3.replace("|||AL|NE\r", "\r", 1)  # original acknowledgement mode
    assert original != A01_SECTION_3
    head = original.encode()[:300]
    ack, control_id = oversized_answer(head, 5_000_000, 4_194_304)
    parsed = _ack(ack)
    assert (str(parsed.segment("MSA")[1]), str(parsed.segment("MSA")[2])) == ("AR", "MSG-A01")
    assert control_id == "MSG-A01"
    assert "5000000 bytes, over the 4194304-byte limit" in str(parsed.segment("ERR")[8])
    assert str(parsed.segment("MSH")[5]) == "EPR"  # the sender's parties, swapped


def test_an_oversized_frame_in_enhanced_mode_is_answered_cr() -> None:
    enhanced = A01_SECTION_3  # samples.msh sets MSH-15 AL
    ack, _ = oversized_answer(enhanced.encode()[:200], 10, 5)
    assert str(_ack(ack).segment("MSA")[1]) == "CR"


def test_an_oversized_frame_without_a_whole_msh_line_gets_the_fallback_ack() -> None:
    for head in (b"MSH|^~\\&|EPR|RX1|S117HUB|HUB|20260105||ADT^A01|CUT-SHO", b"\x00\xff garbage",
                 b""):
        ack, control_id = oversized_answer(head, 10, 5)
        parsed = _ack(ack)
        assert str(parsed.segment("MSA")[1]) == "AR" and str(parsed.segment("MSA")[2]) == ""
        assert control_id is None and "limit" in str(parsed.segment("ERR")[8])


# -- the MLLP reader --------------------------------------------------------------------------

def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_an_oversized_frame_read_in_pieces_is_reported_once_at_its_end() -> None:
    big = b"MSH|^~\\&|big\r" + b"x" * 500
    stream = frame(big) + frame(b"next") + b"\n"
    for size in (1, 2, 3, 7, 64, 1000):
        reader = FrameReader(max_frame_bytes=100)
        events: list[bytes | Oversized] = []
        for chunk in _chunks(stream, size):
            events.extend(reader.feed_events(chunk))
        assert events == [Oversized(big[:HEAD_BYTES], len(big)), b"next"], size
        assert reader.oversized_frames == 1 and reader.pending_bytes == 0
        assert reader.discarded_bytes == len(frame(big)) + 1


def test_an_oversized_frame_in_one_read_is_reported_too() -> None:
    reader = FrameReader(max_frame_bytes=10)
    assert reader.feed_events(frame(b"y" * 11) + frame(b"z" * 10)) == [
        Oversized(b"y" * 11, 11), b"z" * 10]


def test_an_oversized_frame_cut_off_by_a_new_one_is_not_reported() -> None:
    reader = FrameReader(max_frame_bytes=10)
    assert reader.feed_events(b"\x0b" + b"y" * 50) == []
    assert reader.feed_events(b"y" * 5 + frame(b"ok")) == [b"ok"]
    assert reader.oversized_frames == 1


def test_feed_still_returns_frames_only() -> None:
    reader = FrameReader(max_frame_bytes=10)
    assert reader.feed(frame(b"y" * 11) + frame(b"ok")) == [b"ok"]
    assert reader.oversized_frames == 1


def test_the_head_kept_is_bounded() -> None:
    reader = FrameReader(max_frame_bytes=HEAD_BYTES * 2)
    [event] = reader.feed_events(frame(b"h" * (HEAD_BYTES * 3)))
    assert isinstance(event, Oversized)
    assert len(event.head) == HEAD_BYTES and event.size == HEAD_BYTES * 3
