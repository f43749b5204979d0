"""Source configurations the mapping tests share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mapping.config import SourceMappingConfig

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def trust() -> SourceMappingConfig:
    """An HL7 v2 trust with the default ZLS location and one local code."""
    return SourceMappingConfig(source_id="trust-a", kind="hl7v2-mllp", code_map={"SEC3": "03"},
                               default_provider_ods="RX1")


@pytest.fixture
def fhir_trust() -> SourceMappingConfig:
    return SourceMappingConfig(source_id="trust-f", kind="fhir-r4")


@pytest.fixture
def council() -> SourceMappingConfig:
    return SourceMappingConfig(source_id="council-w", kind="council-rest",
                               code_map={"S3": "03", "S2": "02"})
