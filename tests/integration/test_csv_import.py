"""Council CSV exports through the HTTP endpoint and ``s117hub import-csv`` on the real
databases: one inbox row per data row, bad rows stored failed and reported by line number,
the rest applied, custom column maps, duplicates (by event id or row content, never the
file's name, across both routes), batches, and failure lines on the command line that never
echo a cell. Synthetic data only."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.council.csv_import import import_csv
from connectors.inbound_mapper import make_mapper
from mapping.council import CsvColumnMap
from register_core import views
from register_core.adapters.security import TokenStore
from register_core.adapters.sources import SourceDefinition
from register_core.adapters.tables import audit_log, inbox_messages
from register_core.domain.nhs_number import make_synthetic
from register_core.services.inbound import drain
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub
from s117hub.cli_csv import add_import_csv
from s117hub.config import Settings

with warnings.catch_warnings():  # starlette 1.x warns that its client still uses httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NHS_A, NHS_B = make_synthetic(21), make_synthetic(22)
COLUMNS = CsvColumnMap(columns={
    "event_id": "Event ID", "type": "Event", "nhs_number": "NHS No", "family_name": "Surname",
    "birth_date": "DOB", "section": "MHA Section", "start": "Start", "end": "End",
    "date": "Date", "council_code": "Council"}, date_formats=("%d/%m/%Y",))

# Lines 2, 3-4 (a quoted cell over two lines), 8 are good; 5 (NHS check digit), 7 (date),
# 9 (event type) are bad; 6 is blank.
EXPORT = f"""\
Event ID,Event,NHS No,Surname,DOB,MHA Section,Start,End,Date,Council,Notes
c-1,ordinary-residence.changed,{NHS_A},Testwood,01/01/1980,,,,01/01/2020,E10000034,
c-2,detention.notified,{NHS_A},Testwood,01/01/1980,S3,05/01/2026,01/03/2026,,,"seen by AMHP
follow-up booked"
c-3,detention.notified,9990000019,Testwood,,03,05/01/2026,,,,

c-4,s117.confirmed,{NHS_B},Testwood,,,31/02/2026,,,,
c-5,s117.confirmed,{NHS_B},Testwood,,,01/02/2026,,,,
c-6,relocated,{NHS_B},,,,,,,,
"""
BAD_LINES = [(5, "invalid-value", "line 5, column NHS No"),
             (7, "invalid-value", "line 7, column Start"),
             (9, "unsupported-event", "line 9, column Event")]


def _inbox(hub: Hub) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)))


def _drain(hub: Hub) -> int:
    return drain(hub.engine, make_mapper(hub.sources), hub.clock, hub.policy)


def _entitlement(hub: Hub, nhs: str) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        [person_id] = views.people_by_nhs_number(conn, nhs)
        record = views.person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert record is not None
    return record["entitlement"]  # type: ignore[no-any-return]


def _assert_export_applied(hub: Hub) -> None:
    a = _entitlement(hub, NHS_A)
    assert (a["status"], a["start"], a["trigger_section"]) == ("active", "2026-03-01", "03")
    assert a["responsible_council"] == "E10000034"
    b = _entitlement(hub, NHS_B)
    assert (b["status"], b["start"]) == ("active", "2026-02-01")


@pytest.fixture
def sources(hub: Hub) -> Hub:
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="council-c", kind="council-csv",
                                      code_map={"S3": "03"}, csv=COLUMNS), now)
    hub.sources.save(SourceDefinition(source_id="council-d", kind="council-csv"), now)
    hub.sources.save(SourceDefinition(source_id="council-r", kind="council-rest"), now)
    hub.sources.save(SourceDefinition(source_id="trust-a", kind="hl7v2-mllp"), now)
    return hub


# -- the HTTP endpoint ------------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]

    def post(self, text: str | bytes, *, source: str = "council-c", token: str = "council-c",
             content_type: str = "text/csv", **params: str) -> Any:
        return self.client.post(
            f"/api/v1/sources/{source}/csv", content=text, params=params,
            headers={"Authorization": f"Bearer {self.tokens[token]}",
                     "Content-Type": content_type})


@pytest.fixture
def api(sources: Hub) -> Iterator[Api]:
    store = TokenStore(sources.engine, sources.clock)
    tokens = {name: store.create("source-system", source=name)[1]
              for name in ("council-c", "council-r")}
    with TestClient(create_app(sources)) as client:
        yield Api(client, tokens)


def test_endpoint_stores_every_row_reports_bad_lines_and_applies_the_rest(
        api: Api, sources: Hub) -> None:
    response = api.post(EXPORT, file_name="export-1.csv")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid-rows" and body["file"] == "export-1.csv"
    assert (body["rows"], body["accepted"], body["duplicates"], body["failed"]) == (6, 3, 0, 3)
    assert [(f["line"], f["code"], f["location"]) for f in body["failures"]] == BAD_LINES
    rows = _inbox(sources)
    assert [(r.message_id, r.channel, r.status) for r in rows] == [
        ("c-1", "council-csv", "received"),  # the row's own event id, as a REST event's
        ("c-2", "council-csv", "received"),
        ("c-3", "council-csv", "failed"),
        ("c-4", "council-csv", "failed"),
        ("c-5", "council-csv", "received"),
        ("c-6", "council-csv", "failed")]
    payload = json.loads(rows[1].payload)
    assert (payload["line"], payload["file"]) == (3, "export-1.csv")
    assert payload["row"]["Notes"] == "seen by AMHP\nfollow-up booked"
    assert rows[2].error["line"] == 5
    # The route answers the sending system with the detail, values included (as before).
    assert "'31/02/2026' is not a date" in body["failures"][1]["message"]

    assert _drain(sources) == 3
    _assert_export_applied(sources)

    again = api.post(EXPORT, file_name="export-1.csv").json()  # the same file again
    assert (again["accepted"], again["duplicates"], again["failed"]) == (0, 3, 3)
    assert all(f["duplicate"] for f in again["failures"])
    assert len(_inbox(sources)) == 6 and _drain(sources) == 0


def test_endpoint_takes_a_multipart_upload(api: Api, sources: Hub) -> None:
    good = "\n".join(line for i, line in enumerate(EXPORT.splitlines()) if i in (0, 1, 7))
    response = api.client.post(
        "/api/v1/sources/council-c/csv", files={"file": ("upload.csv", good, "text/csv")},
        headers={"Authorization": f"Bearer {api.tokens['council-c']}"})
    assert response.status_code == 202, response.text
    assert response.json() | {"failures": None} == {
        "file": "upload.csv", "rows": 2, "accepted": 2, "duplicates": 0, "failed": 0,
        "failures": None, "failures_truncated": False}
    assert [r.message_id for r in _inbox(sources)] == ["c-1", "c-5"]


def test_an_unnamed_body_is_known_by_its_digest(api: Api, sources: Hub) -> None:
    text = f"type,nhs_number,start\ns117.confirmed,{NHS_B},2026-02-01\n"
    response = api.post(text, source="council-d", token="council-c")
    assert response.status_code == 403  # a token of another source
    store = TokenStore(sources.engine)
    api.tokens["council-d"] = store.create("source-system", source="council-d")[1]
    body = api.post(text, source="council-d", token="council-d").json()
    assert body["file"].startswith("sha256:") and body["accepted"] == 1
    [row] = _inbox(sources)
    # No event_id column: the digest of the normalised row (our names, sorted, trimmed).
    normalised = json.dumps({"nhs_number": NHS_B, "start": "2026-02-01",
                             "type": "s117.confirmed"}, separators=(",", ":"))
    assert row.message_id == f"sha256:{hashlib.sha256(normalised.encode()).hexdigest()}"
    _drain(sources)
    assert _entitlement(sources, NHS_B)["status"] == "active"


def test_endpoint_refusals_store_nothing(api: Api, sources: Hub) -> None:
    no_type = api.post("Event ID,NHS No\nc-1,9990000018\n", file_name="x.csv")
    assert no_type.status_code == 422
    assert no_type.json() == {"error": "invalid-csv", "code": "missing-field",
                              "message": "the header has no 'Event' column",
                              "location": "line 1, column Event"}
    assert api.post(EXPORT, content_type="application/json").status_code == 415
    assert api.post(EXPORT, source="council-r", token="council-r").status_code == 404
    assert api.post(EXPORT, token="council-r").status_code == 403
    assert _inbox(sources) == []


def test_a_header_without_the_type_column_says_the_likely_cause(api: Api,
                                                                 sources: Hub) -> None:
    """Semicolon-separated (a spreadsheet's "CSV" in many locales) or empty: the error says
    so rather than only that the type column is missing."""
    semicolons = api.post("Event;Event ID;NHS No\ns117.confirmed;c-1;9990000018\n",
                          file_name="x.csv")
    assert semicolons.status_code == 422
    assert semicolons.json()["message"] == ("the header has no 'Event' column (the header "
                                            "looks separated by semicolons: use commas)")
    empty = api.post("", file_name="empty.csv")
    assert empty.status_code == 422
    assert empty.json()["message"] == "the file is empty: no header line"
    assert _inbox(sources) == []


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def run_cli(sources: Hub, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("S117HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("S117HUB_BROKER_URL", "stub://")
    monkeypatch.delenv("S117HUB_CONFIG_FILE", raising=False)

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="s117hub")
        add_import_csv(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["import-csv", *argv])
        return args.handler(Settings(), args)  # type: ignore[no-any-return]

    return run


def test_cli_imports_reports_bad_lines_and_exits_1(
        run_cli: Any, sources: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "export-2026-06-01.csv"
    path.write_text(EXPORT, encoding="utf-8")
    assert run_cli(str(path), "--source", "council-c", "--batch-size", "2") == 1
    out = capsys.readouterr().out
    assert "rows read: 6\naccepted: 3\nduplicates: 0\nfailed: 3\n" in out
    assert ("line 5: column NHS No: not a valid NHS number (ten digits with a modulus-11 "
            "check digit) (invalid-value)") in out
    assert "line 7: column Start: not a date (dd/mm/yyyy expected) (invalid-value)" in out
    assert "line 9: column Event: not a supported event type (unsupported-event)" in out
    assert "'31/02/2026'" not in out and "relocated" not in out
    rows = _inbox(sources)
    assert [r.status for r in rows].count("failed") == 3 and len(rows) == 6
    assert rows[0].message_id == "c-1"
    assert _drain(sources) == 3
    _assert_export_applied(sources)


def test_cli_with_the_default_column_map_exits_0(
        run_cli: Any, sources: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "default.csv"
    path.write_text("\ufefftype,nhs_number,family_name,section,start,end,date,council_code\n"
                    f"ordinary-residence.changed,{NHS_A},Testwood,,,,2020-01-01,E10000034\n"
                    f"detention.notified,{NHS_A},Testwood,03,2026-01-05,2026-03-01,,\n",
                    encoding="utf-8")
    assert run_cli(str(path), "--source", "council-d", "--json", "--no-progress") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows"], summary["accepted"], summary["failed"]) == (2, 2, 0)
    ids = [r.message_id for r in _inbox(sources)]
    assert len(ids) == 2 and all(i.startswith("sha256:") and len(i) == 71 for i in ids)
    _drain(sources)
    assert _entitlement(sources, NHS_A)["responsible_council"] == "E10000034"
    assert run_cli(str(path), "--source", "council-d", "--json") == 0  # again: duplicates
    assert json.loads(capsys.readouterr().out)["duplicates"] == 2
    with sources.engine.connect() as conn:  # each import audited, as the HTTP route audits
        audited = conn.execute(select(audit_log.c.actor, audit_log.c.action,
                                      audit_log.c.resource, audit_log.c.resource_id,
                                      audit_log.c.request)).all()
    assert [tuple(row[1:]) for row in audited] == [
        ("write", "inbound-file", "default.csv", "CLI s117hub import-csv")] * 2
    assert all(row.actor.startswith("cli:") for row in audited)


def test_cli_usage_errors_exit_2(run_cli: Any, sources: Hub, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "export.csv"
    path.write_text(EXPORT, encoding="utf-8")
    assert run_cli(str(tmp_path / "missing.csv"), "--source", "council-c") == 2
    assert run_cli(str(path), "--source", "council-nowhere") == 2
    assert run_cli(str(path), "--source", "trust-a") == 2
    assert "no council source 'trust-a'" in capsys.readouterr().err
    not_export = tmp_path / "other.csv"
    not_export.write_text("a,b\n1,2\n", encoding="utf-8")
    assert run_cli(str(not_export), "--source", "council-c") == 1
    assert _inbox(sources) == []


# -- streaming and batches ---------------------------------------------------------------


def test_a_large_file_is_stored_in_batches_with_one_hint_per_partition(sources: Hub) -> None:
    lines = ["type,nhs_number,start"] + [
        f"s117.confirmed,{make_synthetic(1000 + i)},2026-02-01" for i in range(1000)]
    data = io.BytesIO(("\n".join(lines) + "\n").encode())
    trail: list[tuple[str, int]] = []
    source = sources.sources.get("council-d")
    assert source is not None
    summary = import_csv(data, engine=sources.engine, source=source, file_ref="big.csv",
                         received_at=sources.clock.now(),
                         notify=lambda p: trail.append(("hint", p)), batch_size=100,
                         progress=lambda done: trail.append(("batch", done)))
    assert (summary.rows, summary.accepted, summary.failed) == (1000, 1000, 0)
    batches: list[list[int]] = [[]]
    for what, value in trail:
        if what == "batch":
            batches.append([])
        else:
            batches[-1].append(value)
    assert len(batches) == 12  # ten full batches, the final progress call, the tail
    for hinted in batches[:10]:
        assert hinted and len(hinted) == len(set(hinted))  # each partition once a batch
    assert trail[-1] == ("batch", len(data.getvalue()))
    rows = _inbox(sources)
    assert len(rows) == 1000 and {r.status for r in rows} == {"received"}
    assert len({r.partition for r in rows}) > 1  # spread over partitions, by person


def test_a_windows_1252_export_is_read(sources: Hub) -> None:
    text = f"type,nhs_number,family_name,start\ns117.confirmed,{NHS_A},Ó Briain,2026-02-01\n"
    source = sources.sources.get("council-d")
    assert source is not None
    summary = import_csv(io.BytesIO(text.encode("cp1252")), engine=sources.engine,
                         source=source, file_ref="latin.csv", received_at=sources.clock.now(),
                         notify=lambda _p: None)
    assert summary.accepted == 1
    [row] = _inbox(sources)
    assert json.loads(row.payload)["row"]["family_name"] == "Ó Briain"


# -- duplicates: a row is known by its event id or its content, never by the file's name -------


def _kinds(hub: Hub, nhs: str) -> list[str]:
    with hub.engine.connect() as conn:
        [person_id] = views.people_by_nhs_number(conn, nhs)
        record = views.person_json(conn, person_id, hub.clock.today(), hub.policy)
    assert record is not None
    return [p["kind"] for p in record["provenance"]]


def _summary(run_cli: Any, capsys: pytest.CaptureFixture[str], path: Path, source: str
             ) -> dict[str, Any]:
    run_cli(str(path), "--source", source, "--json", "--no-progress")
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_two_exports_with_the_same_name_and_different_rows_both_apply(
        run_cli: Any, sources: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = "type,nhs_number,family_name,section,start\n"
    monday = _write(tmp_path / "d1" / "export.csv",
                    f"{header}detention.notified,{NHS_A},Testwood,03,05/01/2026\n")
    tuesday = _write(tmp_path / "d2" / "export.csv",
                     f"{header}detention.notified,{NHS_B},Testwood,03,02/11/2026\n")
    first = _summary(run_cli, capsys, monday, "council-d")
    second = _summary(run_cli, capsys, tuesday, "council-d")
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    assert (second["accepted"], second["duplicates"]) == (1, 0)  # not line 2 of export.csv
    assert _drain(sources) == 2
    assert _kinds(sources, NHS_A).count("detention-started") == 1
    assert _kinds(sources, NHS_B).count("detention-started") == 1


def test_the_same_rows_under_another_name_or_route_are_duplicates(
        api: Api, run_cli: Any, sources: Hub, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = TokenStore(sources.engine)
    api.tokens["council-d"] = store.create("source-system", source="council-d")[1]
    rows = (f"detention.notified,{NHS_A},Testwood,03,05/01/2026,\n"
            f"s117.confirmed,{NHS_B},Testwood,,01/02/2026,\n")
    text = f"type,nhs_number,family_name,section,start,end\n{rows}"
    sent = api.post(text, source="council-d", token="council-d", file_name="monday.csv")
    assert sent.status_code == 202 and sent.json()["accepted"] == 2
    assert _drain(sources) == 2

    # The same rows by the command line: another name, columns reordered, cells padded, a
    # column the map does not name, the empty `end` column gone.
    reordered = _write(tmp_path / "tuesday.csv", (
        "Notes, start ,nhs_number,type,section,family_name\n"
        f"called back,05/01/2026,  {NHS_A} ,detention.notified,03,Testwood\n"
        f",01/02/2026,{NHS_B},s117.confirmed,, Testwood \n"))
    again = _summary(run_cli, capsys, reordered, "council-d")
    assert (again["rows"], again["accepted"], again["duplicates"]) == (2, 0, 2)
    unnamed = api.post(text, source="council-d", token="council-d").json()  # by its digest
    assert (unnamed["accepted"], unnamed["duplicates"]) == (0, 2)
    assert len(_inbox(sources)) == 2 and _drain(sources) == 0
    assert _kinds(sources, NHS_A).count("detention-started") == 1
    assert _kinds(sources, NHS_B).count("s117-confirmed") == 1

    changed = _write(tmp_path / "tuesday.csv", text.replace("05/01/2026", "06/01/2026"))
    assert _summary(run_cli, capsys, changed, "council-d")["accepted"] == 1  # a new row


def test_identical_rows_without_an_event_id_are_one_event(
        run_cli: Any, sources: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = f"s117.confirmed,{NHS_B},2026-02-01\n"
    path = _write(tmp_path / "twice.csv", f"type,nhs_number,start\n{row}{row}")
    summary = _summary(run_cli, capsys, path, "council-d")
    assert (summary["rows"], summary["accepted"], summary["duplicates"]) == (2, 1, 1)


def test_a_repeated_event_id_is_a_duplicate(
        api: Api, run_cli: Any, sources: Hub, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    header = "Event ID,Event,NHS No,Surname,MHA Section,Start\n"
    first = _write(tmp_path / "a.csv", (
        f"{header}c-1,detention.notified,{NHS_A},Testwood,S3,05/01/2026\n"
        f"c-2,s117.confirmed,{NHS_B},Testwood,,31/02/2026\n"))
    summary = _summary(run_cli, capsys, first, "council-c")
    assert (summary["accepted"], summary["failed"]) == (1, 1)
    # Another file, the same ids, other cells (a corrected date included): duplicates; the
    # first outcome stands, as for a repeated REST event_id.
    second = _write(tmp_path / "b.csv", (
        f"{header}c-1,detention.notified,{NHS_A},Testwood-Smith,S3,06/01/2026\n"
        f"c-2,s117.confirmed,{NHS_B},Testwood,,01/02/2026\n"
        f"c-1,detention.notified,{NHS_A},Testwood,S3,07/01/2026\n"))
    summary = _summary(run_cli, capsys, second, "council-c")
    assert (summary["rows"], summary["accepted"], summary["duplicates"]) == (3, 0, 2)
    [failure] = summary["failures"]
    assert (failure["line"], failure["duplicate"]) == (3, True)
    over_http = api.post(second.read_text(), file_name="c.csv").json()
    assert (over_http["accepted"], over_http["duplicates"], over_http["failed"]) == (0, 2, 1)
    assert [r.message_id for r in _inbox(sources)] == ["c-1", "c-2"]
    assert _drain(sources) == 1
    assert _kinds(sources, NHS_A).count("detention-started") == 1


def test_an_event_sent_by_rest_and_by_csv_is_one_message(
        api: Api, run_cli: Any, sources: Hub, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    event = {"event_id": "ev-9", "type": "s117.confirmed", "occurred_at": "2026-02-01T09:00:00Z",
             "person": {"nhs_number": NHS_B}, "data": {"start": "2026-02-01"}}
    posted = api.client.post("/api/v1/sources/council-r/events", json=event,
                             headers={"Authorization": f"Bearer {api.tokens['council-r']}"})
    assert posted.status_code == 202, posted.text
    path = _write(tmp_path / "rest.csv",
                  f"event_id,type,nhs_number,start\nev-9,s117.confirmed,{NHS_B},2026-02-01\n")
    summary = _summary(run_cli, capsys, path, "council-r")
    assert (summary["accepted"], summary["duplicates"]) == (0, 1)
    assert [r.message_id for r in _inbox(sources)] == ["ev-9"]


SECRET = "Lysander Quarrington"  # a synthetic name that must not reach stdout or stderr


def test_cli_failure_lines_never_echo_a_cell(
        run_cli: Any, sources: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "names.csv", (
        "type,nhs_number,family_name,birth_date,section,start,occurred_at\n"
        f"detention.notified,{NHS_A},Quarrington,{SECRET},03,2026-01-05,\n"
        f"detention.notified,{SECRET},Quarrington,,03,2026-01-05,\n"
        f"{SECRET},{NHS_A},Quarrington,,03,2026-01-05,\n"
        f"detention.notified,{NHS_A},Quarrington,,{SECRET},2026-01-05,\n"
        f"detention.notified,{NHS_A},Quarrington,,03,,\n"
        f"detention.notified,{NHS_A},Quarrington,,03,2026-01-05,{SECRET}\n"
        f"s117.confirmed,,,,,2026-01-05,\n"))
    assert run_cli(str(path), "--source", "council-d") == 1
    printed = capsys.readouterr()
    text = printed.out + printed.err
    for word in SECRET.split():
        assert word not in text
    failures = re.findall(r"^  line \d+: .*$", printed.out, re.MULTILINE)
    assert failures == [
        "  line 2: column birth_date: not a date (yyyy-mm-dd or dd/mm/yyyy expected) "
        "(invalid-value)",
        "  line 3: column nhs_number: not a valid NHS number (ten digits with a modulus-11 "
        "check digit) (invalid-value)",
        "  line 4: column type: not a supported event type (unsupported-event)",
        "  line 5: column section: a code that is neither standard nor in the source's code "
        "map (unknown-code)",
        "  line 6: column start: required but empty (missing-field)",
        "  line 7: column occurred_at: not a date and time (ISO 8601 expected) "
        "(invalid-value)",
        "  line 8: a required value is missing (the person needs an NHS number, a local id, "
        "or a name and birth date) (missing-field)"]
    assert "GET /api/v1/messages?source=council-d&status=failed" in printed.out

    assert run_cli(str(path), "--source", "council-d", "--json", "--no-progress") == 1
    printed = capsys.readouterr()
    assert "Lysander" not in printed.out + printed.err
    assert json.loads(printed.out)["failed"] == 7
    # The stored error keeps the detail, for integration engineers through the API.
    stored = [r.error["message"] for r in _inbox(sources) if r.error]
    assert any(SECRET in message for message in stored)
