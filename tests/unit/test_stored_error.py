"""An inbox row's ``error`` has one shape whatever failed (README, public contract)."""

from __future__ import annotations

from mapping.errors import MAPPING_ERROR_CODES, MappingError
from register_core.domain.errors import InvalidValue
from register_core.services.inbound import stored_error

KEYS = {"kind", "code", "message", "location", "line", "field", "rule"}


def test_mapping_and_register_errors_carry_the_same_keys() -> None:
    mapping = stored_error(MappingError(MAPPING_ERROR_CODES[0], "bad date",
                                        location="PV1-44", line=3))
    register = stored_error(InvalidValue("ends before it starts", field="detention.end",
                                         rule="end-after-start"))
    assert set(mapping) == set(register) == KEYS
    assert (mapping["kind"], mapping["location"], mapping["line"], mapping["rule"]) == (
        "mapping", "PV1-44", 3, None)
    assert (register["kind"], register["code"], register["field"], register["rule"],
            register["line"]) == ("register", "invalid-value", "detention.end",
                                  "end-after-start", None)
