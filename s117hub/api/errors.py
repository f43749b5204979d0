"""Errors at the HTTP edge: every failure is a JSON body ``{"error", "message", ...}``.

    RegisterError      → 422 (InvalidValue, ImpossibleDates, UnlawfulEnding), 404 (NotFound),
                         409 (ConcurrentChange); body is ``exc.as_dict()`` (field and rule)
    RequestValidation  → 422 naming each field; the offending input is never echoed (it may
                         be an NHS number)
    HttpProblem        → what the edge itself refuses: 401 unauthorised, 403 forbidden
    HTTPException      → Starlette's own (unknown path, wrong method) in the same shape
    OperationalError   → 503: the database is down or busy, try again
    anything else      → 500 ``{"error": "internal-error", "message", "reference"}``: nothing
                         of the exception in the body; logged as its type, the route, the
                         SQL statement's verb and table, the SQLSTATE and the stack's frames
                         (never its message: SQLAlchemy's quotes the statement's parameters,
                         a driver's may quote a row's values, so names and NHS numbers)

A body FastAPI cannot parse (not JSON, not UTF-8) is refused before the route's dependencies
run, so the token and role are checked here first: 401 and 403 keep their precedence over
422, as for any other request. An unparseable body is then 422 ``invalid-request`` with
``field`` ``body`` (FastAPI's own answers were 422 or an undocumented 400).

Under ``/fhir/`` the same refusals (401, 403, unknown path, wrong method, 503, and the 500
with issue code ``exception``) are FHIR OperationOutcome bodies instead (architecture
section 4).
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.fhir.outcome import FHIR_JSON, operation_outcome, outcome_for_http
from register_core.domain.errors import (
    ConcurrentChange,
    ImpossibleDates,
    InvalidValue,
    NotFound,
    RegisterError,
    UnlawfulEnding,
)

log = logging.getLogger(__name__)

REGISTER_STATUS: dict[type[RegisterError], int] = {
    InvalidValue: 422,
    ImpossibleDates: 422,
    UnlawfulEnding: 422,
    NotFound: 404,
    ConcurrentChange: 409,
}

_HTTP_ERROR_NAMES = {400: "bad-request", 401: "unauthorised", 403: "forbidden",
                     404: "not-found", 405: "method-not-allowed", 409: "conflict",
                     422: "invalid-request", 503: "unavailable"}
FHIR_PATH_PREFIX = "/fhir/"


class HttpProblem(Exception):
    """A refusal decided at the edge (authentication, authorisation), not by the register."""

    def __init__(self, status: int, error: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers

    def as_dict(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


def _fhir_refusal(request: Request, status: int, message: str,
                  headers: dict[str, str] | None = None) -> JSONResponse | None:
    """The refusal as an OperationOutcome when the path is a FHIR one, else None."""
    if not request.url.path.startswith(FHIR_PATH_PREFIX):
        return None
    return JSONResponse(outcome_for_http(status, message), status_code=status,
                        headers=headers, media_type=FHIR_JSON)


def status_for(exc: RegisterError) -> int:
    for cls in type(exc).__mro__:
        if cls in REGISTER_STATUS:
            return REGISTER_STATUS[cls]  # type: ignore[index]
    return 400


async def _register_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RegisterError)
    return JSONResponse(exc.as_dict(), status_code=status_for(exc))


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("query", "limit")`` → ``limit``; nested body fields joined with dots."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


# FastAPI's detail when the body is not decodable at all (its only 400).
_BODY_PARSE_DETAIL = "There was an error parsing the body"
_UNPARSEABLE_BODY = {"error": "invalid-request", "message": "body: the body could not be "
                     "parsed", "field": "body", "rule": "json_invalid",
                     "errors": [{"field": "body", "message": "the body could not be parsed",
                                 "type": "json_invalid"}]}


def _role_gates(dependant: Any) -> list[Any]:
    """The route's ``require_*`` dependencies (auth.require_roles), however deep."""
    gates = []
    for sub in getattr(dependant, "dependencies", ()):
        if getattr(sub.call, "__name__", "").startswith("require_"):
            gates.append(sub.call)
        gates.extend(_role_gates(sub))
    return gates


def _refusal_before_body(request: Request) -> HttpProblem | None:
    """What the route's own dependencies would have answered before reading the body."""
    tokens = getattr(request.app.state, "tokens", None)
    route = request.scope.get("route")
    if tokens is None or route is None:
        return None
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    principal = tokens.verify(credentials.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        return HttpProblem(401, "unauthorised", "an Authorization: Bearer token is required "
                           "(unknown or revoked tokens are refused)",
                           headers={"WWW-Authenticate": "Bearer"})
    for gate in _role_gates(getattr(route, "dependant", None)):
        try:
            gate(principal)
        except HttpProblem as refused:
            return refused
    return None


def _unparseable_body(request: Request) -> JSONResponse:
    refused = _refusal_before_body(request)
    if refused is not None:
        fhir = _fhir_refusal(request, refused.status, refused.message, refused.headers)
        return fhir or JSONResponse(refused.as_dict(), status_code=refused.status,
                                    headers=refused.headers)
    fhir = _fhir_refusal(request, 422, "the body could not be parsed")
    return fhir or JSONResponse(_UNPARSEABLE_BODY, status_code=422)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return _unparseable_body(request)
    errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid"),
               "type": e.get("type", "invalid")} for e in exc.errors()]
    first = errors[0] if errors else {"field": "request", "message": "invalid", "type": ""}
    body = {"error": "invalid-request",
            "message": f"{first['field']}: {first['message']}",
            "field": first["field"], "rule": first["type"], "errors": errors}
    return JSONResponse(body, status_code=422)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HttpProblem)
    fhir = _fhir_refusal(request, exc.status, exc.message, exc.headers)
    if fhir is not None:
        return fhir
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers=exc.headers)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_PARSE_DETAIL:
        return _unparseable_body(request)
    fhir = _fhir_refusal(request, exc.status_code, str(exc.detail),
                         getattr(exc, "headers", None))
    if fhir is not None:
        return fhir
    body = {"error": _HTTP_ERROR_NAMES.get(exc.status_code, "http-error"),
            "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", type(exc).__name__)
    fhir = _fhir_refusal(request, 503, "the database is unavailable", {"Retry-After": "5"})
    if fhir is not None:
        return fhir
    return JSONResponse({"error": "unavailable", "message": "the database is unavailable"},
                        status_code=503, headers={"Retry-After": "5"})


# "INSERT disputes", "UPDATE register_exceptions", "SELECT persons": what was being done,
# without a value (the statement's parameters are never logged).
_TABLE_AFTER = {"INSERT": "INTO", "SELECT": "FROM", "DELETE": "FROM"}


def _statement_name(statement: str | None) -> str | None:
    words = (statement or "").split()
    if not words:
        return None
    verb = words[0].upper()
    if verb == "UPDATE":
        table = words[1] if len(words) > 1 else ""
    else:
        keyword = _TABLE_AFTER.get(verb)
        upper = [w.upper() for w in words]
        at = upper.index(keyword) if keyword in upper else -1
        table = words[at + 1] if 0 <= at < len(words) - 1 else ""
    table = table.split("(", 1)[0].replace('"', "").strip(",")
    return f"{verb} {table}" if table.replace("_", "").replace(".", "").isalnum() else verb


def describe_unexpected(exc: BaseException) -> str:
    """What may be logged of an unexpected exception: types, statement name, SQLSTATE and
    frames (file:line function) — no message, no argument, no local value."""
    parts = [f"{type(exc).__module__}.{type(exc).__qualname__}"]
    if isinstance(exc, StatementError):
        if (name := _statement_name(exc.statement)) is not None:
            parts.append(f"statement={name!r}")
        orig = exc.orig
        if orig is not None:
            parts.append(f"driver={type(orig).__module__}.{type(orig).__qualname__}")
            sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
            if isinstance(sqlstate, str):
                parts.append(f"sqlstate={sqlstate}")
    frames = traceback.extract_tb(exc.__traceback__)[-8:]
    parts.append("at " + " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                                    for f in reversed(frames)))
    return " ".join(parts)


def _internal_error_response(scope: Scope, reference: str) -> JSONResponse:
    message = f"an unexpected error occurred (reference {reference}); it is logged"
    if Request(scope).url.path.startswith(FHIR_PATH_PREFIX):
        return JSONResponse(operation_outcome("exception", message), status_code=500,
                            media_type=FHIR_JSON)
    return JSONResponse({"error": "internal-error", "message": message,
                         "reference": reference}, status_code=500)


class CatchAll:
    """The last resort, inside Starlette's ServerErrorMiddleware: an exception no handler
    took is answered 500 in our JSON shape and logged by ``describe_unexpected`` only.

    Starlette's own 500 is plain text and re-raises, so uvicorn logged the traceback with
    the exception's message: for a database error, the SQL parameters (a name, free text).
    Once the response has started it cannot change; it is logged the same way and dropped.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # the catch-all is the point
            reference = uuid.uuid4().hex[:12]
            route = scope.get("route")
            where = getattr(route, "path", None) or "unrouted"
            log.error("unexpected error %s in %s %s: %s", reference, scope.get("method"),
                      where, describe_unexpected(exc))
            if not started:
                await _internal_error_response(scope, reference)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RegisterError, _register_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HttpProblem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_middleware(CatchAll)
