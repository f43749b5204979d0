"""Source mapping configuration: documented defaults and what a code map may say."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mapping.common import translate_legal_status
from mapping.config import LegalStatusLocation, SourceMappingConfig
from mapping.errors import MappingError


def test_default_legal_status_location_is_zls() -> None:
    where = SourceMappingConfig(source_id="t", kind="hl7v2-mllp").legal_status_location
    assert (where.segment, where.code_field, where.start_field, where.end_field,
            where.end_reason_field) == ("ZLS", 1, 2, 3, 4)
    assert where.ref(1) == "ZLS-1"
    assert LegalStatusLocation(segment="pv2", code_field=3, code_component=2).ref(3, 2) == "PV2-3.2"


@pytest.mark.parametrize("segment", ["Z", "ZLSX", "1AB", ""])
def test_segment_ids_are_checked(segment: str) -> None:
    with pytest.raises(ValidationError):
        LegalStatusLocation(segment=segment)


def test_code_map_targets_must_be_mhsds_codes_or_markers() -> None:
    config = SourceMappingConfig(source_id="t", kind="hl7v2-mllp",
                                 code_map={" s3 ": "3", "CTO-L": "cto", "X": "CD"})
    assert config.code_map == {"s3": "03", "CTO-L": "CTO", "X": "CD"}
    with pytest.raises(ValidationError, match="MHSDS"):
        SourceMappingConfig(source_id="t", kind="hl7v2-mllp", code_map={"S3": "33"})


def test_translation_order() -> None:
    config = SourceMappingConfig(source_id="t", kind="hl7v2-mllp", code_map={"S3": "03",
                                                                             "03": "02"})
    assert translate_legal_status("s3", config, "ZLS-1") == "03"  # case-insensitive key
    assert translate_legal_status("03", config, "ZLS-1") == "02"  # the map wins over identity
    assert translate_legal_status("10", config, "ZLS-1") == "10"  # identity for MHSDS codes
    assert translate_legal_status("5", config, "ZLS-1") == "05"
    assert translate_legal_status("cto", config, "ZLS-1") == "CTO"
    with pytest.raises(MappingError) as caught:
        translate_legal_status("11", config, "ZLS-1")  # no code 11 in the England list
    assert (caught.value.code, caught.value.location) == ("unknown-code", "ZLS-1")


def test_renamed_markers() -> None:
    config = SourceMappingConfig(source_id="t", kind="hl7v2-mllp", cto_code="17A",
                                 conditional_discharge_code="COND")
    assert translate_legal_status("17a", config, "ZLS-1") == "CTO"
    assert translate_legal_status("COND", config, "ZLS-1") == "CD"


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        SourceMappingConfig(source_id="t", kind="hl7v2-mllp", legal_status_segment="ZU1")
    with pytest.raises(ValidationError):
        SourceMappingConfig(source_id="t", kind="smoke-signal")


def test_mapping_error_codes_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown mapping error code"):
        MappingError("oops", "x")  # type: ignore[arg-type]
    error = MappingError("missing-field", "no PID", location="PID")
    assert str(error) == "missing-field at PID: no PID"
    assert error.as_dict() == {"error": "missing-field", "location": "PID", "line": None,
                               "message": "no PID"}
