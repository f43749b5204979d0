"""Property-based tests of the whole HTTP API from its own ``/openapi.json`` (schemathesis).

Run in process against the ASGI app with valid tokens: one holding register-owner and
integration-engineer (every register and operations endpoint), and a source-system token for
the inbound endpoints (FHIR and council), bound to a source of the matching kind. Each
operation gets positive (valid) and negative (invalid) examples. Checks: no 5xx, and every
response is one the schema documents (status code, content type, body).

Bounded so the file runs in well under a minute on SQLite: a few examples per operation and
no per-example deadline (a cold first request on PostgreSQL is slow, not wrong). The
PostgreSQL parameter is skipped here: the same routes run over it in the other API tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from register_core.adapters.security import TokenStore
from register_core.adapters.sources import SourceDefinition
from s117hub.api.app import create_app
from s117hub.bootstrap import Hub

with warnings.catch_warnings():  # schemathesis' ASGI transport is starlette's TestClient
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401

CHECKS: list[Callable[..., Any]] = [not_a_server_error, response_schema_conformance,
                                    status_code_conformance, content_type_conformance]
INBOUND_PATHS = r"^/(fhir/r4|api/v1/sources/\{source\}/)"
BOUNDED = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))


def _sqlite_only(hub: Hub) -> None:
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("schemathesis runs on SQLite only (bounded time; see the module doc)")


def _schema(hub: Hub, token: str) -> Any:
    app = create_app(hub)
    return schemathesis.openapi.from_asgi("/openapi.json", app,
                                          headers={"Authorization": f"Bearer {token}"})


def _run_every_operation(schema: Any, token: str,
                         fixed: dict[str, Any] | None = None) -> list[str]:
    """Each operation its own bounded hypothesis run; the failures of all of them, named."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            # Positive examples submit as the token's own source, so they get past the 403.
            pinned = fixed if mode is GenerationMode.POSITIVE else None

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned))
            @BOUNDED
            def run(case: Any) -> None:
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                       checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing negative to generate (e.g. no parameters at all)
            except (Exception, BaseExceptionGroup) as exc:  # every operation is reported
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def test_register_and_operations_endpoints(hub: Hub) -> None:
    _sqlite_only(hub)
    _id, token = TokenStore(hub.engine).create(["register-owner", "integration-engineer"])
    schema = (_schema(hub, token).exclude(path_regex=INBOUND_PATHS)
              .exclude(path="/api/v1/audit"))
    failures = _run_every_operation(schema, token)
    assert not failures, "\n\n".join(failures)


def test_fhir_endpoints_as_a_source_system(hub: Hub) -> None:
    _sqlite_only(hub)
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="trust-fhir", kind="fhir-r4"), now)  # type: ignore[arg-type]
    _id, token = TokenStore(hub.engine).create("source-system", source="trust-fhir")
    failures = _run_every_operation(_schema(hub, token).include(path_regex=r"^/fhir/r4"),
                                    token)
    assert not failures, "\n\n".join(failures)


def test_council_endpoints_as_a_source_system(hub: Hub) -> None:
    _sqlite_only(hub)
    now = hub.clock.now()
    hub.sources.save(SourceDefinition(source_id="council-x", kind="council-rest"), now)  # type: ignore[arg-type]
    _id, token = TokenStore(hub.engine).create("source-system", source="council-x")
    schema = _schema(hub, token).include(path_regex=r"^/api/v1/sources/\{source\}/")
    failures = _run_every_operation(schema, token, {"source": "council-x"})
    assert not failures, "\n\n".join(failures)
