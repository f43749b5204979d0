"""Logging in and out of the console, its home redirect and its two static files.

Login takes an API token once and swaps it for a session cookie; the token is never stored
in the browser. The login form has no session yet, so its CSRF guard is a double-submit
cookie: a random value set with the form must come back both as cookie and as field.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import FileResponse

from register_core.adapters.console_sessions import ABSOLUTE_LIFETIME
from register_core.adapters.security import Role

from .web import (
    COOKIE_PATH,
    CSRF_FIELD,
    HERE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleRoute,
    ConsoleUser,
    LoginRequired,
    Refused,
    actor,
    check_origin,
    load_user,
    render,
    secured,
    see_other,
    sessions_of,
    tokens_of,
)

log = logging.getLogger(__name__)
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
ANY_CONSOLE_ROLE = frozenset(Role) - {Role.SOURCE_SYSTEM}
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}


def _home(user: ConsoleUser) -> str:
    pages = user.pages
    return pages[0].path if pages else "/ui/login"


def _cookie_kwargs(request: Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "strict", "path": COOKIE_PATH,
            "secure": request.url.scheme == "https"}


@router.get("/ui")
@router.get("/ui/")
def home(request: Request) -> Response:
    try:
        user = load_user(request)
    except LoginRequired:
        return see_other("/ui/login")
    return see_other(_home(user))


def _login_form(request: Request, *, status: int = 200, error: str | None = None) -> Response:
    guard = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, status=status, error=error,
                      login_guard=guard)
    response.set_cookie(LOGIN_CSRF_COOKIE, guard, max_age=3600, **_cookie_kwargs(request))
    return response


@router.get("/ui/login")
def login_page(request: Request) -> Response:
    try:
        return see_other(_home(load_user(request, touch=False)))
    except LoginRequired:
        return _login_form(request)


@router.post("/ui/login")
def login(request: Request, token: Annotated[str, Form(max_length=200)] = "",
          guard: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "") -> Response:
    check_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not guard or not cookie or not hmac.compare_digest(guard, cookie):
        raise Refused(403, "The login form's security token is missing or wrong. Open the "
                           "login page again and retry.")
    principal = tokens_of(request).verify(token.strip())
    if principal is None:
        return _login_form(request, status=401, error="That token is unknown or revoked.")
    if Role.SOURCE_SYSTEM in principal.roles:
        return _login_form(request, status=403, error="A source-system token belongs to a "
                           "partner system and cannot open the console. Use a token issued "
                           "to a person (integration engineer, register owner or auditor).")
    cookie_value, session = sessions_of(request).start(principal.token_id)
    log.info("console login", extra={"token_id": principal.token_id})
    response = see_other(_home(ConsoleUser(session, principal)))
    response.set_cookie(SESSION_COOKIE, cookie_value,
                        max_age=int(ABSOLUTE_LIFETIME.total_seconds()),
                        **_cookie_kwargs(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    user = await actor(ANY_CONSOLE_ROLE)(request)
    sessions_of(request).end(user.session)
    response = see_other("/ui/login?done=logged-out")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return secured(Response("not found", status_code=404))
    response = FileResponse(HERE / "static" / name, media_type=STATIC_FILES[name])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
