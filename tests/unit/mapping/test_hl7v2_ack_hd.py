"""ACKs for senders whose MSH-3..6 are full HD values (namespace id ^ universal id ^ type),
escaped characters, sub-components and control characters in them; the fallback ACK."""

from __future__ import annotations

import re
from datetime import datetime

import hl7
import pytest
from hl7apy.parser import parse_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapping import hl7v2_ack
from mapping.errors import MappingError
from mapping.hl7v2 import build_ack, parse_adt
from mapping.hl7v2_ack import _build, _by_hand, _Header, fallback_ack, success_ack

from . import samples as s

NOW = datetime(2026, 3, 2, 9, 0, 0)
PARTIES = "|EPR|RX1|S117HUB|HUB|"
EPR, RX1 = "EPR^1.2.3^ISO", "RX1^2.16.840.1.113883^ISO"
HUB_APP, HUB = "S117HUB^1.2.826.0.1^ISO", "HUB^9.9^L"
THREE = s.A01_SECTION_3.replace(PARTIES, f"|{EPR}|{RX1}|{HUB_APP}|{HUB}|")
STRANGER = THREE.replace(f"|{EPR}|{RX1}|", "|OTHER^1.2^ISO|ZZZ^3.4^ISO|")
ERROR = MappingError("unknown-code", "code 'XX' is not known", location="ZLS-1")
CODES = ["AA", "AE", "AR", "CA", "CE", "CR"]


def fields(er7: str) -> tuple[list[str], list[str]]:
    """The ACK's MSH and MSA fields, as written (not unescaped), numbered as in HL7."""
    segments = er7.split("\r")
    assert [seg[:3] for seg in segments][:2] == ["MSH", "MSA"]
    msh = segments[0].split("|")
    return ["MSH", "|", *msh[1:]], segments[1].split("|")


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("as_text", [False, True])
def test_three_component_parties_are_swapped_and_echoed(code: str, as_text: bool) -> None:
    inbound = THREE if as_text else parse_adt(THREE)
    error = ERROR if code in ("AE", "AR", "CE", "CR") else None
    er7 = build_ack(inbound, code, error, control_id="ACK-1", now=NOW)  # type: ignore[arg-type]
    msh, msa = fields(er7)
    assert msh[3:7] == [HUB_APP, HUB, EPR, RX1]  # ours are the hub's, MSH-5/6 the sender's
    assert msa[1:3] == [code, "MSG-A01"]
    assert (error is not None) == ("\rERR|" in er7)
    message = parse_message(er7, find_groups=False)  # hl7apy reads it back
    assert message.msh.msh_5.to_er7() == EPR
    assert message.msa.msa_2.to_er7() == "MSG-A01"


@pytest.mark.parametrize("code", ["AA", "CA"])
def test_the_fast_path_gives_the_same_bytes_for_three_component_parties(code: str) -> None:
    parsed = parse_adt(THREE)
    for n in range(3):  # the template, then the template reused
        assert success_ack(parsed, code, control_id=f"A-{n}", now=NOW) == build_ack(  # type: ignore[arg-type]
            parsed, code, control_id=f"A-{n}", now=NOW)  # type: ignore[arg-type]


def test_an_unknown_three_component_sender_is_answered_ar() -> None:
    error = MappingError("invalid-value", "no source is configured", location="MSH-3")
    er7 = build_ack(parse_adt(STRANGER), "AR", error, control_id="ACK-1", now=NOW)
    msh, msa = fields(er7)
    assert msh[5:7] == ["OTHER^1.2^ISO", "ZZZ^3.4^ISO"]
    assert msa[1:3] == ["AR", "MSG-A01"]
    assert er7.split("\r")[2].startswith("ERR|MSH^1^3^102&")


def test_a_salvaged_header_reads_hds_as_a_parsed_one_does() -> None:
    """No MSH-12: parse_adt refuses it and the ACK salvages the MSH line by hand."""
    broken = THREE.replace("|P|2.4|", "|P||").replace(f"|{EPR}|", "|E\\S\\P&sub^1.2.3^ISO~x|")
    with pytest.raises(MappingError):
        parse_adt(broken)
    msh, msa = fields(build_ack(broken, "AR", MappingError("missing-field", "no version",
                                                            location="MSH-12")))
    assert msh[3:7] == [HUB_APP, HUB, "E\\S\\P^1.2.3^ISO", RX1]
    assert msa[1:3] == ["AR", "MSG-A01"]


@pytest.mark.parametrize(("sent", "echoed"), [
    ("EPR^1.2.3^ISO", "EPR^1.2.3^ISO"),
    ("EPR^1.2.3", "EPR^1.2.3"),
    ("^1.2.3^ISO", "^1.2.3^ISO"),  # a universal id alone
    ("EPR^^ISO", "EPR^^ISO"),
    ("EPR\\S\\X^1\\E\\2^I\\T\\D", "EPR\\S\\X^1\\E\\2^I\\T\\D"),  # escapes survive
    ("E\\F\\P\\R\\R^1.2.3^ISO", "E\\F\\P\\R\\R^1.2.3^ISO"),
    ("EPR&SUB^1.2.3&X^ISO&Y", "EPR^1.2.3^ISO"),  # HD components have no sub-components
    ("EPR~OTHER^1.2.3", "EPR"),  # nor repetitions
    ("A^B^C^D", "A^B^C"),  # HD has three components
    ("A\\X0D\\B^C\\X1C\\D^E\\X0B\\F", "A\\X0D\\B^C\\X1C\\D^E\\X0B\\F"),  # no raw CR, no MLLP byte
    ("A\\.br\\B", "A\\X0D\\B"),
    ("  EPR  ^ 1.2.3 ", "EPR^1.2.3"),
])
@pytest.mark.parametrize("field_no", [3, 4, 5, 6])
def test_any_hd_value_is_reflected(sent: str, echoed: str, field_no: int) -> None:
    parties = PARTIES.strip("|").split("|")
    parties[field_no - 3] = sent
    raw = s.A01_SECTION_3.replace(PARTIES, "|" + "|".join(parties) + "|")
    parsed = parse_adt(raw)
    ack_field = {3: 5, 4: 6, 5: 3, 6: 4}[field_no]
    for code, error in (("AA", None), ("CA", None), ("AE", ERROR), ("AR", ERROR)):
        er7 = build_ack(parsed, code, error, control_id="ACK-1", now=NOW)  # type: ignore[arg-type]
        assert fields(er7)[0][ack_field] == echoed
        assert not re.search(r"[\x00-\x0c\x0e-\x1f\x7f]", er7)  # CR only between segments
        assert [seg[:3] for seg in er7.split("\r")] == (
            ["MSH", "MSA"] if error is None else ["MSH", "MSA", "ERR"])
        if error is None:
            assert success_ack(parsed, code, control_id="ACK-1", now=NOW) == er7  # type: ignore[arg-type]


def test_control_characters_in_text_fields_are_hex_escaped() -> None:
    text = "line one\rMSA|AA|FORGED\x1c\x0b"
    er7 = build_ack(s.A01_SECTION_3, "AE", MappingError("invalid-value", text,
                                                        location="ZLS-2"), now=NOW)
    assert [seg[:3] for seg in er7.split("\r")] == ["MSH", "MSA", "ERR"]
    msg = hl7.parse(er7)
    assert msg.unescape(str(msg.segment("ERR")[8])) == text


# -- any HD at all -------------------------------------------------------------------------

HD_TEXT = st.text(alphabet=st.sampled_from(list("^&~\\ 0123456789.AEFHNRSTXbr-é\x01")),
                  max_size=14) | st.sampled_from(
    ["EPR^1.2.3^ISO", "^1.2.3^ISO", "EPR^1.2.3", "A&B^C&D^E&F", "\\X0D\\", "\\X1C0B\\",
     "\\E\\^\\S\\^\\T\\", "\\.br\\", "\\", "\\H\\x\\N\\", "^^^^"])


def _reread(msg_er7: str, field_no: int) -> tuple[str, ...]:
    parsed = parse_adt(msg_er7)
    msh = parsed.segment("MSH")
    return tuple(parsed.value(msh, field_no, 1, c) for c in (1, 2, 3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HD_TEXT, min_size=4, max_size=4))
def test_any_header_gets_an_ack_that_reflects_it(parties: list[str]) -> None:
    raw = s.A01_SECTION_3.replace(PARTIES, "|" + "|".join(parties) + "|")
    parsed = parse_adt(raw)
    hds = {n: _reread(raw, n) for n in (3, 4, 5, 6)}
    for code in CODES:
        error = ERROR if code[1] != "A" else None
        er7 = build_ack(parsed, code, error, control_id="ACK-1", now=NOW)  # type: ignore[arg-type]
        assert not re.search(r"[\x00-\x0c\x0e-\x1f\x7f]", er7)
        assert [seg[:3] for seg in er7.split("\r")] == (
            ["MSH", "MSA"] if error is None else ["MSH", "MSA", "ERR"])
        # MSH-3/4 of the ACK are the inbound MSH-5/6, MSH-5/6 the inbound MSH-3/4
        assert [_reread(er7, n) for n in (3, 4, 5, 6)] == [hds[5], hds[6], hds[3], hds[4]]
        assert str(hl7.parse(er7).segment("MSA")[2]) == "MSG-A01"
        if error is None:
            assert success_ack(parsed, code, control_id="ACK-1", now=NOW) == er7  # type: ignore[arg-type]
        assert build_ack(raw, code, error, control_id="ACK-1", now=NOW) == er7  # type: ignore[arg-type]


# -- the fallback --------------------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_the_fallback_ack_answers_without_the_sender_parties(code: str) -> None:
    error = ERROR if code[1] != "A" else None
    er7 = fallback_ack(parse_adt(THREE), code, error, control_id="ACK-9", now=NOW)  # type: ignore[arg-type]
    msh, msa = fields(er7)
    assert msh[3:7] == ["", "", "", ""]
    assert msh[9:13] == ["ACK^A01^ACK", "ACK-9", "P", "2.4"]
    assert msa[1:3] == [code, "MSG-A01"]
    if error is not None:
        err = hl7.parse(er7).segment("ERR")
        assert str(err[2]) == "ZLS^1^1" and str(err[3]).startswith("103^")
    assert parse_message(er7, find_groups=False).msa.msa_1.to_er7() == code


def test_the_fallback_ack_is_what_hl7apy_would_build() -> None:
    odd = "C^1\\x|y&z~\x1c"
    for version in ("2.3", "2.4", "2.5.1", ""):
        for error in (None, RuntimeError("boom"), ERROR,
                      MappingError("invalid-value", "bad a|b^c\\d\r", location="PID-3[2].1"),
                      MappingError("missing-field", "no id", location="MSH-10"),
                      MappingError("unparseable", "x", location="MSH"),
                      MappingError("unparseable", "", location=None)):
            for echo in ("MSG-1", odd, ""):
                header = _Header(trigger="A01", control_id=echo, version=version,
                                 processing_id="T")
                for code in ("AA", "AE", "CR"):
                    assert _by_hand(header, code, error, control_id=odd, now=NOW) == _build(  # type: ignore[arg-type]
                        header, code, error, None, control_id=odd, now=NOW)  # type: ignore[arg-type]


def test_the_fallback_ack_for_garbage_and_for_nothing() -> None:
    for inbound in ("this is not HL7", None, "MSH|^~\\&|EPR"):
        er7 = fallback_ack(inbound, "AR", MappingError("unparseable", "x", location="MSH"))
        assert er7.startswith("MSH|^~\\&|") and "\rMSA|AR" in er7


def test_a_failing_builder_is_covered_by_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the receiver relies on: fallback_ack does not use hl7apy at all."""
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("hl7apy is broken")

    monkeypatch.setattr(hl7v2_ack, "_build", broken)
    monkeypatch.setattr(hl7v2_ack, "Message", broken)
    with pytest.raises(RuntimeError):
        build_ack(THREE, "AA")
    assert fields(fallback_ack(THREE, "AA", control_id="X"))[1][1:3] == ["AA", "MSG-A01"]
