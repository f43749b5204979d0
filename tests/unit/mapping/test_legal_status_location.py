"""Moving the legal status out of ZLS: the README's examples, as written, map as documented;
the ZLS-2/3/4 layout is never laid over another segment or over the code field."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mapping.config import LegalStatusLocation, SourceMappingConfig
from mapping.hl7v2 import map_adt, parse_adt
from register_core.adapters.sources import SourceDefinition
from register_core.domain.commands import RecordDetentionStarted

from . import samples as s
from .conftest import RECEIVED

README = Path(__file__).resolve().parents[3] / "README.md"
# The admit reason PV2-3 carries the trust's local code; the admission is PV1-44.
A01_PV2_S3 = s.adt("A01", s.evn("A01"), s.pid(), s.pv1(admit="202601050930"), "PV2|||S3|")


def readme_location(segment: str) -> dict[str, Any]:
    """The README's example ``legal_status_location`` for ``segment``, read as TOML."""
    text = " ".join(README.read_text(encoding="utf-8").split())  # examples wrap lines
    found = re.search(r"`(\{segment = \"" + segment + r"\"[^`]*\})`", text)
    assert found, f"README has no {segment} legal_status_location example"
    return tomllib.loads(f"location = {found.group(1)}")["location"]


def source(location: dict[str, Any], **extra: Any) -> SourceMappingConfig:
    """Through the same model as ``POST /api/v1/sources`` and the config file, and through
    the stored JSON the registry reads it back from."""
    definition = SourceDefinition.model_validate({
        "source_id": "trust-b", "kind": "hl7v2-mllp", "hl7_sending_application": "EPR",
        "code_map": {"S3": "03", "T3": "03"}, "legal_status_location": location, **extra})
    stored = definition.model_dump(mode="json")
    return SourceDefinition.model_validate(stored).mapping_config()


def test_the_readme_pv2_example_maps_as_documented() -> None:
    location = readme_location("PV2")
    assert location == {"segment": "PV2", "code_field": 3}
    config = source(location)
    where = config.legal_status_location
    assert (where.start_field, where.end_field, where.end_reason_field) == (None, None, None)
    [command] = map_adt(parse_adt(A01_PV2_S3), config, RECEIVED)
    assert isinstance(command, RecordDetentionStarted)
    # the code from PV2-3 through the code map; the start is the admission (PV1-44)
    assert (command.section, command.start, command.end) == ("03", date(2026, 1, 5), None)


def test_the_readme_zu1_example_maps_as_documented() -> None:
    location = readme_location("ZU1")
    assert location == {"segment": "ZU1", "code_field": 6, "start_field": 7}
    [command] = map_adt(parse_adt(s.A01_ZU1_LOCAL_CODE), source(location), RECEIVED)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.section, command.start) == ("03", date(2026, 1, 6))  # ZU1-7


def test_the_readme_example_from_a_config_file() -> None:
    config_file = tomllib.loads('''
        [[sources]]
        source_id = "trust-b"
        kind = "hl7v2-mllp"
        hl7_sending_application = "EPR"
        code_map = { S3 = "03" }
        legal_status_location = { segment = "PV2", code_field = 3 }
    ''')
    config = SourceDefinition.model_validate(config_file["sources"][0]).mapping_config()
    [command] = map_adt(parse_adt(A01_PV2_S3), config, RECEIVED)
    assert isinstance(command, RecordDetentionStarted) and command.section == "03"


def test_fields_named_in_another_segment_are_read() -> None:
    config = source({"segment": "PV2", "code_field": 3, "start_field": 8, "end_field": 9})
    raw = s.adt("A01", s.evn("A01"), s.pid(), s.pv1(),
                s.segment("PV2", {3: "S3", 8: "20260107", 9: "20260301"}))
    [command] = map_adt(parse_adt(raw), config, RECEIVED)
    assert isinstance(command, RecordDetentionStarted)
    assert (command.start, command.end) == (date(2026, 1, 7), date(2026, 3, 1))


@pytest.mark.parametrize("given", [{}, {"segment": "ZLS"}, {"segment": "zls", "code_field": 1},
                                   {"segment": "ZLS", "code_field": 5}])
def test_zls_keeps_its_layout(given: dict[str, Any]) -> None:
    where = LegalStatusLocation.model_validate(given)
    assert (where.start_field, where.end_field, where.end_reason_field) == (2, 3, 4)
    assert SourceMappingConfig(source_id="t", kind="hl7v2-mllp").legal_status_location == (
        LegalStatusLocation())


@pytest.mark.parametrize(("given", "named"), [
    ({"segment": "ZLS", "code_field": 3}, "end_field"),
    ({"code_field": 2}, "start_field"),
    ({"segment": "ZLS", "code_field": 4, "start_field": 2, "end_field": 3}, "end_reason_field"),
])
def test_a_zls_code_field_on_a_layout_default_is_refused(given: dict[str, Any],
                                                         named: str) -> None:
    with pytest.raises(ValidationError, match=f"ZLS layout puts {named}"):
        LegalStatusLocation.model_validate(given)


def test_a_zls_code_field_with_its_other_fields_named_is_taken() -> None:
    where = LegalStatusLocation(segment="ZLS", code_field=3, start_field=2, end_field=None,
                                end_reason_field=None)
    assert (where.code_field, where.start_field, where.end_field) == (3, 2, None)


def test_explicit_fields_are_kept_as_given() -> None:
    """A stored source has every field written out: it loads exactly as it was saved."""
    saved = {"segment": "PV2", "code_field": 3, "code_component": 1, "start_field": 2,
             "end_field": 4, "end_reason_field": 5}
    assert LegalStatusLocation.model_validate(saved).model_dump() == saved
