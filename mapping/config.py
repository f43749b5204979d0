"""Per-source mapping configuration: where a source puts the legal status and what its codes mean.

Public material does not say which HL7 v2 field carries the MHA legal status, and trusts use
local Z segments, so the place and the code table are configuration per source
(../shared/domain/standards.md section 2). The defaults, until a source configures otherwise:

* **Legal-status location** (``LegalStatusLocation()``): a ``ZLS`` segment after PV1/PV2 —
  ZLS-1 legal-status code (component 1), ZLS-2 start date-time, ZLS-3 end date-time,
  ZLS-4 end reason. Another place is configured by segment and field, for example the admit
  reason ``LegalStatusLocation(segment="PV2", code_field=3)`` or a UK Z segment
  ``LegalStatusLocation(segment="ZU1", code_field=6, start_field=7)``. The ZLS-2/3/4 layout
  is ZLS's own: in any other segment a start, end or end-reason field is read only when it is
  configured (an integration engineer who names PV2-3 for the code does not mean PV2-2 to be a
  start date and PV2-3 itself an end date). A ZLS location whose code field moved onto one of
  the ZLS-2/3/4 defaults is refused until those fields are given explicitly (a number, or
  ``None`` for none). Where no start field is configured (or it is empty) the start falls
  back to PV1-44 (admission) on A01/A04, the discharge date (PV1-45) for a CTO/CD on A03,
  and otherwise to the event date: EVN-6, else EVN-2, else MSH-7.
* **Code map** (``code_map``): local code → MHSDS legal-status code (two digits, e.g. ``"03"``)
  or one of the markers ``"CTO"`` / ``"CD"``. A code the map does not hold is taken as it is
  when it is already an MHSDS code (``"3"`` is read as ``"03"``) or a marker; anything else is a
  ``MappingError(code="unknown-code")``. FHIR codings are looked up as ``"<system>|<code>"``
  first, then as the bare code; a coding from any system other than the England list (the
  Wales list for one) must be mapped explicitly.
* **CTO and conditional discharge** arrive as the legal-status code ``CTO`` and ``CD``
  (``cto_code`` / ``conditional_discharge_code`` rename them), with start and end in the
  start/end fields. An end reason ``02`` on a CTO means revoked (MHSDS MHS404).
* **s17 leave** (``s17_leave_event``): ADT A21 starts and A22 ends s17 leave (inferred from the
  ITK structures). ``None`` means this source's leave-of-absence messages are not s17 leave.
* **Identifiers**: the NHS number is the PID-3 repetition whose assigning authority is in
  ``nhs_number_authorities`` (default ``NHS``) with type ``NH`` or no type; the local id is the
  repetition of type ``local_id_type`` (default ``MR``), else the first non-NHS one.
* **Provider**: PV1-3 facility, else MSH-4, else ``default_provider_ods``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from register_core.domain.legal_status import LEGAL_STATUS

SourceKind = Literal["hl7v2-mllp", "fhir-r4", "council-rest", "council-csv", "council-poll"]

CTO = "CTO"
CONDITIONAL_DISCHARGE = "CD"
STATUS_MARKERS: frozenset[str] = frozenset({CTO, CONDITIONAL_DISCHARGE})

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
DEFAULT_SEGMENT = "ZLS"
# The ZLS layout: where ZLS keeps the start, the end and the end reason. Not a default for any
# other segment (see LegalStatusLocation._zls_layout).
ZLS_LAYOUT: dict[str, int] = {"start_field": 2, "end_field": 3, "end_reason_field": 4}
_OPTIONAL_FIELD = "{}. Left out: {} when the segment is ZLS, otherwise none; null: none."


class LegalStatusLocation(BaseModel):
    """Where in an HL7 v2 message the legal status sits (1-based field numbers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segment: str = DEFAULT_SEGMENT
    code_field: int = Field(default=1, ge=1)
    code_component: int = Field(default=1, ge=1)
    start_field: int | None = Field(default=None, ge=1, description=_OPTIONAL_FIELD.format(
        "The field of the start date-time", 2))
    end_field: int | None = Field(default=None, ge=1, description=_OPTIONAL_FIELD.format(
        "The field of the end date-time", 3))
    end_reason_field: int | None = Field(default=None, ge=1, description=_OPTIONAL_FIELD.format(
        "The field of the end reason", 4))

    @model_validator(mode="before")
    @classmethod
    def _zls_layout(cls, data: object) -> object:
        """Fill in the ZLS layout for a ZLS location that leaves those fields out; refuse one
        whose code field is where a left-out field would default to. Fields given explicitly
        are kept as given (a stored source always has all of them)."""
        if not isinstance(data, dict):
            return data
        segment = data.get("segment", DEFAULT_SEGMENT)
        if not isinstance(segment, str) or segment.strip().upper() != DEFAULT_SEGMENT:
            return data  # another segment: what is left out is not read at all
        missing = {name: field for name, field in ZLS_LAYOUT.items() if name not in data}
        try:
            code_field = int(data.get("code_field", 1))
        except (TypeError, ValueError):
            return data  # the field validation says what is wrong with it
        clashing = [name for name, field in missing.items() if field == code_field]
        if clashing:
            raise ValueError(
                f"code_field {code_field} is where the ZLS layout puts "
                f"{' and '.join(clashing)}: give {', '.join(missing)} explicitly (a field "
                "number, or null for none)")
        return {**data, **missing}

    @field_validator("segment")
    @classmethod
    def _segment_id(cls, value: str) -> str:
        value = value.strip().upper()
        if not _SEGMENT_ID.match(value):
            raise ValueError("segment must be a three-character HL7 segment id, e.g. ZLS or PV2")
        return value

    def ref(self, field: int | None, component: int = 1) -> str:
        """The HL7 location string (``ZLS-1``) used in errors and ACKs."""
        if field is None:
            return self.segment
        return f"{self.segment}-{field}" + (f".{component}" if component > 1 else "")


class S17LeaveEvent(BaseModel):
    """Which ADT triggers mean s17 leave out of hospital and back for this source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_trigger: str = "A21"
    end_trigger: str = "A22"


class SourceMappingConfig(BaseModel):
    """Everything the pure mappers need to know about one sending system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_id: str = Field(min_length=1)
    kind: SourceKind
    display_name: str | None = None
    # The partner's own organisation (ODS for a trust, GSS for a council): a council source's
    # sign-off of an ending is given for its council (joint policy 16.1: the responsible one).
    organisation_code: str | None = None
    code_map: dict[str, str] = Field(default_factory=dict)
    legal_status_location: LegalStatusLocation = Field(default_factory=LegalStatusLocation)
    default_provider_ods: str | None = None
    s17_leave_event: S17LeaveEvent | None = Field(default_factory=S17LeaveEvent)
    cto_code: str = CTO
    conditional_discharge_code: str = CONDITIONAL_DISCHARGE
    nhs_number_authorities: tuple[str, ...] = ("NHS",)
    local_id_type: str = "MR"
    hl7_sending_application: str | None = None  # MSH-3 the connector matches the sender on
    hl7_sending_facility: str | None = None  # MSH-4
    fhir_local_id_system: str | None = None  # Patient.identifier system of the local record id

    @field_validator("code_map")
    @classmethod
    def _code_map_targets(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned: dict[str, str] = {}
        for local, target in value.items():
            code = target.strip().upper()
            if len(code) == 1 and code.isdigit():
                code = "0" + code
            if code not in LEGAL_STATUS and code not in STATUS_MARKERS:
                raise ValueError(f"code map {local!r} -> {target!r}: the target must be an "
                                 "MHSDS legal-status code or CTO / CD")
            cleaned[local.strip()] = code
        return cleaned

    def lookup(self, code: str, system: str | None = None) -> str | None:
        """The mapped target of a local code (``system|code`` first for FHIR), or None."""
        keys = (f"{system}|{code}", code) if system else (code,)
        for key in keys:
            if key in self.code_map:
                return self.code_map[key]
            if key.upper() in self.code_map:  # local codes are often typed in either case
                return self.code_map[key.upper()]
        return None
