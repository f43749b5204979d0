"""ACK contents: swapped parties, MSA-2 echo, ERR in v2.5 style (and ERR-1 for v2.3/2.4)."""

from __future__ import annotations

from datetime import datetime

import hl7
import pytest
from hl7apy.parser import parse_message

from mapping.errors import MappingError
from mapping.hl7v2 import build_ack, parse_adt
from mapping.hl7v2_ack import success_ack

from . import samples as s

NOW = datetime(2026, 3, 2, 9, 0, 0)


def ack(inbound: object, code: str, error: BaseException | None = None,
        text: str | None = None) -> hl7.Message:
    er7 = build_ack(inbound, code, error, text, control_id="ACK-1", now=NOW)  # type: ignore[arg-type]
    assert "\n" not in er7
    return hl7.parse(er7)


def test_aa_swaps_parties_and_echoes_the_control_id() -> None:
    msg = ack(parse_adt(s.A01_SECTION_3), "AA")
    assert [str(seg[0]) for seg in msg] == ["MSH", "MSA"]
    assert str(msg["MSH.F3"]) == "S117HUB" and str(msg["MSH.F4"]) == "HUB"
    assert str(msg["MSH.F5"]) == "EPR" and str(msg["MSH.F6"]) == "RX1"
    assert str(msg["MSH.F7"]) == "20260302090000"
    assert str(msg.segment("MSH")[9]) == "ACK^A01^ACK"
    assert str(msg["MSH.F10"]) == "ACK-1"
    assert str(msg["MSH.F11"]) == "P"
    assert str(msg["MSH.F12"]) == "2.4"
    assert str(msg["MSA.F1"]) == "AA"
    assert str(msg["MSA.F2"]) == "MSG-A01"


def test_raw_text_and_parsed_message_give_the_same_ack() -> None:
    assert build_ack(s.A01_LF, "AA", control_id="X", now=NOW) == build_ack(
        parse_adt(s.A01_SECTION_3), "AA", control_id="X", now=NOW)


def test_a_fresh_control_id_each_time() -> None:
    first = hl7.parse(build_ack(s.A01_SECTION_3, "AA"))
    second = hl7.parse(build_ack(s.A01_SECTION_3, "AA"))
    assert str(first["MSH.F10"]) != str(second["MSH.F10"])
    assert str(first["MSH.F10"]) and len(str(first["MSH.F10"])) <= 20


def test_ae_carries_err_with_location_code_and_severity() -> None:
    error = MappingError("invalid-value", "NHS number fails the modulus-11 check digit",
                         location="PID-3")
    msg = ack(s.A01_BAD_NHS, "AE", error)
    assert [str(seg[0]) for seg in msg] == ["MSH", "MSA", "ERR"]
    err = msg.segment("ERR")
    assert str(err[2]) == "PID^1^3"
    assert str(err[3]) == "102^Data type error^HL70357"
    assert str(err[4]) == "E"
    assert msg.unescape(str(err[8])) == error.message
    # a v2.4 sender reads ERR-1 (ELD), the only ERR field its version has
    assert str(err[1]) == "PID^1^3^102&Data type error&HL70357"
    assert str(msg["MSA.F2"]) == "MSG-A01"
    assert msg.unescape(str(msg.segment("MSA")[3])) == error.message[:80]


def test_v25_senders_get_err_without_the_legacy_field() -> None:
    error = MappingError("unknown-code", "code S99 unknown", location="ZLS-1")
    msg = ack(s.A01_V251, "AE", error)
    err = msg.segment("ERR")
    assert str(msg["MSH.F12"]) == "2.5.1"
    assert str(err[1]) == ""
    assert str(err[2]) == "ZLS^1^1"
    assert str(err[3]) == "103^Table value not found^HL70357"


@pytest.mark.parametrize(("error", "code", "location"), [
    (MappingError("missing-field", "x", location="MSH-10"), "101", "MSH^1^10"),
    (MappingError("unsupported-event", "x", location="MSH-9.2"), "201", "MSH^1^9^1^2"),
    (MappingError("unsupported-message-type", "x", location="MSH-9.1"), "200", "MSH^1^9^1^1"),
    (MappingError("unparseable", "x", location="MSH"), "100", "MSH^1"),
    (RuntimeError("database down"), "207", ""),
])
def test_err_codes_from_table_0357(error: BaseException, code: str, location: str) -> None:
    err = ack(s.A01_V251, "AE", error).segment("ERR")
    assert str(err[3]).split("^")[0] == code
    assert str(err[2]) == location


def test_ar_for_garbage_has_no_control_id_to_echo() -> None:
    error = MappingError("unparseable", "the message does not start with an MSH segment",
                         location="MSH")
    msg = ack(s.GARBAGE, "AR", error)
    assert str(msg["MSA.F1"]) == "AR"
    assert str(msg["MSA.F2"]) == ""
    assert str(msg.segment("MSH")[9]) == "ACK"
    assert str(msg["MSH.F12"]) == "2.4"
    assert str(msg.segment("ERR")[3]).startswith("100^")


def test_ar_salvages_what_a_broken_header_still_says() -> None:
    broken = "MSH|^~\\&|EPR|RX1|S117HUB|HUB|20260105||ADT^A01|C-9|P|2.3|||AL\rPID|1|\\X"
    msg = ack(broken.replace("ADT^A01", "ADT^A01"), "AR",
              MappingError("unparseable", "x", location="MSH"))
    assert str(msg["MSA.F2"]) == "C-9"
    assert str(msg.segment("MSH")[9]) == "ACK^A01^ACK"
    assert str(msg["MSH.F5"]) == "EPR"

    missing_id = ack(s.MSH_WITHOUT_CONTROL_ID, "AR",
                     MappingError("missing-field", "no id", location="MSH-10"))
    assert str(missing_id["MSA.F2"]) == ""
    assert str(missing_id.segment("ERR")[2]) == "MSH^1^10"


@pytest.mark.parametrize("text", ["bad value a|b^c&d~e\\f", "literal \\E\\ and \\F\\ stay"])
def test_text_with_separators_is_escaped(text: str) -> None:
    msg = ack(s.A01_SECTION_3, "AE", MappingError("invalid-value", text, location="ZLS-2"))
    assert msg.unescape(str(msg.segment("MSA")[3])) == text
    assert msg.unescape(str(msg.segment("ERR")[8])) == text


@pytest.mark.parametrize("code", ["CA", "CE", "CR"])
def test_enhanced_mode_codes(code: str) -> None:
    assert str(ack(s.A01_SECTION_3, code)["MSA.F1"]) == code


def test_unknown_ack_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="ACK code"):
        build_ack(s.A01_SECTION_3, "XX")  # type: ignore[arg-type]


def test_hl7apy_reads_our_ack_back() -> None:
    er7 = build_ack(s.A01_V251, "AE", MappingError("missing-field", "x", location="PV1-45"))
    message = parse_message(er7, find_groups=False)
    assert message.msa.msa_2.to_er7() == "MSG-A01"
    assert message.err.err_2.to_er7() == "PV1^1^45"


@pytest.mark.parametrize("inbound", [s.A01_SECTION_3, s.A01_V251, s.A03_DISCHARGE,
                                     s.A01_SECTION_3.replace("|EPR|", "|EPR^X&Y|"),
                                     s.A01_SECTION_3.replace("|P|", "|T|"),
                                     s.A01_SECTION_3.replace(
                                         "|EPR|RX1|S117HUB|HUB|",
                                         "|EPR^1.2.3^ISO|RX1^2.16.840.1.113883^ISO|"
                                         "S117HUB^1.2.826.0.1^ISO|HUB^^L|"),
                                     s.A01_V251.replace("|EPR|", "|^1.2.3^ISO|")])
@pytest.mark.parametrize("code", ["AA", "CA"])
def test_the_cached_success_ack_is_what_hl7apy_builds(inbound: str, code: str) -> None:
    parsed = parse_adt(inbound)
    for control_id, when in (("ACK-1", NOW), ("A1b2.00000007", datetime(2027, 1, 2, 3, 4, 5))):
        assert success_ack(parsed, code, control_id=control_id, now=when) == build_ack(  # type: ignore[arg-type]
            parsed, code, control_id=control_id, now=when)  # type: ignore[arg-type]


def test_a_control_id_that_needs_escaping_takes_the_full_path() -> None:
    odd = parse_adt(s.A01_SECTION_3.replace(
        parse_adt(s.A01_SECTION_3).control_id, "ID\\S\\1", 1))
    assert "^" in odd.control_id
    er7 = success_ack(odd, "AA", control_id="ACK-2", now=NOW)
    assert er7 == build_ack(odd, "AA", control_id="ACK-2", now=NOW)
    assert str(hl7.parse(er7).segment("MSA")[2]) == "ID\\S\\1"


def test_one_template_serves_every_control_id_of_a_sender() -> None:
    from mapping import hl7v2_ack

    hl7v2_ack._TEMPLATES.clear()
    for n in range(5):
        inbound = parse_adt(s.adt("A01", s.evn("A01"), s.pid(), s.pv1(), control_id=f"C{n}"))
        success_ack(inbound, "AA", control_id=f"ACK-{n}", now=NOW)
    assert len(hl7v2_ack._TEMPLATES) == 1
