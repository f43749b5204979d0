"""Who is calling, whether they may, and the audit trail of what they touched.

Every route but ``/healthz`` depends on ``authenticate`` (directly or through
``require_roles``): a missing, unknown or revoked token is 401, a known token with the wrong
role is 403 (architecture section 6). ``audit`` is the one way a route records a read or a
write of a person's record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from register_core.adapters import message_store
from register_core.adapters.security import AuditAction, AuditLog, Principal, Role, TokenStore
from s117hub.bootstrap import Hub

from .errors import HttpProblem

PURPOSE_HEADER = "X-Purpose-Of-Use"

_bearer = HTTPBearer(auto_error=False, description="An API token from `s117hub token create`.")


def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def get_tokens(request: Request) -> TokenStore:
    return request.app.state.tokens  # type: ignore[no-any-return]


def get_audit_log(request: Request) -> AuditLog:
    return request.app.state.audit  # type: ignore[no-any-return]


def _unauthorised(message: str) -> HttpProblem:
    return HttpProblem(401, "unauthorised", message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    tokens: Annotated[TokenStore, Depends(get_tokens)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorised("an Authorization: Bearer token is required")
    principal = tokens.verify(credentials.credentials)
    if principal is None:
        raise _unauthorised("the token is unknown or revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_roles(*roles: Role | str) -> Callable[[Principal], Principal]:
    """A dependency that lets through only the given roles (least privilege per route)."""
    allowed = frozenset(Role(r) for r in roles)
    names = ", ".join(sorted(r.value for r in allowed))

    def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any(allowed):
            raise HttpProblem(403, "forbidden",
                              f"the {principal.role_names} role may not do this; needs {names}")
        return principal

    dependency.__name__ = f"require_{'_or_'.join(sorted(r.name.lower() for r in allowed))}"
    return dependency


def audit(conn: Connection, request: Request, principal: Principal, *,
          action: AuditAction, resource: str, resource_id: str | None,
          person_id: str | None) -> None:
    """Record a read or write of a person's record in the caller's transaction.

    Who is the token id and role, why is the optional ``X-Purpose-Of-Use`` header, and the
    request is method and path only (the query string may carry an NHS number).
    """
    get_audit_log(request).record(
        conn, principal, action, resource, resource_id, person_id,
        purpose=request.headers.get(PURPOSE_HEADER),
        request=f"{request.method} {request.url.path}")


def audit_read(conn: Connection, request: Request, principal: Principal, resource: str,
               resource_id: str, person_id: str | None) -> None:
    audit(conn, request, principal, action="read", resource=resource,
          resource_id=resource_id, person_id=person_id)


def audit_listed_errors(conn: Connection, request: Request, principal: Principal,
                        messages: list[dict[str, Any]]) -> None:
    """A listed inbound message whose error is shown is a read of it, as its detail is: an
    error may quote a value of the message ("'19800231' is not an HL7 date")."""
    for message in messages:
        if message.get("error"):
            audit_message(conn, request, principal, "read", message)


def audit_message(conn: Connection, request: Request, principal: Principal,
                  action: AuditAction, message: dict[str, Any],
                  people: list[str] | None = None) -> None:
    """A stored message's payload names people: one audit row for each person it concerns
    (``message_store.people_concerned`` unless given: an A40 names two; one that linked no
    one, those its identifiers name), so a subject's access history lists it; a row without
    a person when it names no one registered."""
    if people is None:
        people = message_store.people_concerned(conn, message)
    for person_id in people or [None]:
        audit(conn, request, principal, action=action, resource="inbound-message",
              resource_id=str(message["id"]), person_id=person_id)


def audit_write(conn: Connection, request: Request, principal: Principal, resource: str,
                resource_id: str, person_id: str | None) -> None:
    """For routes that change a person's record: call inside the same transaction."""
    audit(conn, request, principal, action="write", resource=resource,
          resource_id=resource_id, person_id=person_id)
