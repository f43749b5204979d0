"""The one error the mapping layer raises: a payload that cannot become canonical commands.

    MappingError(code, message, location=…, line=…)
      code       what went wrong, a stable identifier (``MAPPING_ERROR_CODES``)
      location   where in the payload: ``PID-3``, ``ZLS-1``, ``MSH-9.2`` (HL7 v2),
                 ``Bundle.entry[2].resource.period.start`` (FHIR), ``data.start`` (council
                 JSON), ``line 7, column Section`` (council CSV)
      line       the CSV line number, when there is one

The edges turn it into an AE/AR ACK with an ERR segment, an OperationOutcome or a 4xx body;
mapping itself never decides how it is reported.
"""

from __future__ import annotations

from typing import Literal, get_args

MappingErrorCode = Literal[
    "unparseable",  # not the format at all (garbage, broken JSON structure, no MSH)
    "missing-field",  # a field we need is empty or absent
    "invalid-value",  # present but malformed: a bad date, a failed NHS number check digit
    "unknown-code",  # a code that neither MHSDS nor the source's code map knows
    "unsupported-message-type",  # e.g. an ORU where we take ADT only
    "unsupported-event",  # a trigger or event type we do not map
]
MAPPING_ERROR_CODES: tuple[str, ...] = get_args(MappingErrorCode)


class MappingError(Exception):
    """A source payload that cannot be mapped; ``code`` and ``location`` say why and where."""

    def __init__(self, code: MappingErrorCode, message: str, *, location: str | None = None,
                 line: int | None = None) -> None:
        if code not in MAPPING_ERROR_CODES:  # a typo here would surface as a wrong ACK code
            raise ValueError(f"unknown mapping error code {code!r}")
        super().__init__(message)
        self.code: MappingErrorCode = code
        self.message = message
        self.location = location
        self.line = line

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.code}{where}: {self.message}"

    def __repr__(self) -> str:
        return (f"MappingError(code={self.code!r}, location={self.location!r}, "
                f"message={self.message!r})")

    def as_dict(self) -> dict[str, str | int | None]:
        return {"error": self.code, "location": self.location, "line": self.line,
                "message": self.message}
