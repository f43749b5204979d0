"""Control characters in register text cannot break the ADT^A08 sent to HL7 partners.

A CR in a name used to end PID early and let the rest of the name pass for a segment of its
own (audit D4: ``O'Brien\\rOBX|…``). Every C0 control character (and DEL) now travels as
HL7's hex escape ``\\Xdd\\``, after hl7apy's own escaping of the delimiters, and a partner that
unescapes gets the text back exactly. Synthetic data only.
"""

from __future__ import annotations

import datetime as dt

import hl7
import pytest

from mapping.outbound import (
    Ended,
    EntitlementState,
    PersonState,
    StatusChange,
    adt_a08,
)

AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
INJECTED_FAMILY = "O'Brien\rOBX|1|ST|^^^|Injected"
INJECTED_GIVEN = "Pat\nZSE|ended"


def change(family: str | None = INJECTED_FAMILY, given: str | None = INJECTED_GIVEN,
           reason: str = "needs met\r\nafter joint review", practitioner: str = "Sam\rCarer"
           ) -> StatusChange:
    return StatusChange(
        change_id=7, person=PersonState(register_id="p-1", nhs_number="9990010315"),
        family_name=family, given_name=given, birth_date=dt.date(1980, 2, 2),
        entitlement=EntitlementState(
            status="ended", start=dt.date(2026, 3, 1), named_practitioner=practitioner,
            ended=Ended(date=dt.date(2026, 11, 1), reason=reason)),
        changes=[], notice_received_at=AT, changed_at=AT)


def er7(value: StatusChange, **header: str) -> str:
    return adt_a08(value, "CTRL-1", now=AT, **header)


def test_a_line_break_in_a_name_neither_cuts_pid_nor_adds_a_segment() -> None:
    text = er7(change())
    assert [segment.split("|", 1)[0] for segment in text.split("\r")] == [
        "MSH", "EVN", "PID", "PV1", "ZSE"]
    pid = next(s for s in text.split("\r") if s.startswith("PID|"))
    assert "O'Brien\\X0D\\OBX\\F\\1" in pid and "Pat\\X0A\\ZSE\\F\\ended" in pid


def test_a_partner_that_unescapes_reads_the_text_exactly() -> None:
    message = hl7.parse(er7(change()))
    assert [str(segment[0]) for segment in message] == ["MSH", "EVN", "PID", "PV1", "ZSE"]
    name = message.segment("PID")[5][0]
    assert message.unescape(str(name[0])) == INJECTED_FAMILY
    assert message.unescape(str(name[1])) == INJECTED_GIVEN
    zse = message.segment("ZSE")
    assert message.unescape(str(zse[4])) == "needs met\r\nafter joint review"
    assert message.unescape(str(zse[10])) == "Sam\rCarer"


@pytest.mark.parametrize("char", ["\x00", "\x0b", "\x1c", "\x0d", "\x0a", "\x09", "\x1b",
                                  "\x7f"])
def test_no_control_character_reaches_the_wire_raw(char: str) -> None:
    """0x0B and 0x1C would end the MLLP frame; CR/LF the segment; NUL breaks receivers."""
    text = er7(change(family=f"A{char}B", given=f"C{char}D", reason=f"E{char}F",
                      practitioner=f"G{char}H"),
               receiving_application=f"PAS{char}X", receiving_facility="RX2")
    body = text.replace("\r", "")  # the segment separators are ours
    assert not any(ord(c) < 0x20 or c == "\x7f" for c in body), repr(text)
    code = f"\\X{ord(char):02X}\\"
    assert f"A{code}B^C{code}D" in text and f"E{code}F" in text and f"G{code}H" in text
    assert f"PAS{code}X" in text  # MSH-5 as well
    assert len(text.split("\r")) == 5


def test_delimiters_and_backslashes_are_still_escaped_once() -> None:
    text = er7(change(family="O'Brien|Smith^Jr\\X0D\\", given="A&B~C\r"))
    pid = next(s for s in text.split("\r") if s.startswith("PID|"))
    # A literal "\X0D\" typed by someone is text (its backslashes escaped), not a CR.
    assert "O'Brien\\F\\Smith\\S\\Jr\\E\\X0D\\E\\^A\\T\\B\\R\\C\\X0D\\" in pid
    message = hl7.parse(text)
    name = message.segment("PID")[5][0]
    assert message.unescape(str(name[0])) == "O'Brien|Smith^Jr\\X0D\\"
    assert message.unescape(str(name[1])) == "A&B~C\r"


def test_plain_names_are_unchanged() -> None:
    text = er7(change(family="Testperson", given="Alex", reason="needs met",
                      practitioner="Sam Carer"))
    assert "|Testperson^Alex|" in text and "\\X" not in text


@pytest.mark.parametrize("header, where", [({"version": "2.4\rOBX|1"}, "MSH-12"),
                                           ({"version": "2.4|X"}, "MSH-12"),
                                           ({"processing_id": "P\n"}, "MSH-11")])
def test_a_version_or_processing_id_that_is_not_a_plain_code_is_refused(
        header: dict[str, str], where: str) -> None:
    """MSH-11/12 are set as ER7 (unescaped), so they are checked instead."""
    from mapping.errors import MappingError

    with pytest.raises(MappingError) as caught:
        er7(change(), **header)
    assert caught.value.location == where
    assert er7(change(), version="2.5.1").split("\r")[0].endswith("|P|2.5.1")
