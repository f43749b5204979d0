"""The HTTP application, built from a wired ``Hub``: nothing is created at import time."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request

from connectors.intake import Intake
from register_core.adapters.security import AuditLog, TokenStore
from s117hub.bootstrap import Hub
from s117hub.console import router as console_router

from .auth import authenticate
from .errors import install_error_handlers
from .metrics import router as metrics_router
from .routes_council import router as council_router
from .routes_exceptions import router as exceptions_router
from .routes_fhir import router as fhir_router
from .routes_identity import router as identity_router
from .routes_operations import router as operations_router
from .routes_outbound import router as outbound_router
from .routes_register import health, register
from .routes_reports import router as reports_router

DESCRIPTION = """Integration hub for England's Section 117 aftercare registers.

Every endpoint except `/healthz` needs `Authorization: Bearer <token>` (issue one with
`s117hub token create --role R`). Errors are JSON `{"error", "message", "field", "rule"}`.
Reads of a person's record are audited; send `X-Purpose-Of-Use` to say why."""


def create_app(hub: Hub) -> FastAPI:
    # The schema is served by our own route so that it, too, sits behind a token; the
    # browser docs are off because they cannot send one.
    app = FastAPI(title="S117 Hub", version="0.1.0", description=DESCRIPTION,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.state.hub = hub
    app.state.intake = Intake(hub.inbox, hub.notify)
    app.state.tokens = TokenStore(hub.engine, hub.clock)
    app.state.audit = AuditLog(hub.clock)
    install_error_handlers(app)
    app.include_router(health)
    app.include_router(register)
    app.include_router(fhir_router)
    app.include_router(council_router)
    app.include_router(operations_router)
    app.include_router(exceptions_router)
    app.include_router(identity_router)
    app.include_router(outbound_router)
    app.include_router(reports_router)
    app.include_router(console_router)  # the web console at /ui/, outside the schema
    app.include_router(metrics_router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authenticate)])
    def openapi(request: Request) -> dict[str, Any]:
        return request.app.openapi()  # type: ignore[no-any-return]

    return app


def create_metrics_app(hub: Hub) -> FastAPI:
    """/healthz and /metrics alone, for a process that serves no API (``s117hub mllp
    --metrics``): its listener's counters can be scraped only from the process itself."""
    app = FastAPI(title="S117 Hub MLLP listener", version="0.1.0", openapi_url=None,
                  docs_url=None, redoc_url=None)
    app.state.hub = hub
    app.state.tokens = TokenStore(hub.engine, hub.clock)
    app.state.audit = AuditLog(hub.clock)
    install_error_handlers(app)
    app.include_router(health)
    app.include_router(metrics_router)
    return app
