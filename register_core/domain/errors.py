"""Errors the register raises when a fact or a decision breaks a rule.

    RegisterError                 base: every one names the field and the rule it broke
    ├── InvalidValue              a value is malformed (bad NHS number, unknown code)
    ├── ImpossibleDates           dates contradict each other (end before start, birth after)
    ├── UnlawfulEnding            an ending decision breaks the s117 ending rules
    ├── NotFound                  the person, dispute or exception does not exist
    └── ConcurrentChange          someone else changed the same record first (retry)

The HTTP, MLLP and FHIR edges map these to 4xx bodies, AE/AR ACKs and OperationOutcomes.
"""

from __future__ import annotations


class RegisterError(Exception):
    """A rule refused a change. ``field`` and ``rule`` say which and why."""

    code = "register-error"

    def __init__(self, message: str, *, field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule

    def as_dict(self) -> dict[str, str | None]:
        return {"error": self.code, "message": self.message, "field": self.field,
                "rule": self.rule}


class InvalidValue(RegisterError):
    code = "invalid-value"


class IdentityConflict(InvalidValue):
    """Two records that cannot be one person (different valid NHS numbers, standards.md
    section 4)."""

    code = "identity-conflict"


class ImpossibleDates(RegisterError):
    code = "impossible-dates"


class UnlawfulEnding(RegisterError):
    code = "unlawful-ending"


class NotFound(RegisterError):
    code = "not-found"


class ConcurrentChange(RegisterError):
    code = "concurrent-change"
