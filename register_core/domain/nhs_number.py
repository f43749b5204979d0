"""NHS number: ten digits, modulus-11 check digit (standards.md section 4)."""

from __future__ import annotations

import re

from .errors import InvalidValue

_WEIGHTS = range(10, 1, -1)

# Ten digits, optionally spaced 3-3-4, standing alone: anything shaped like an NHS number.
# Runs inside identifiers (a UUID such as ...-b030-0439610a8bfa) are not numbers anyone typed.
NHS_NUMBER_LIKE = re.compile(r"(?<![0-9A-Za-z-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z-])")


def redact(text: str, replacement: str = "[nhs-number]") -> str:
    """Mask every NHS-number-shaped run, for logs and audit text."""
    return NHS_NUMBER_LIKE.sub(replacement, text)


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None where no valid number can end them."""
    remainder = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True)) % 11
    digit = 11 - remainder
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def normalise(raw: str) -> str:
    """Strip the spaces and dashes people type (``943 476 5919``)."""
    return raw.replace(" ", "").replace("-", "").strip()


def _ten_ascii_digits(digits: str) -> bool:
    # str.isdigit() alone also accepts other scripts' digits and superscripts ("²"), which
    # int() then rejects or silently converts: an NHS number is ten ASCII digits.
    return len(digits) == 10 and digits.isascii() and digits.isdigit()


def is_valid(raw: str | None) -> bool:
    if not raw:
        return False
    digits = normalise(raw)
    if not _ten_ascii_digits(digits):
        return False
    return check_digit(digits[:9]) == int(digits[9])


def validate(raw: str, field: str = "nhs_number") -> str:
    """Return the normalised number, or raise naming the field and the modulus-11 rule."""
    digits = normalise(raw)
    if not _ten_ascii_digits(digits):
        raise InvalidValue("NHS number must be ten digits", field=field, rule="nhs-number-format")
    if check_digit(digits[:9]) != int(digits[9]):
        raise InvalidValue("NHS number fails the modulus-11 check digit", field=field,
                           rule="nhs-number-check-digit")
    return digits


def make_synthetic(serial: int) -> str:
    """A valid test-range number (999…): never issued to a real person."""
    for offset in range(serial * 2, serial * 2 + 20):
        stem = f"999{offset % 1_000_000:06d}"
        digit = check_digit(stem)
        if digit is not None:
            return f"{stem}{digit}"
    raise AssertionError("unreachable: one in eleven stems is invalid")
