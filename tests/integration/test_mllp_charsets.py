"""MSH-18 character sets over a real MLLP socket, on SQLite and PostgreSQL.

- a message is decoded by the charset MSH-18 names (ASCII, 8859/n, UNICODE UTF-8): a name
  sent in 8859/1 lands in the register as sent, even where its bytes would also read as
  UTF-8 (the hub's default when MSH-18 is empty); the stored payload encodes back, in that
  charset, to the bytes received;
- the ACK goes back in the sender's charset and echoes MSH-18 (with MSH-18 empty: UTF-8, no
  MSH-18, as before);
- an MSH-18 the hub does not decode: AR, ERR 103 at MSH-18, kept ``rejected``; bytes not valid
  in the charset named: AR, ERR 102 where the first such byte is, kept ``rejected``.

Synthetic data only (999-range NHS numbers, invented names).
"""

from __future__ import annotations

import socket

import hl7
from sqlalchemy.engine import Row

from connectors.hl7v2.framing import frame
from register_core.views import people_by_nhs_number, person_json
from tests.e2e.test_mllp_inbound import NHS, adt

from . import test_mllp_hd_headers as hd
from .test_mllp_hd_headers import Listener, frames_on, msa

listener = hd.listener  # the HD tests' listener (async and thread-pool receivers), no worker

FAMILY, GIVEN = "Lefèvre", "Zoé"  # invented


def with_charset(message: str, charset: str, *, name: str = f"{FAMILY}^{GIVEN}") -> str:
    """``adt``'s message with MSH-18 set (MSH-17 empty) and the patient's name replaced."""
    msh, rest = message.split("\r", 1)
    return f"{msh}||{charset}\r" + rest.replace("Testperson^Alex", name)


def exchange(listener: Listener, payload: bytes, replies: int = 1) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(payload))
        return frames_on(sock, replies)


def err(ack: hl7.Message) -> tuple[str, str, str]:
    """ERR-2 (location), ERR-3.1 (table 0357 code), ERR-8 (text)."""
    segment = ack.segment("ERR")
    return str(segment[2]), str(segment[3][0][0]), ack.unescape(str(segment[8]))


def msh_18(ack: hl7.Message) -> str:
    msh = ack.segment("MSH")
    return str(msh[18]) if len(msh) > 18 else ""


def registered(listener: Listener) -> dict[str, object]:
    listener.drain()
    with listener.hub.engine.connect() as conn:
        [person_id] = people_by_nhs_number(conn, NHS)
        record = person_json(conn, person_id, listener.hub.clock.today())
    assert record is not None
    return record


def only_row(listener: Listener) -> Row[object]:
    [row] = listener.rows()
    return row


def test_a_latin1_name_lands_in_the_register_and_the_ack_answers_in_latin1(
        listener: Listener) -> None:
    message = with_charset(adt("A01", "CS-L1"), "8859/1")
    sent = message.encode("latin-1")
    assert b"Lef\xe8vre^Zo\xe9" in sent  # one byte each, as an 8859/1 EPR sends them
    [answer] = exchange(listener, sent)
    ack = hl7.parse(answer.decode("latin-1"))
    assert msa(ack) == ("AA", "CS-L1") and msh_18(ack) == "8859/1"
    row = only_row(listener)
    assert (row.status, row.payload) == ("received", message)
    assert row.payload.encode("latin-1") == sent  # the bytes received, exactly
    record = registered(listener)
    assert (record["family_name"], record["given_name"]) == (FAMILY, GIVEN)


def test_msh_18_wins_over_the_default_where_latin1_bytes_also_read_as_utf8(
        listener: Listener) -> None:
    """``Ã©`` in 8859/1 is the bytes C3 A9, which are also UTF-8 for ``é``: with MSH-18 empty
    the hub (UTF-8 first) would read ``é``; told 8859/1, it reads what was sent."""
    name = "MartÃ©l^Jo"  # invented
    sent = with_charset(adt("A01", "CS-L2"), "8859/1", name=name).encode("latin-1")
    assert b"Mart\xc3\xa9l" in sent
    [answer] = exchange(listener, sent)
    assert msa(hl7.parse(answer.decode("latin-1"))) == ("AA", "CS-L2")
    assert registered(listener)["family_name"] == "MartÃ©l"


def test_utf8_named_in_msh_18_is_read_as_utf8_and_answered_so(listener: Listener) -> None:
    message = with_charset(adt("A01", "CS-U8"), "UNICODE UTF-8")
    [answer] = exchange(listener, message.encode("utf-8"))
    ack = hl7.parse(answer.decode("utf-8"))
    assert msa(ack) == ("AA", "CS-U8") and msh_18(ack) == "UNICODE UTF-8"
    record = registered(listener)
    assert (record["family_name"], record["given_name"]) == (FAMILY, GIVEN)


def test_an_error_quoting_the_sender_goes_back_in_its_charset(listener: Listener) -> None:
    """AE's ERR quotes the local code the sender sent (``é3``): as one 8859/1 byte."""
    message = with_charset(adt("A01", "CS-AE", zls="ZLS|é3|20260105"), "8859/1")
    [answer] = exchange(listener, message.encode("latin-1"))
    assert b"\xe93" in answer and "é3".encode() not in answer
    ack = hl7.parse(answer.decode("latin-1"))
    assert msa(ack) == ("AE", "CS-AE") and msh_18(ack) == "8859/1"
    assert "é3" in err(ack)[2]
    assert only_row(listener).status == "failed"


def test_enhanced_mode_acks_both_answer_in_the_senders_charset(listener: Listener) -> None:
    message = with_charset(adt("A01", "CS-ENH", msh15="AL", msh16="AL"), "8859/1")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(message.encode("latin-1")))
        [commit] = frames_on(sock, 1)
        listener.drain()  # no worker here: the application ACK follows the apply
        [application] = frames_on(sock, 1)
    for answer, code in ((commit, "CA"), (application, "AA")):
        ack = hl7.parse(answer.decode("latin-1"))
        assert msa(ack) == (code, "CS-ENH") and msh_18(ack) == "8859/1"


def test_without_msh_18_the_default_stands_and_the_ack_says_no_charset(
        listener: Listener) -> None:
    message = adt("A01", "CS-NONE").replace("Testperson^Alex", f"{FAMILY}^{GIVEN}")
    [answer] = exchange(listener, message.encode("latin-1"))  # not UTF-8: read as Latin-1
    ack = hl7.parse(answer.decode("utf-8"))
    assert msa(ack) == ("AA", "CS-NONE") and msh_18(ack) == ""
    assert registered(listener)["family_name"] == FAMILY


def test_an_unknown_msh_18_is_refused_ar_err_103_and_kept(listener: Listener) -> None:
    message = with_charset(adt("A01", "CS-UNK"), "EBCDIC")
    sent = message.encode("latin-1")
    [answer] = exchange(listener, sent)
    ack = hl7.parse(answer.decode("utf-8"))
    assert msa(ack) == ("AR", "CS-UNK") and msh_18(ack) == ""  # not echoed: not ours
    location, code, text = err(ack)
    assert (location, code) == ("MSH^1^18", "103") and "EBCDIC" in text
    row = only_row(listener)
    assert (row.source, row.status) == ("trust-a", "rejected")
    assert row.message_id.startswith("CS-UNK#")
    assert row.payload.encode("latin-1") == sent  # the default reading, as before
    assert (row.error["code"], row.error["location"]) == ("unknown-code", "MSH-18")
    # sent again: the same answer, kept once; corrected under the same MSH-10: taken
    assert msa(hl7.parse(exchange(listener, sent)[0].decode())) == ("AR", "CS-UNK")
    assert len(listener.rows()) == 1
    fixed = with_charset(adt("A01", "CS-UNK"), "8859/1").encode("latin-1")
    assert msa(hl7.parse(exchange(listener, fixed)[0].decode("latin-1"))) == ("AA", "CS-UNK")


def test_bytes_not_valid_in_the_charset_named_are_refused_ar_err_102(
        listener: Listener) -> None:
    """An EPR that says ASCII and sends 8859/1 (or says UTF-8 and sends 8859/1): refused where
    the first such byte is, rather than a name guessed into the register."""
    for control_id, charset in (("CS-ASC", "ASCII"), ("CS-BADU8", "UNICODE UTF-8")):
        sent = with_charset(adt("A01", control_id), charset).encode("latin-1")
        [answer] = exchange(listener, sent)
        ack = hl7.parse(answer.decode("ascii"))  # our own words only
        assert msa(ack) == ("AR", control_id) and msh_18(ack) == charset
        location, code, text = err(ack)
        assert (location, code) == ("PID^1^5", "102")
        assert "MSH-18" in text and charset in text and FAMILY not in text
    rows = listener.rows()
    assert [(r.source, r.status) for r in rows] == [("trust-a", "rejected")] * 2
    assert all(r.error["location"] == "PID-5" for r in rows)


def test_a_plain_ascii_message_named_ascii_is_taken(listener: Listener) -> None:
    [answer] = exchange(listener, with_charset(adt("A01", "CS-A"), "ASCII",
                                               name="Testperson^Alex").encode("ascii"))
    ack = hl7.parse(answer.decode("ascii"))
    assert msa(ack) == ("AA", "CS-A") and msh_18(ack) == "ASCII"
