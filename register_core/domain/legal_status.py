"""MHA legal-status classification (England), the register's canonical code system.

NHS Data Dictionary "Mental Health Act Legal Status Classification Code" as published in
UK Core; see ../shared/domain/standards.md section 1. CTO and conditional discharge are not
legal-status codes in England: they are periods of their own (MHSDS MHS404/MHS403).
"""

from __future__ import annotations

from .errors import InvalidValue

CODE_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-LegalStatusClassificationEngland"

LEGAL_STATUS: dict[str, str] = {
    "01": "Informal",
    "02": "Section 2",
    "03": "Section 3",
    "04": "Section 4",
    "05": "Section 5(2)",
    "06": "Section 5(4)",
    "07": "Section 35",
    "08": "Section 36",
    "09": "Section 37 with section 41 restrictions",
    "10": "Section 37",
    "12": "Section 38",
    "13": "Section 44",
    "14": "Section 46",
    "15": "Section 47 with section 49 restrictions",
    "16": "Section 47",
    "17": "Section 48 with section 49 restrictions",
    "18": "Section 48",
    "19": "Section 135",
    "20": "Section 136",
    "31": "Criminal Procedure (Insanity) Act 1964",
    "32": "Detained under other Acts",
    "35": "Guardianship (section 7)",
    "36": "Guardianship (section 37)",
    "37": "Section 45A, limitation direction in force",
    "38": "Section 45A, limitation direction ended",
    "98": "Not applicable",
    "99": "Not known",
}

# s3, s37 (±s41), s45A, s47 (±s49), s48 (±s49): joint policy 3.3.
ENTITLING_CODES: frozenset[str] = frozenset({"03", "09", "10", "15", "16", "17", "18", "37", "38"})

# Codes that are a detention in hospital at all (informal, guardianship, n/a are not).
DETAINED_CODES: frozenset[str] = frozenset(LEGAL_STATUS) - {"01", "35", "36", "98", "99"}


def normalise_code(code: str) -> str:
    """The two-digit form of a code as sources send it (``"3"``, ``" 03 "`` -> ``"03"``).

    Does not check the code is known: ``validate_code`` does.
    """
    code = code.strip()
    if len(code) == 1 and code.isascii() and code.isdigit():
        code = "0" + code
    return code


def validate_code(code: str, field: str = "section") -> str:
    code = normalise_code(code)
    if code not in LEGAL_STATUS:
        raise InvalidValue(f"unknown MHA legal-status code {code!r}", field=field,
                           rule="mhsds-legal-status-code")
    return code


def is_entitling(code: str | None) -> bool:
    """Whether a detention under this code gives a right to s117 aftercare on leaving.

    Takes the code as ``validate_code`` accepts it (``"3"`` is s3): commands keep the code as
    the source sent it, so the rules must not read ``"3"`` as non-entitling.
    """
    return code is not None and normalise_code(code) in ENTITLING_CODES


def describe(code: str) -> str:
    code = normalise_code(code)
    return LEGAL_STATUS.get(code, f"unknown code {code}")
