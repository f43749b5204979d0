"""Council REST events and CSV exports: edge robustness over HTTP (and ``s117hub import-csv``)
on the real databases. NUL characters are refused naming the event and field (or the line and
column), and what was refused is kept without a NUL (PostgreSQL text cannot hold one); JSON
nested too deeply is an ordinary unparseable body; a CSV export in any byte encoding is read,
never a 500 or a traceback. Synthetic data only (999-range NHS numbers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from register_core.adapters.database import writer
from register_core.adapters.inbox import store_message
from register_core.adapters.security import Role, TokenStore
from register_core.domain.nhs_number import make_synthetic
from s117hub.bootstrap import Hub

from . import test_council_api as council_api
from . import test_csv_import as csv_api
from .test_council_api import Council, event
from .test_csv_import import Api, _drain, _entitlement, _inbox

# The council and CSV API tests' fixtures, reused.
council = council_api.council
sources = csv_api.sources
api = csv_api.api
run_cli = csv_api.run_cli

NHS_A, NHS_B, NHS_C = (make_synthetic(n) for n in (31, 32, 33))


def _engineer(hub: Hub) -> dict[str, str]:
    return {"Authorization": "Bearer "
            + TokenStore(hub.engine, hub.clock).create(Role.INTEGRATION_ENGINEER)[1]}


def _listed(client: Any, hub: Hub, source: str, status: str) -> list[int]:
    response = client.get("/api/v1/messages", params={"source": source, "status": status},
                          headers=_engineer(hub))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# --- REST events: NUL -------------------------------------------------------------------------

def test_an_event_with_a_nul_is_422_naming_the_field_and_kept_rejected(
        council: Council) -> None:
    body = event("nul-1", "s117.confirmed", NHS_A, {"start": "2026-02-01"},
                 family_name="Test\u0000person")
    raw = json.dumps(body)
    response = council.post(None, raw=raw)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert (answer["error"], answer["event_id"], answer["code"], answer["location"]) == (
        "invalid-event", "nul-1", "invalid-value", "person.family_name")
    assert "NUL" in answer["message"]
    [row] = council.inbox()
    assert (row.id, row.status, row.payload) == (answer["message_id"], "rejected", raw)
    assert row.error["location"] == "person.family_name"
    assert row.id in _listed(council.client, council.hub, "council-w", "rejected")
    replay = council.client.post(f"/api/v1/messages/{row.id}/replay",
                                 headers=_engineer(council.hub))
    assert replay.status_code == 409
    again = council.post(None, raw=raw)
    assert again.json() == answer | {"duplicate": True}
    # The corrected event keeps its event_id and is taken.
    fixed = council.post(event("nul-1", "s117.confirmed", NHS_A, {"start": "2026-02-01"}))
    assert fixed.status_code == 202, fixed.text
    assert council.drain() == 1
    assert council.person(NHS_A)["entitlement"]["status"] == "active"


def test_an_array_names_the_event_with_a_nul_and_stores_the_others(council: Council) -> None:
    good = event("arr-1", "s117.confirmed", NHS_B, {"start": "2026-02-01"})
    bad = event("arr-\u00002", "s117.confirmed", NHS_C, {"start": "2026-02-01"})
    response = council.post([good, bad])
    assert response.status_code == 422, response.text
    first, second = response.json()["results"]
    assert first["status"] == "accepted"
    assert (second["index"], second["status"], second["event_id"], second["location"]) == (
        1, "invalid", "arr-\u00002", "event_id")
    received, rejected = council.inbox()
    assert (received.status, rejected.status) == ("received", "rejected")
    assert "\x00" not in rejected.payload and json.loads(rejected.payload) == bad  # exactly
    assert "\x00" not in rejected.message_id
    council.drain()
    assert council.person(NHS_B)["entitlement"]["status"] == "active"


def test_a_worker_fails_a_stored_event_with_a_nul_once(council: Council) -> None:
    """A row stored before the edge refused NUL (or by the poller) fails with its field."""
    body = event("old-1", "s117.confirmed", NHS_A, {"start": "2026-02-01"},
                 given_name="Al\u0000ex")
    with writer(council.hub.engine) as conn, conn.begin():
        store_message(conn, source="council-w", message_id="old-1", channel="council-rest",
                      message_type="s117.confirmed", payload=json.dumps(body),
                      received_at=council.hub.clock.now())
    council.drain()
    [row] = council.inbox()
    assert row.status == "failed" and row.error["location"] == "person.given_name"


# --- REST events: bodies that are not JSON ----------------------------------------------------

def test_json_nested_too_deeply_is_unparseable_and_kept_rejected(council: Council) -> None:
    raw = "[" * 100_000
    response = council.post(None, raw=raw)
    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "unparseable" and "nested too deeply" in answer["message"]
    [row] = council.inbox()
    assert (row.status, row.payload) == ("rejected", raw)


def test_a_raw_nul_byte_is_unparseable_and_kept_with_the_nul_replaced(
        council: Council) -> None:
    raw = '{"event_id": "raw-\x00"}'
    response = council.post(None, raw=raw)
    assert response.status_code == 422 and response.json()["code"] == "unparseable"
    [row] = council.inbox()
    assert (row.status, row.payload) == ("rejected", raw.replace("\x00", "\ufffd"))


# --- CSV: NUL -------------------------------------------------------------------------------

def test_a_csv_cell_with_a_nul_fails_its_row_only(api: Api, sources: Hub) -> None:
    text = ("Event ID,Event,NHS No,Surname,Start\n"
            f"n-1,s117.confirmed,{NHS_A},Test\x00wood,01/02/2026\n"
            f"n-\x002,s117.confirmed,{NHS_C},Testwood,01/02/2026\n"
            f"n-3,s117.confirmed,{NHS_B},Testwood,01/02/2026\n")
    response = api.post(text, file_name="nul.csv")
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["rows"], body["accepted"], body["failed"]) == (3, 1, 2)
    assert [(f["line"], f["code"], f["location"]) for f in body["failures"]] == [
        (2, "invalid-value", "line 2, column Surname"),
        (3, "invalid-value", "line 3, column Event ID")]
    assert all("NUL" in f["message"] for f in body["failures"])
    rows = _inbox(sources)
    assert [r.status for r in rows] == ["failed", "failed", "received"]
    assert json.loads(rows[0].payload)["row"]["Surname"] == "Test\x00wood"  # kept exactly
    assert all("\x00" not in r.payload and "\x00" not in r.message_id for r in rows)
    assert {rows[0].id, rows[1].id} <= set(_listed(api.client, sources, "council-c", "failed"))
    assert _drain(sources) == 1
    assert _entitlement(sources, NHS_B)["status"] == "active"
    # A replay maps the stored row afresh: the NUL is refused again, never applied.
    replay = api.client.post(f"/api/v1/messages/{rows[0].id}/replay",
                             headers=_engineer(sources))
    assert replay.status_code == 202
    _drain(sources)
    assert _inbox(sources)[0].status == "failed"


def test_a_csv_header_with_a_nul_is_invalid_csv(api: Api, sources: Hub) -> None:
    response = api.post(f"Event,NHS\x00No\ns117.confirmed,{NHS_A}\n", file_name="h.csv")
    assert response.status_code == 422
    assert (response.json()["error"], response.json()["location"]) == (
        "invalid-csv", "line 1, column NHS\ufffdNo")


def test_a_nul_in_the_file_name_is_not_stored(api: Api, sources: Hub) -> None:
    text = f"Event ID,Event,NHS No,Start\nf-1,s117.confirmed,{NHS_A},01/02/2026\n"
    response = api.post(text, file_name="a\x00b.csv")
    assert response.status_code == 202, response.text
    [row] = _inbox(sources)
    assert json.loads(row.payload)["file"] == "a\ufffdb.csv"


# --- CSV: encodings ---------------------------------------------------------------------------

# A UTF-8 export with one line from elsewhere in Windows-1252 and one holding a byte that
# Windows-1252 leaves undefined (0x81).
MIXED = (b"Event ID,Event,NHS No,Surname,Start\n"
         + f"e-1,s117.confirmed,{NHS_A},\u00d3 Briain,01/02/2026\n".encode()
         + f"e-2,s117.confirmed,{NHS_B},M\u00fcller,01/02/2026\n".encode("cp1252")
         + f"e-3,s117.confirmed,{NHS_C},Te\x81st,01/02/2026\r\n".encode("latin-1"))


def test_a_csv_with_bytes_undefined_in_windows_1252_is_read_and_noted(
        api: Api, sources: Hub) -> None:
    response = api.post(MIXED, file_name="mixed.csv")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 3
    notices = " ".join(body["notices"])
    assert "lines 3, 4" in notices and "Windows-1252" in notices and "0x81" in notices
    surnames = [json.loads(r.payload)["row"]["Surname"] for r in _inbox(sources)]
    # The UTF-8 line keeps its name; the Windows-1252 line is read as such.
    assert surnames == ["\u00d3 Briain", "M\u00fcller", "Te\x81st"]


def test_import_csv_never_fails_to_decode(run_cli: Any, sources: Hub, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "undefined.csv"
    path.write_bytes(b"Event ID,Event,NHS No,Surname,Start\n"
                     + f"u-1,s117.confirmed,{NHS_A},Te\x90st,01/02/2026\n".encode("latin-1")
                     + f"u-2,s117.confirmed,{NHS_B},Test,01/02/2026\n".encode())
    assert run_cli(str(path), "--source", "council-c", "--no-progress", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accepted"] == 2 and summary["notices"]
    assert json.loads(_inbox(sources)[0].payload)["row"]["Surname"] == "Te\x90st"
