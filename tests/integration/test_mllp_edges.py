"""HL7 v2 edges over a real MLLP socket (wire audit): every frame gets an answer, and every
message that can be kept is kept, on SQLite and PostgreSQL.

- a NUL character (raw or hex-escaped), an MSH-9 or MSH-10 longer than the inbox's columns:
  AR with an ERR naming it, stored ``rejected`` (PostgreSQL refused the row: no ACK, resent for
  ever);
- a frame over the size limit: AR naming the limit (MSA-2 echoing MSH-10), logged with ids
  only, the connection goes on (it was dropped silently);
- enhanced mode: a suppressed accept ACK sends nothing (not an empty frame); a stored message
  that cannot be mapped is CA then AE (not CE, which asks for a resend for ever); a resend of
  a processed AL/AL message gets its application ACK again;
- MSH-12 outside v2.3–2.5.1: AR, ERR 203, stored ``rejected``;
- an MSH-10 reused for a different message: AR, ERR 205, the new message stored ``rejected``
  under a derived id; the same message resent (a new MSH-7, other line endings) is a resend.

Synthetic data only (999-range NHS numbers).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import hl7
import pytest
from sqlalchemy.exc import DataError

from connectors.hl7v2.framing import MAX_FRAME_BYTES, frame
from register_core.adapters import inbox as inbox_module
from tests.e2e.test_mllp_inbound import NHS, adt

from . import test_mllp_hd_headers as hd
from .test_mllp_hd_headers import Listener, frames_on, msa

listener = hd.listener  # the HD tests' listener (async and thread-pool receivers), no worker

BAD_CODE = "ZLS|XX|20260105"  # maps to AE: unknown legal-status code


def err(ack: hl7.Message) -> tuple[str, str, str]:
    """ERR-2 (location), ERR-3.1 (table 0357 code), ERR-8 (text)."""
    segment = ack.segment("ERR")
    return str(segment[2]), str(segment[3][0][0]), str(segment[8])


def nothing_more(sock: socket.socket, wait: float = 0.6) -> bytes:
    sock.settimeout(wait)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


def with_version(message: str, version: str) -> str:
    return message.replace("|P|2.4|", f"|P|{version}|", 1)


def by_id(listener: Listener) -> dict[str, Any]:
    return {row.message_id: row for row in listener.rows()}


# -- 1. NUL and over-long header fields -------------------------------------------------------

def test_a_nul_byte_is_refused_ar_naming_it_and_kept_without_it(listener: Listener) -> None:
    message = adt("A01", "NUL-1").replace("Testperson", "Test\x00person")
    ack = listener.send(message)
    assert msa(ack) == ("AR", "NUL-1")
    location, code, text = err(ack)
    assert location == "PID^1^5" and code == "102" and "NUL" in text
    [row] = listener.rows()
    assert (row.source, row.status) == ("trust-a", "rejected")
    assert row.message_id.startswith("NUL-1#") and len(row.message_id) == len("NUL-1#") + 12
    assert row.payload == message.replace("\x00", "\ufffd")
    assert row.error["location"] == "PID-5" and "NUL" in row.error["message"]
    # sent again: answered the same, kept once
    assert msa(listener.send(message)) == ("AR", "NUL-1")
    [again] = listener.rows()
    assert (again.id, again.resent) == (row.id, 1)
    # corrected, under the same MSH-10: taken as usual
    assert msa(listener.send(adt("A01", "NUL-1"))) == ("AA", "NUL-1")
    assert by_id(listener)["NUL-1"].status == "received"


def test_a_nul_in_the_header_or_from_an_unknown_sender_is_refused_and_kept(
        listener: Listener) -> None:
    in_header = adt("A01", "NUL\x00-2")
    ack = listener.send(in_header)
    assert msa(ack)[0] == "AR" and err(ack)[0] == "MSH^1^10"
    stranger = adt("A01", "NUL-3").replace("|EPR|RX1|", "|OTHER|ZZZ|").replace("F|||", "F|\x00||")
    assert msa(listener.send(stranger)) == ("AR", "NUL-3")
    garbage = "not\x00HL7"
    assert msa(listener.send(garbage))[0] == "AR"
    rows = listener.rows()
    assert [(r.source, r.status) for r in rows] == [
        ("trust-a", "rejected"), ("unknown-sender", "rejected"), ("unparseable", "rejected")]
    assert all("\x00" not in r.payload and "\ufffd" in r.payload for r in rows)


def test_a_hex_escaped_nul_is_refused(listener: Listener) -> None:
    """``\\X00\\`` unescapes to a NUL, which PostgreSQL JSON cannot hold either (the commands
    mapped from PID-5)."""
    message = adt("A01", "NUL-HEX").replace("Testperson", "Test\\X00\\person")
    ack = listener.send(message)
    assert msa(ack) == ("AR", "NUL-HEX") and err(ack)[0] == "PID^1^5"
    [row] = listener.rows()
    assert (row.status, row.payload) == ("rejected", message)
    assert msa(listener.send(adt("A01", "HEX-OK").replace("Testperson", "Test\\X41\\person"))
               ) == ("AA", "HEX-OK")


def test_an_msh_10_longer_than_the_column_is_refused_and_kept_under_a_cut_id(
        listener: Listener) -> None:
    long_id = "L" * 250
    ack = listener.send(adt("A01", long_id))
    assert msa(ack) == ("AR", long_id)
    location, _, text = err(ack)
    assert location == "MSH^1^10" and "longer than 200" in text
    [row] = listener.rows()
    assert (row.source, row.status) == ("trust-a", "rejected")
    assert len(row.message_id) == 200 and row.message_id.startswith("L" * 187 + "#")
    assert msa(listener.send(adt("A01", long_id)))[0] == "AR"
    assert len(listener.rows()) == 1


def test_an_msh_9_longer_than_the_column_is_refused(listener: Listener) -> None:
    message = adt("A01", "LONG-9").replace("ADT^A01^ADT_A01", "ADT^" + "A" * 70 + "^ADT_A01")
    ack = listener.send(message)
    assert msa(ack) == ("AR", "LONG-9") and err(ack)[0] == "MSH^1^9"
    [row] = listener.rows()
    assert (row.status, row.message_type) == ("rejected", None)


def test_a_row_the_database_refuses_is_answered_ar_and_kept_aside(
        listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever else a database may refuse of a row, the frame is answered, not dropped."""
    real = inbox_module.store_message

    def refusing(conn: Any, **fields: Any) -> Any:
        if fields["source"] == "trust-a":
            raise DataError("INSERT", {}, Exception("value too long"))
        return real(conn, **fields)

    monkeypatch.setattr(inbox_module, "store_message", refusing)
    ack = listener.send(adt("A01", "REFUSED"))
    assert msa(ack) == ("AR", "REFUSED") and err(ack)[1] == "102"
    [row] = listener.rows()
    assert (row.source, row.status) == ("unstorable", "rejected")


# -- 2. frames over the size limit ------------------------------------------------------------

def test_an_oversized_frame_is_answered_ar_naming_the_limit_and_logged(
        listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="connectors.hl7v2.server")
    big = adt("A01", "BIG-1") + "NTE|1||" + "x" * (MAX_FRAME_BYTES + 1000) + "\r"
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(big.encode()))
        [answer] = frames_on(sock, 1)
        ack = hl7.parse(answer.decode())
        assert msa(ack) == ("AR", "BIG-1")
        assert f"{MAX_FRAME_BYTES}-byte limit" in err(ack)[2]
        # the connection goes on: the next frame is read and answered
        sock.sendall(frame(adt("A01", "AFTER-BIG").encode()))
        [after] = frames_on(sock, 1)
    assert msa(hl7.parse(after.decode())) == ("AA", "AFTER-BIG")
    assert [r.message_id for r in listener.rows()] == ["AFTER-BIG"]  # not stored: too big
    [record] = [r for r in caplog.records if r.name == "connectors.hl7v2.server"]
    assert record.message_id == "BIG-1"  # type: ignore[attr-defined]
    assert NHS not in record.getMessage() and "Testperson" not in record.getMessage()


def test_an_oversized_frame_without_a_readable_header_gets_the_fallback_ack(
        listener: Listener) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(b"MSH|^~\\&|EPR|RX1|" + b"y" * (MAX_FRAME_BYTES + 10)))
        [answer] = frames_on(sock, 1)
    ack = hl7.parse(answer.decode())
    assert msa(ack) == ("AR", "") and "limit" in err(ack)[2]


# -- 3. enhanced mode -------------------------------------------------------------------------

def test_a_suppressed_accept_ack_sends_no_empty_frame(listener: Listener) -> None:
    """MSH-15 NE: only the application ACK comes (AE at once: the message failed to map)."""
    message = adt("A01", "ENH-NE", zls=BAD_CODE, msh15="NE", msh16="AL")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(message.encode()))
        [first] = frames_on(sock, 1)
        assert first, "an empty frame was sent for a suppressed accept ACK"
        assert msa(hl7.parse(first.decode())) == ("AE", "ENH-NE")
    # NE; ER on success (a stored message is a successful commit, mapped or not); an invalid
    # value: no accept ACK, and MSH-16 NE: no application ACK either
    for accept, zls in (("NE", BAD_CODE), ("ER", "ZLS|03|20260105093000"), ("ER", BAD_CODE),
                        ("XX", BAD_CODE)):
        control = f"ENH-{accept}-{len(zls)}"
        message = adt("A01", control, zls=zls, msh15=accept, msh16="NE")
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
            sock.sendall(frame(message.encode()))
            assert nothing_more(sock) == b"", accept
    assert len(listener.rows()) == 5


def test_a_stored_message_that_cannot_be_mapped_is_committed_ca_then_ae(
        listener: Listener) -> None:
    message = adt("A01", "ENH-CE", zls=BAD_CODE, msh15="AL", msh16="AL")
    for _ in range(2):  # and a resend gets the same, never CE
        commit, application = listener.send_for(message, 2)
        assert msa(commit) == ("CA", "ENH-CE") and msa(application) == ("AE", "ENH-CE")
        assert commit.segment("MSA") and not _has_err(commit)
        assert err(application)[1] == "103"
    [row] = listener.rows()
    assert (row.status, row.resent) == ("failed", 1)
    # MSH-15 ER: the commit succeeded, so no accept ACK; MSH-16 ER: the AE
    message = adt("A01", "ENH-ER", zls=BAD_CODE, msh15="ER", msh16="ER")
    [only] = listener.send_for(message, 1)
    assert msa(only) == ("AE", "ENH-ER")


def _has_err(ack: hl7.Message) -> bool:
    return any(str(segment[0]) == "ERR" for segment in ack)


def test_a_resend_of_a_processed_message_gets_its_application_ack_again(
        listener: Listener) -> None:
    message = adt("A01", "ENH-AGAIN", msh15="AL", msh16="AL")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(message.encode()))
        [commit] = frames_on(sock, 1)
    assert msa(hl7.parse(commit.decode())) == ("CA", "ENH-AGAIN")
    listener.drain()  # applied while the connection (and its application ACK) was lost
    commit, application = listener.send_for(message, 2)
    assert msa(commit) == ("CA", "ENH-AGAIN") and msa(application) == ("AA", "ENH-AGAIN")
    [row] = listener.rows()
    assert (row.status, row.resent) == ("applied", 1)


# -- 4. versions ------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.6", "2.7", "banana"])
def test_an_unsupported_version_is_refused_with_err_203(listener: Listener,
                                                         version: str) -> None:
    ack = listener.send(with_version(adt("A01", "V-X"), version))
    assert msa(ack) == ("AR", "V-X")
    location, code, text = err(ack)
    assert (location, code) == ("MSH^1^12", "203") and version in text
    [row] = listener.rows()
    assert (row.source, row.status) == ("trust-a", "rejected")
    assert row.message_id.startswith("V-X#") and row.message_type == "ADT^A01"


def test_the_contract_versions_are_taken(listener: Listener) -> None:
    for n, version in enumerate(["2.3", "2.3.1", "2.4", "2.5", "2.5.1"]):
        assert msa(listener.send(with_version(adt("A01", f"V-{n}"), version))) == (
            "AA", f"V-{n}")
    assert {r.status for r in listener.rows()} == {"received"}


# -- 5. a control id reused for a different message -------------------------------------------

def test_a_reused_control_id_with_other_content_is_refused_and_kept(
        listener: Listener) -> None:
    first = adt("A01", "REUSE-1")
    assert msa(listener.send(first)) == ("AA", "REUSE-1")
    other = adt("A03", "REUSE-1", event_time="20260301100000", pv1_45="20260301100000")
    ack = listener.send(other)
    assert msa(ack) == ("AR", "REUSE-1")
    location, code, text = err(ack)
    assert (location, code) == ("MSH^1^10", "205")
    assert text == "MSH-10 REUSE-1 was already used for a different message"
    rows = by_id(listener)
    assert rows["REUSE-1"].status == "received" and rows["REUSE-1"].resent == 0
    [kept] = [r for mid, r in rows.items() if mid.startswith("REUSE-1#")]
    assert (kept.source, kept.status, kept.payload) == ("trust-a", "rejected", other)
    assert kept.message_type == "ADT^A03"
    # the different message sent again: the same refusal, kept once
    assert msa(listener.send(other)) == ("AR", "REUSE-1")
    assert len(listener.rows()) == 2
    # the first message sent again, with a new MSH-7 and LF line endings: a resend
    resend = first.replace("|20260105093000||ADT", "|20260105093500||ADT", 1)
    assert resend != first
    assert msa(listener.send(resend.replace("\r", "\n"))) == ("AA", "REUSE-1")
    rows = by_id(listener)
    assert len(rows) == 2 and rows["REUSE-1"].resent == 1
