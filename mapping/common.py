"""Helpers every source mapper shares: code translation, NHS numbers, dates, provenance."""

from __future__ import annotations

import re
from datetime import date, datetime

from register_core.domain import nhs_number
from register_core.domain.commands import PersonRef, Provenance
from register_core.domain.legal_status import DETAINED_CODES, LEGAL_STATUS, describe

from .config import CONDITIONAL_DISCHARGE, CTO, SourceMappingConfig
from .errors import MappingError

ENGLAND_LEGAL_STATUS_SYSTEM = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland"
)

# One vocabulary for sex across sources: FHIR administrative-gender (outbound is FHIR).
# HL7 table 0001: A ambiguous, N not applicable, O other, U unknown.
_SEX = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown",
        "N": "unknown", "MALE": "male", "FEMALE": "female", "OTHER": "other",
        "UNKNOWN": "unknown"}

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][0-9A-Z]?)\s*([0-9][A-Z]{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def translate_legal_status(raw: str, config: SourceMappingConfig, location: str, *,
                           system: str | None = None) -> str:
    """Return an MHSDS legal-status code or the marker CTO / CD for a source's code.

    The code map wins; otherwise an MHSDS code (England list) or a marker passes as itself.
    """
    code = raw.strip()
    if not code:
        raise MappingError("missing-field", "the legal-status code is empty", location=location)
    mapped = config.lookup(code, system)
    if mapped is not None:
        return mapped
    if system and system != ENGLAND_LEGAL_STATUS_SYSTEM:
        # Same digits, other meaning (Wales 35 = CTO): never read another list as England's.
        raise MappingError("unknown-code", f"legal-status code {code!r} from {system} has no "
                           f"entry in the code map of source {config.source_id!r}",
                           location=location)
    upper = code.upper()
    if upper == config.cto_code.upper():
        return CTO
    if upper == config.conditional_discharge_code.upper():
        return CONDITIONAL_DISCHARGE
    if len(code) == 1 and code.isdigit():
        code = "0" + code
    if code in LEGAL_STATUS:
        return code
    raise MappingError("unknown-code", f"legal-status code {raw.strip()!r} is neither an MHSDS "
                       f"code nor in the code map of source {config.source_id!r}",
                       location=location)


def is_detained(code: str) -> bool:
    return code in DETAINED_CODES


def describe_code(code: str) -> str:
    return {CTO: "community treatment order", CONDITIONAL_DISCHARGE: "conditional discharge"}.get(
        code, describe(code))


def valid_nhs_number(raw: str, location: str) -> str:
    """The normalised number, or a MappingError that names where it came from."""
    if not nhs_number.is_valid(raw):
        digits = nhs_number.normalise(raw)
        why = ("is not ten digits" if len(digits) != 10 or not digits.isdigit()
               else "fails the modulus-11 check digit")
        raise MappingError("invalid-value", f"NHS number {why}", location=location)
    return nhs_number.normalise(raw)


def normalise_sex(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
    return _SEX.get(raw.strip().upper(), "unknown")


def normalise_postcode(raw: str | None) -> str | None:
    """UK postcodes as ``AB1 2CD``; anything else kept upper-cased (overseas, partial)."""
    if not raw or not raw.strip():
        return None
    text = " ".join(raw.upper().split())
    match = _POSTCODE.match(text)
    return f"{match.group(1)} {match.group(2)}" if match else text


def require_identity(person: PersonRef, location: str) -> PersonRef:
    """Matching needs an NHS number, a local id, or at least name and birth date."""
    if person.nhs_number or person.local_id or (person.family_name and person.birth_date):
        return person
    raise MappingError("missing-field", "no NHS number, local id, or name and birth date to "
                       "identify the person", location=location)


def parse_iso_date(value: str, location: str) -> date:
    text = value.strip()
    if _ISO_DATE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise MappingError("invalid-value", f"{value!r} is not a date (YYYY-MM-DD)",
                       location=location)


def provenance(config: SourceMappingConfig, source_ref: str, received_at: datetime,
               recorded_by: str) -> Provenance:
    return Provenance(source=config.source_id, source_ref=source_ref,
                      received_at=received_at, recorded_by=recorded_by)
