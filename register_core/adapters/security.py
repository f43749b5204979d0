"""API credentials and the audit log, over SQLAlchemy Core.

Tokens are shown once and stored as SHA-256 only: a leaked table does not leak credentials,
and a lookup by hash means comparison time says nothing about the plaintext. The audit log
answers who read or changed whose record, when and why, and never holds an NHS number or a
name: callers give ids, and the request line and purpose are redacted as a safety net.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, insert, select, update

from register_core.domain import nhs_number
from register_core.domain.errors import InvalidValue, NotFound
from register_core.ports import Clock, SystemClock

from .tables import api_tokens, audit_log

TOKEN_PREFIX = "s117_"  # noqa: S105 - a marker that makes leaked tokens greppable, not a secret
AuditAction = Literal["read", "write"]


class Role(StrEnum):
    SOURCE_SYSTEM = "source-system"
    INTEGRATION_ENGINEER = "integration-engineer"
    REGISTER_OWNER = "register-owner"
    AUDITOR = "auditor"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token id (never the token), its roles, and its source if bound.

    Most tokens hold one role. A token may be issued with several (a small team's operator
    who is both integration engineer and register owner); it may then do what each may.
    """

    token_id: str
    roles: frozenset[Role]
    source: str | None = None

    @property
    def role_names(self) -> str:
        """The roles as stored and audited: sorted, comma-separated."""
        return join_roles(self.roles)

    def has_any(self, allowed: frozenset[Role]) -> bool:
        return bool(self.roles & allowed)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    role: str
    source: str | None
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidValue(f"unknown role {value!r}; one of {', '.join(ROLES)}", field="role",
                           rule="known-role") from None


def parse_roles(value: str | Iterable[str]) -> frozenset[Role]:
    """``"a,b"`` or ``["a", "b"]`` -> the roles; at least one, each known."""
    names = value.split(",") if isinstance(value, str) else list(value)
    roles = frozenset(parse_role(name.strip()) for name in names if name.strip())
    if not roles:
        raise InvalidValue("a token needs a role", field="role", rule="known-role")
    return roles


def join_roles(roles: Iterable[Role]) -> str:
    return ",".join(sorted(role.value for role in roles))


class TokenStore:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def create(self, role: str | Iterable[str], source: str | None = None,
               label: str | None = None) -> tuple[str, str]:
        """Issue a token: returns (token id, plaintext). The plaintext is not kept.

        ``role`` is one role or several; a source-system token holds that role alone, since
        it stands for a partner system, not a person."""
        roles = parse_roles(role)
        if Role.SOURCE_SYSTEM in roles and len(roles) > 1:
            raise InvalidValue("a source-system token holds no other role", field="role",
                               rule="source-system-alone")
        if Role.SOURCE_SYSTEM in roles and not source:
            raise InvalidValue("a source-system token must be bound to a source",
                               field="source", rule="source-system-needs-source")
        if Role.SOURCE_SYSTEM not in roles and source:
            raise InvalidValue(f"a {join_roles(roles)} token is not bound to a source",
                               field="source", rule="only-source-system-has-source")
        token_id = str(uuid.uuid4())
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(api_tokens).values(
                id=token_id, token_hash=hash_token(plaintext), role=join_roles(roles),
                source=source, label=label, created_at=self.clock.now()))
        return token_id, plaintext

    def verify(self, plaintext: str | None) -> Principal | None:
        if not plaintext or not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
            return None
        digest = hash_token(plaintext)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens.c.id, api_tokens.c.token_hash, api_tokens.c.role,
                       api_tokens.c.source, api_tokens.c.revoked_at)
                .where(api_tokens.c.token_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.token_hash, digest):
            return None
        return Principal(token_id=row.id, roles=parse_roles(row.role), source=row.source)

    def principal(self, token_id: str) -> Principal | None:
        """The live principal of a token id (a console session's), or None if revoked."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens.c.id, api_tokens.c.role, api_tokens.c.source)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        return Principal(token_id=row.id, roles=parse_roles(row.role), source=row.source)

    def revoke(self, token_id: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(api_tokens)
                                .where(api_tokens.c.id == token_id,
                                       api_tokens.c.revoked_at.is_(None))
                                .values(revoked_at=self.clock.now()))
            if done.rowcount == 0:
                exists = conn.execute(select(api_tokens.c.id)
                                      .where(api_tokens.c.id == token_id)).first()
                if exists is None:
                    raise NotFound(f"no token {token_id}", field="token_id",
                                   rule="token-exists")

    def list(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(api_tokens.c.id, api_tokens.c.role, api_tokens.c.source,
                       api_tokens.c.label, api_tokens.c.created_at, api_tokens.c.revoked_at)
                .order_by(api_tokens.c.created_at, api_tokens.c.id)).all()
        return [TokenInfo(id=r.id, role=r.role, source=r.source, label=r.label,
                          created_at=r.created_at, revoked_at=r.revoked_at) for r in rows]


# Anything shaped like an NHS number (ten digits, optionally spaced 3-3-4). UUIDs never match:
# their digit runs are at most 12 long and a 10-digit window inside touches another digit.


def redact(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return nhs_number.redact(text, "[redacted]")[:limit]


def request_line(method: str, path: str) -> str:
    """``GET /api/v1/people``: the query string (which may hold an NHS number) is dropped."""
    return f"{method.upper()} {path.split('?', 1)[0]}"


class AuditLog:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()

    def record(self, conn_or_engine: Connection | Engine, principal: Principal,
               action: AuditAction, resource: str, resource_id: str | None,
               person_id: str | None, purpose: str | None, request: str | None) -> None:
        """Write one row: in the caller's transaction if given a connection, else its own."""
        values = {
            "at": self.clock.now(), "actor": principal.token_id, "role": principal.role_names,
            "action": action, "resource": resource, "resource_id": resource_id,
            "person_id": person_id, "purpose": redact(purpose, 200),
            "request": redact(request.split("?", 1)[0] if request else None, 300),
        }
        if isinstance(conn_or_engine, Engine):
            with conn_or_engine.begin() as conn:
                conn.execute(insert(audit_log).values(**values))
        else:
            conn_or_engine.execute(insert(audit_log).values(**values))

    def query(self, conn: Connection, *, person_id: str | None = None,
              actor: str | None = None, since: datetime | None = None,
              limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """(total matching, newest first page)."""
        where = []
        if person_id:
            where.append(audit_log.c.person_id == person_id)
        if actor:
            where.append(audit_log.c.actor == actor)
        if since is not None:
            where.append(audit_log.c.at >= _aware(since).astimezone(UTC))
        total = conn.execute(select(func.count()).select_from(audit_log).where(*where)
                             ).scalar_one()
        rows = conn.execute(select(audit_log).where(*where)
                            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
                            .limit(limit).offset(offset)).mappings()
        return total, [{**row, "at": _aware(row["at"]).isoformat()} for row in rows]


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
