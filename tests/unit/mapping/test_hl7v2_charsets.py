"""MSH-18: read from a frame's bytes before decoding, the same value the parser reads, and
echoed in the ACK (which ``ack_bytes`` encodes in that charset) when the hub decodes it."""

from __future__ import annotations

from datetime import datetime

import hl7
import pytest

from mapping.errors import MappingError
from mapping.hl7v2_ack import (
    _build,
    _by_hand,
    _Header,
    ack_bytes,
    build_ack,
    fallback_ack,
    oversized_answer,
    success_ack,
)
from mapping.hl7v2_parse import HL7_CHARSETS, declared_charset, parse_adt

NOW = datetime(2026, 3, 2, 9, 0, 0)
MSH = "MSH|^~\\&|EPR|RX1|S117HUB|HUB|20260105093000||ADT^A01^ADT_A01|CS-1|P|2.4"
PID = "PID|1||9990000018^^^NHS^NH||Lefèvre^Zoé||19800202|F"


def message(msh_13_on: str = "", *, separator: str = "\r") -> str:
    return f"{MSH}{msh_13_on}{separator}{PID}{separator}"


@pytest.mark.parametrize(("tail", "expected"), [
    ("", ""),
    ("||||", ""),  # MSH-16, nothing beyond
    ("||||||8859/1", "8859/1"),
    ("||||||8859/1|", "8859/1"),
    ("||||||unicode utf-8 ", "UNICODE UTF-8"),
    ("||||||8859/1~UNICODE UTF-8", "8859/1"),  # the first repetition is the message's
    ("||||||8859/1^x", "8859/1"),
    ("||||||8859/1&x", "8859/1"),
    ("||||||EBCDIC", "EBCDIC"),
    ("|||||||8859/1", ""),  # MSH-19
])
def test_msh_18_read_from_the_bytes_as_the_parser_reads_it(tail: str, expected: str) -> None:
    for separator in ("\r", "\n", "\r\n"):
        text = message(tail, separator=separator)
        assert declared_charset(text.encode("latin-1")) == expected
        assert parse_adt(text).charset == expected


def test_only_the_msh_line_counts_and_odd_frames_say_nothing() -> None:
    later = f"{MSH}\r{PID}||||||||||||||8859/1\r"
    assert declared_charset(later.encode()) == ""
    assert declared_charset(b"\n\n" + message("||||||ASCII").encode()) == "ASCII"
    custom = "MSH#$%\\@#EPR#RX1#S117HUB#HUB#20260105##ADT$A01#CS-2#P#2.4######8859/15$x\r"
    assert declared_charset(custom.encode()) == "8859/15"
    for garbage in (b"", b"MSH", b"MSH\r", b"not HL7", b"MSH|^~\\&" + b"|" * 40):
        assert declared_charset(garbage) == ""


def test_the_charsets_the_hub_decodes() -> None:
    assert {"ASCII", "8859/1", "8859/15", "UNICODE UTF-8"} <= set(HL7_CHARSETS)
    assert HL7_CHARSETS["8859/1"] == "latin-1" and "UNICODE" not in HL7_CHARSETS
    for codec in HL7_CHARSETS.values():  # each a superset of ASCII: MSH reads the same
        assert MSH.encode(codec) == MSH.encode("ascii")


def test_the_ack_echoes_a_charset_the_hub_decodes_and_only_that() -> None:
    latin = parse_adt(message("||||||8859/1"))
    ack = build_ack(latin, "AA", control_id="ACK-1", now=NOW)
    assert str(hl7.parse(ack).segment("MSH")[18]) == "8859/1"
    assert ack.split("\r")[0].endswith("|P|2.4||||||8859/1")
    assert success_ack(latin, "AA", control_id="ACK-1", now=NOW) == ack
    unknown = parse_adt(message("||||||EBCDIC"))
    error = MappingError("unknown-code", "x", location="MSH-18")
    refused = build_ack(unknown, "AR", error, control_id="ACK-2", now=NOW)
    assert "EBCDIC" not in refused.split("\r")[0]
    assert "MSH^1^18" in refused and "103^Table value not found" in refused
    assert ack_bytes(refused, unknown) == refused.encode("utf-8")
    plain = parse_adt(message())
    assert build_ack(plain, "AA", control_id="ACK-3", now=NOW).split("\r")[0].endswith(
        "|P|2.4")


def test_the_fallback_ack_keeps_the_charset_and_equals_hl7apys() -> None:
    parsed = parse_adt(message("||||||8859/1"))
    assert fallback_ack(parsed, "AR", None, control_id="F", now=NOW).split("\r")[0].endswith(
        "|2.4||||||8859/1")
    error = MappingError("invalid-value", "bad", location="PID-5")
    for charset in ("8859/1", "UNICODE UTF-8", ""):
        header = _Header(trigger="A01", control_id="C", version="2.4", charset=charset)
        for code, err in (("AA", None), ("AR", error)):
            assert _by_hand(header, code, err, control_id="O", now=NOW) == _build(  # type: ignore[arg-type]
                header, code, err, None, control_id="O", now=NOW)  # type: ignore[arg-type]


def test_ack_bytes_in_the_senders_charset() -> None:
    latin = parse_adt(message("||||||8859/1"))
    ack = build_ack(latin, "AE", MappingError("unknown-code", "code 'é3' unknown"),
                    control_id="ACK-1", now=NOW)
    assert b"\xe93" in ack_bytes(ack, latin)
    ascii_sender = parse_adt(message("||||||ASCII").replace("Lefèvre^Zoé", "Test^Alex"))
    ack = build_ack(ascii_sender, "AE", MappingError("invalid-value", "a value … too long"),
                    control_id="ACK-2", now=NOW)
    assert b"a value ? too long" in ack_bytes(ack, ascii_sender)  # never fails to answer
    assert ack_bytes("é", None) == "é".encode()


def test_the_oversized_answer_names_no_charset() -> None:
    head = message("||||||8859/1").encode("latin-1")[:200]
    ack, control_id = oversized_answer(head, 10_000_000, 4_194_304)
    assert control_id == "CS-1" and "8859/1" not in ack
