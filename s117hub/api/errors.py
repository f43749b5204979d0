"""Errors at the HTTP edge: every failure is a JSON body ``{"error", "message", ...}``.

    RegisterError      → 422 (InvalidValue, ImpossibleDates, UnlawfulEnding), 404 (NotFound),
                         409 (ConcurrentChange); body is ``exc.as_dict()`` (field and rule)
    RequestValidation  → 422 naming each field; the offending input is never echoed (it may
                         be an NHS number)
    HttpProblem        → what the edge itself refuses: 401 unauthorised, 403 forbidden
    HTTPException      → Starlette's own (unknown path, wrong method) in the same shape
    OperationalError   → 503: the database is down or busy, try again
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid"),
               "type": e.get("type", "invalid")} for e in exc.errors()]
    first = errors[0] if errors else {"field": "request", "message": "invalid", "type": ""}
    body = {"error": "invalid-request",
            "message": f"{first['field']}: {first['message']}",
            "field": first["field"], "rule": first["type"], "errors": errors}
    return JSONResponse(body, status_code=422)


async def _problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HttpProblem)
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers=exc.headers)


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = {"error": _HTTP_ERROR_NAMES.get(exc.status_code, "http-error"),
            "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", type(exc).__name__)
    return JSONResponse({"error": "unavailable", "message": "the database is unavailable"},
                        status_code=503, headers={"Retry-After": "5"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RegisterError, _register_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HttpProblem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(OperationalError, _database_unavailable)
