"""Council CSV: one row per event, column mapping, and bad rows reported by line and column."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from mapping.config import SourceMappingConfig
from mapping.council import CsvColumnMap, map_csv_row, map_csv_text
from mapping.errors import MappingError
from register_core.domain.commands import (
    RecordDetentionStarted,
    RecordLeftHospital,
    RecordS117Ended,
    RecordServiceCharged,
    Signoff,
)

from . import samples as s
from .conftest import RECEIVED

COLUMNS = CsvColumnMap(columns=s.COUNCIL_CSV_COLUMNS)


def test_a_file_with_bad_rows_keeps_going(council: SourceMappingConfig) -> None:
    result = map_csv_text(s.COUNCIL_CSV, COLUMNS, council, RECEIVED, file_ref="export-1")
    assert [row.line for row in result.rows] == s.COUNCIL_CSV_GOOD_LINES
    assert [(e.line, e.code, e.location) for e in result.errors] == [
        (4, "invalid-value", "line 4, column NHS No"),
        (5, "invalid-value", "line 5, column Kind"),
        (7, "invalid-value", "line 7, column Start"),
        (9, "unsupported-event", "line 9, column Event"),
        (10, "unknown-code", "line 10, column MHA Section"),
    ]
    started, left = result.rows[0].commands
    assert isinstance(started, RecordDetentionStarted)
    assert isinstance(left, RecordLeftHospital)
    assert (started.section, started.start, started.end) == ("03", date(2026, 1, 5),
                                                             date(2026, 3, 1))
    assert (started.person.nhs_number, started.person.birth_date) == (s.NHS_1,
                                                                      date(1980, 1, 1))
    assert started.provenance.source_ref == "csv-1"
    charge = result.rows[3].commands[0]
    assert isinstance(charge, RecordServiceCharged)
    assert (charge.service, charge.under_s117, charge.amount) == ("Day care, weekly", True,
                                                                  "40.00")
    assert len(result.commands) == 5


def test_default_headers_are_the_field_names(council: SourceMappingConfig) -> None:
    text = ("type,nhs_number,date,reason,council_signoff_by,council_signoff_date,grounds\n"
            "s117.ended,9990000018,2027-02-01,Needs met,AMHP lead,30/01/2027,plan met; "
            "reviewed jointly\n")
    result = map_csv_text(text, CsvColumnMap(), council, RECEIVED, file_ref="f-2")
    assert result.errors == []
    [ended] = result.commands
    assert isinstance(ended, RecordS117Ended)
    assert ended.council_signoff == Signoff(by="AMHP lead", date=date(2027, 1, 30))
    assert ended.icb_signoff is None
    assert ended.grounds == ("plan met", "reviewed jointly")
    assert ended.provenance.source_ref == "f-2:2"  # no event_id column: file and line


def test_map_csv_row_raises_with_the_line(council: SourceMappingConfig) -> None:
    row = {"type": "s117.ended", "nhs_number": s.NHS_1, "date": "2027-02-01",
           "council_signoff_date": "2027-02-01"}
    with pytest.raises(MappingError) as caught:
        map_csv_row(row, 12, CsvColumnMap(), council, RECEIVED)
    assert (caught.value.code, caught.value.line) == ("missing-field", 12)
    assert caught.value.location == "line 12, column council_signoff_by"


def test_a_quoted_cell_over_two_lines_keeps_line_numbers(council: SourceMappingConfig) -> None:
    text = ("type,nhs_number,start,reason\n"
            "s117.confirmed,9990000018,2026-03-01,\"first\nsecond\"\n"
            "s117.confirmed,9990000019,2026-03-01,\n")
    result = map_csv_text(text, CsvColumnMap(), council, RECEIVED)
    assert [row.line for row in result.rows] == [2]
    assert [e.location for e in result.errors] == ["line 4, column nhs_number"]


def test_blank_rows_are_skipped_and_a_missing_type_column_stops(
        council: SourceMappingConfig) -> None:
    text = "type,nhs_number,start\n,,\ns117.confirmed,9990000018,2026-03-01\n"
    assert [row.line for row in map_csv_text(text, CsvColumnMap(), council, RECEIVED).rows] == [3]
    result = map_csv_text("nhs_number,start\n9990000018,2026-03-01\n", CsvColumnMap(),
                          council, RECEIVED)
    assert result.rows == []
    assert [(e.line, e.location) for e in result.errors] == [(1, "line 1, column type")]


def test_column_map_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="unknown CSV fields"):
        CsvColumnMap(columns={"nhs": "NHS No"})


def test_the_readme_lists_every_csv_field() -> None:
    """A council's integration engineer maps their export from the README's list: it must be
    the mapping's own (mapping.council.CSV_FIELDS), no more, no less."""
    import re
    from pathlib import Path

    from mapping.council import CSV_FIELDS

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    bullet = readme.split("- **Council CSV.**", 1)[1].split("`csv.date_formats`", 1)[0]
    listed = re.findall(r"`([a-z_0-9]+)`", bullet)
    assert [name for name in listed if name != "csv"] == list(CSV_FIELDS)
