"""Web-console sessions: a login with an API token becomes a server-side session row.

The browser holds only a random cookie value; the table keeps its SHA-256, so a leaked table
opens no session. A session lives at most ``lifetime`` from login and dies after ``idle``
without a request that counts as activity. It acts with its token's roles, read afresh on
every request by the caller (``TokenStore.principal``), so revoking the token ends it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Engine, delete, insert, or_, select, update

from register_core.ports import Clock, SystemClock

from .tables import api_tokens, console_sessions

ABSOLUTE_LIFETIME = timedelta(hours=8)
IDLE_TIMEOUT = timedelta(minutes=30)
# Writing last_seen_at on every request would turn each page view into a write; a minute's
# slack in a 30-minute idle timeout costs nothing.
TOUCH_EVERY = timedelta(seconds=60)

_s = console_sessions.c


@dataclass(frozen=True)
class ConsoleSession:
    id: str  # sha256 of the cookie value, never the value itself
    token_id: str
    token_label: str | None
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def session_id(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode("utf-8")).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ConsoleSessionStore:
    def __init__(self, engine: Engine, clock: Clock | None = None, *,
                 lifetime: timedelta = ABSOLUTE_LIFETIME,
                 idle: timedelta = IDLE_TIMEOUT) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.lifetime = lifetime
        self.idle = idle

    def start(self, token_id: str) -> tuple[str, ConsoleSession]:
        """A new session for the token: (cookie value to hand the browser once, session)."""
        cookie_value = secrets.token_urlsafe(32)
        now = self.clock.now()
        row = {"id": session_id(cookie_value), "token_id": token_id,
               "csrf_token": secrets.token_urlsafe(32), "created_at": now,
               "last_seen_at": now, "expires_at": now + self.lifetime}
        with self.engine.begin() as conn:
            conn.execute(insert(console_sessions).values(**row))
            # Logins are rare: a good moment to forget sessions that ran out.
            conn.execute(delete(console_sessions).where(self._dead(now)))
        found = self.resume(cookie_value, touch=False)
        assert found is not None, "written a moment ago"
        return cookie_value, found

    def resume(self, cookie_value: str | None, *, touch: bool = True) -> ConsoleSession | None:
        """The live session for this cookie, or None (unknown, expired or idle too long).

        ``touch`` marks the request as activity; a page's own auto-refresh passes False so
        that a console left open on the Flow page still times out when nobody looks at it.
        """
        if not cookie_value or len(cookie_value) > 200:
            return None
        sid = session_id(cookie_value)
        now = self.clock.now()
        # Read, then write in a transaction of its own if need be: on SQLite a read that
        # turns into a write fails outright when another writer committed in between.
        with self.engine.connect() as conn:
            row = conn.execute(
                select(console_sessions, api_tokens.c.label)
                .join(api_tokens, api_tokens.c.id == _s.token_id)
                .where(_s.id == sid)).mappings().first()
        if row is None:
            return None
        last_seen = _aware(row["last_seen_at"])
        if _aware(row["expires_at"]) <= now or last_seen + self.idle <= now:
            self.end(sid)
            return None
        if touch and now - last_seen >= TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(update(console_sessions).where(_s.id == sid)
                             .values(last_seen_at=now))
            last_seen = now
        return ConsoleSession(id=sid, token_id=row["token_id"], token_label=row["label"],
                              csrf_token=row["csrf_token"],
                              created_at=_aware(row["created_at"]), last_seen_at=last_seen,
                              expires_at=_aware(row["expires_at"]))

    def end(self, session: ConsoleSession | str) -> None:
        """Log out: the row goes, so the cookie opens nothing even if it was copied."""
        sid = session.id if isinstance(session, ConsoleSession) else session
        with self.engine.begin() as conn:
            conn.execute(delete(console_sessions).where(_s.id == sid))

    def end_all_for_token(self, token_id: str) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(console_sessions)
                                    .where(_s.token_id == token_id)).rowcount)

    def purge_expired(self) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(console_sessions)
                                    .where(self._dead(self.clock.now()))).rowcount)

    def _dead(self, now: datetime) -> ColumnElement[bool]:
        return or_(_s.expires_at <= now, _s.last_seen_at <= now - self.idle)
