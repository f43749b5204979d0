"""The console's HTTP plumbing: who is logged in, what they may open, CSRF, rendering.

Pages are gated by the same roles as the API routes they mirror: a page needs the roles of
the API's read route, a button the roles of its write route. Refusals do not go through the
API's JSON error handlers: ``ConsoleRoute`` turns them into a redirect to the login page or
an HTML error page, so the console needs nothing from ``create_app`` but its router.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from register_core.adapters.console_sessions import ConsoleSession, ConsoleSessionStore
from register_core.adapters.database import write_transaction
from register_core.adapters.security import Principal, Role, TokenStore
from register_core.domain.errors import NotFound, RegisterError
from s117hub.bootstrap import Hub

from . import formatting

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
# Served without touching the database (or a template) again: it is what failed.
UNAVAILABLE = ("<!doctype html><title>Unavailable</title><h1>The database is busy or "
               "unavailable</h1><p>Try again in a moment. <a href=\"/ui/\">Console</a></p>")
INTERNAL_ERROR = ("<!doctype html><title>Error</title><h1>Something went wrong</h1>"
                  "<p>The error is logged. <a href=\"/ui/\">Console</a></p>")
SESSION_COOKIE = "s117hub_session"
LOGIN_CSRF_COOKIE = "s117hub_login_csrf"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"

ENGINEER = frozenset({Role.INTEGRATION_ENGINEER})
OWNER = frozenset({Role.REGISTER_OWNER})
OPS_READERS = frozenset({Role.INTEGRATION_ENGINEER, Role.AUDITOR})
REGISTER_READERS = frozenset({Role.REGISTER_OWNER, Role.AUDITOR})
AUDITORS = frozenset({Role.AUDITOR})

# Every page that carries personal data or live figures: never cached, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    key: str
    path: str
    label: str
    roles: frozenset[Role]  # the roles of the matching API read route


PAGES: tuple[Page, ...] = (
    Page("flow", "/ui/flow", "Flow", OPS_READERS),
    Page("messages", "/ui/messages", "Messages", OPS_READERS),
    Page("deliveries", "/ui/deliveries", "Deliveries", OPS_READERS),
    Page("exceptions", "/ui/exceptions", "Exceptions", REGISTER_READERS),
    Page("people", "/ui/people", "Person", REGISTER_READERS),
    Page("disputes", "/ui/disputes", "Disputes", REGISTER_READERS),
    Page("board", "/ui/board", "Board report", REGISTER_READERS),
    Page("audit", "/ui/audit", "Audit log", AUDITORS),
)
PAGE = {page.key: page for page in PAGES}


@dataclass(frozen=True)
class ConsoleUser:
    session: ConsoleSession
    principal: Principal

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    @property
    def pages(self) -> list[Page]:
        return [page for page in PAGES if self.principal.has_any(page.roles)]

    def may(self, roles: frozenset[Role]) -> bool:
        return self.principal.has_any(roles)

    @property
    def role_names(self) -> str:
        return ", ".join(sorted(r.value for r in self.principal.roles))


class LoginRequired(Exception):
    """No live session: go and log in."""


class Refused(Exception):
    """Logged in (or not) but not allowed: an HTML page with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- wiring ----------------------------------------------------------------------------------


def hub_of(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def sessions_of(request: Request) -> ConsoleSessionStore:
    """One store per app, made on first use from the hub (nothing is built at import)."""
    state = request.app.state
    if not hasattr(state, "console_sessions"):
        hub = hub_of(request)
        state.console_sessions = ConsoleSessionStore(hub.engine, hub.clock)
    return state.console_sessions  # type: ignore[no-any-return]


def tokens_of(request: Request) -> TokenStore:
    return request.app.state.tokens  # type: ignore[no-any-return]


@contextmanager
def read_and_audit(hub: Hub) -> Iterator[Connection]:
    """A transaction that reads, then writes its audit row: on SQLite it takes the write lock
    up front, since upgrading a read to a write fails at once if a worker wrote meanwhile."""
    with write_transaction(hub.engine) as conn:
        yield conn


@cache
def templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    formatting.install(env)
    return Jinja2Templates(env=env)


# -- who is asking -----------------------------------------------------------------------


def load_user(request: Request, *, touch: bool = True) -> ConsoleUser:
    session = sessions_of(request).resume(request.cookies.get(SESSION_COOKIE), touch=touch)
    if session is None:
        raise LoginRequired
    principal = tokens_of(request).principal(session.token_id)
    if principal is None:  # the token was revoked: its sessions die with it
        sessions_of(request).end(session)
        raise LoginRequired
    return ConsoleUser(session, principal)


def viewer(roles: frozenset[Role], *, touch: bool = True
           ) -> Callable[[Request], ConsoleUser]:
    """A dependency for a GET page: logged in, and holding one of ``roles``."""

    def dependency(request: Request) -> ConsoleUser:
        user = load_user(request, touch=touch)
        if not user.may(roles):
            raise Refused(403, "Your roles may not open this page.")
        return user

    return dependency


def check_origin(request: Request) -> None:
    """A cross-site form post carries the other site's Origin: refuse it before anything."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise Refused(403, "This form was posted from another site and was refused.")


def actor(roles: frozenset[Role]) -> Callable[[Request], Coroutine[Any, Any, ConsoleUser]]:
    """A dependency for a POST: same origin, logged in, the session's CSRF token, a role."""

    async def dependency(request: Request) -> ConsoleUser:
        check_origin(request)
        user = load_user(request)
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, user.csrf_token):
            raise Refused(403, "The form's security token is missing or wrong. Reload the "
                               "page and try again.")
        if not user.may(roles):
            raise Refused(403, "Your roles may not do this.")
        return user

    return dependency


# -- responses -------------------------------------------------------------------------------


def secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(request: Request, template: str, user: ConsoleUser | None, *,
           active: str | None = None, status: int = 200, **context: Any) -> Response:
    values = {"user": user, "active": active, "notice": notice_of(request),
              "status_code": status, **context}
    return secured(templates().TemplateResponse(request, template, values,
                                                status_code=status))


def see_other(url: str) -> Response:
    return secured(RedirectResponse(url, status_code=303))


# Messages a redirect may ask to show, by code: the query string never carries free text,
# so nothing a third party puts in a link is echoed onto the page.
NOTICES: dict[str, str] = {
    "replayed": "The message is queued again; a worker maps it afresh from its payload.",
    "retried": "The delivery is pending again with a fresh round of attempts.",
    "assigned": "The exception is assigned.",
    "resolved": "The exception is resolved.",
    "dismissed": "The exception is dismissed.",
    "logged-out": "You are logged out.",
    "expired": "Your session has ended. Log in again.",
}


def notice_of(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("done", ""))


def error_page(request: Request, status: int, message: str) -> Response:
    try:
        user: ConsoleUser | None = load_user(request, touch=False)
    except LoginRequired:
        user = None
    return render(request, "error.html", user, status=status, message=message)


def server_error_page(request: Request) -> Response:
    """A console 500 with the security headers; plain HTML if even the template fails."""
    try:
        return error_page(request, 500, "Something went wrong on the hub. The error is "
                                        "logged; try again, or tell the hub's support team.")
    except Exception:  # the fallback must not raise
        return secured(HTMLResponse(INTERNAL_ERROR, status_code=500))


def _login_redirect(request: Request) -> Response:
    if request.method == "GET" and request.url.path.endswith("/fragment"):
        return secured(Response("login required", status_code=401))  # the poller reloads
    return see_other("/ui/login?done=expired" if SESSION_COOKIE in request.cookies
                     else "/ui/login")


class ConsoleRoute(APIRoute):
    """Routes whose refusals are pages: login redirect, 403/404/422 as HTML."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return _login_redirect(request)
            except Refused as refused:
                return error_page(request, refused.status, refused.message)
            except NotFound as missing:
                return error_page(request, 404, str(missing))
            except RegisterError as invalid:
                return error_page(request, 422, str(invalid))
            except RequestValidationError:
                # The offending input is not echoed: it may be an NHS number.
                return error_page(request, 422, "A value in the address or form is invalid.")
            except OperationalError:
                # Logged by type only: the statement's parameters may hold personal data.
                log.error("console: database unavailable")
                return secured(HTMLResponse(UNAVAILABLE, status_code=503))
            except HTTPException:
                raise  # the framework's own answers (405, 413...) keep their handlers
            except Exception as failed:  # a console page, not the API's JSON 500
                # By type only, as above: the message may quote personal data.
                log.error("console: unexpected error", extra={"error": type(failed).__name__})
                return server_error_page(request)

        return console_handler
