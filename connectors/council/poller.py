"""Pull a council's change feed (sources of kind ``council-poll``) from a persisted cursor.

The feed a council exposes (``poll.url`` in the source's settings)::

    GET {url}?cursor=<cursor>              no cursor parameter on the very first call
    Accept: application/json
    Authorization: Bearer <bearer_token>   only when ``poll.bearer_token`` is configured

    200 OK, Content-Type: application/json
    {"events": [<council event>, ...],     each as POST /api/v1/sources/{source}/events takes
     "next_cursor": "opaque",              where the next call continues from
     "has_more": true}                     true: more is ready now, fetch the next page at once

Events come oldest first. The cursor is opaque to the hub and is sent back as it was given;
``next_cursor`` null (or absent) means "ask again from the same place". Re-sending events
the hub already has is harmless: they are recognised by ``event_id`` and applied once.

``poll_once`` stores every event of a page through the Intake (channel ``council-poll``; an
invalid event is stored ``failed`` and does not hold up the feed), *then* persists the page's
``next_cursor``, and follows ``has_more`` up to ``max_pages``. An event with a NUL character
in any string is stored ``rejected`` (PostgreSQL cannot hold it) and the feed goes on. When
the council cannot be read (5xx, 429, any other non-2xx, connection refused or dropped,
timeout, a body not of the shape above, a page over ``MAX_PAGE_BYTES`` or slower than
``PAGE_DEADLINE_SECONDS``, a ``next_cursor`` holding a NUL character) it records the failure
with exponential backoff and jitter in ``poll_cursors`` (``failures``, ``next_attempt_at``;
``Retry-After``, in seconds or as an HTTP date, is honoured up to the maximum) and
refuses to call the council again before ``next_attempt_at``. ``PollerLoop`` runs it for every
enabled ``council-poll`` source every ``poll.interval_seconds``; nothing starts at import.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from sqlalchemy import Engine

from register_core.adapters.inbox import Inbox
from register_core.adapters.sources import PollSettings, SourceDefinition, SourceRegistry
from register_core.ports import Clock

from ..bounded_read import BodyOverLimit, read_bounded
from ..intake import Intake
from .cursors import PollCursors
from .events import take_event

log = logging.getLogger(__name__)

CHANNEL = "council-poll"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
PollStatus = Literal["ok", "not-due", "failed", "disabled"]
# The council chooses its page size; this is far above any sane page and keeps a broken or
# hostile feed from taking the serving process's memory.
MAX_PAGE_BYTES = 64 * 1024 * 1024
PAGE_DEADLINE_SECONDS = 120.0  # a page trickled in byte by byte still ends


@dataclass(frozen=True)
class Backoff:
    """Delay after the n-th failure in a row: base·2^(n-1) capped at ``max_seconds``, of
    which a random half is jitter (so pollers that failed together do not retry together)."""

    base_seconds: float = 5.0
    max_seconds: float = 900.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, failures - 1))
        return ceiling / 2 + rand() * ceiling / 2


@dataclass(frozen=True)
class PollResult:
    source: str
    status: PollStatus
    pages: int = 0
    stored: int = 0  # new events accepted
    invalid: int = 0  # events stored ``failed`` (new or repeated)
    duplicates: int = 0  # accepted events seen before
    cursor: str | None = None
    more: bool = False  # stopped at max_pages with has_more still true
    failures: int = 0
    next_attempt_at: datetime | None = None
    error: str | None = None


class FeedError(Exception):
    """The council's feed could not be read; ``retry_after`` in seconds when it said."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class FeedPage:
    events: list[Any]
    next_cursor: str | None
    has_more: bool


def _retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(when.tzinfo))).total_seconds())


def fetch_page(client: httpx.Client, poll: PollSettings, cursor: str | None) -> FeedPage:
    """One GET of the feed; every way it can fail becomes a FeedError."""
    headers = {"Accept": "application/json"}
    if poll.bearer_token:
        headers["Authorization"] = f"Bearer {poll.bearer_token}"
    params = {"cursor": cursor} if cursor is not None else None
    try:
        status, retry_after, raw = _get(client, poll.url, params, headers)
    except httpx.TimeoutException as exc:
        raise FeedError(f"timeout ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:  # refused, reset, dropped without a response
        raise FeedError(f"unreachable ({type(exc).__name__})") from exc
    if not 200 <= status < 300:
        raise FeedError(f"HTTP {status}", retry_after)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise FeedError("the feed did not answer JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
        raise FeedError("the feed answer has no events list")
    next_cursor = body.get("next_cursor")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise FeedError("next_cursor must be a string or null")
    if next_cursor is not None and "\x00" in next_cursor:  # PostgreSQL cannot keep it
        raise FeedError("next_cursor holds a NUL character")
    return FeedPage(events=body.get("events", []), next_cursor=next_cursor,
                    has_more=body.get("has_more") is True)


def _get(client: httpx.Client, url: str, params: dict[str, str] | None,
         headers: dict[str, str]) -> tuple[int, float | None, bytes]:
    """Status, Retry-After and body, the body read in chunks up to ``MAX_PAGE_BYTES`` and
    ``PAGE_DEADLINE_SECONDS`` (a non-2xx body is not read)."""
    with client.stream("GET", url, params=params, headers=headers) as response:
        if not response.is_success:
            return response.status_code, _retry_after(response), b""
        try:
            body = read_bounded(response, max_bytes=MAX_PAGE_BYTES,
                                seconds=PAGE_DEADLINE_SECONDS)
        except BodyOverLimit as exc:
            raise FeedError(str(exc)) from None
        return response.status_code, None, body


def poll_once(source: SourceDefinition, *, engine: Engine, notify: Callable[[int], None],
              clock: Clock, client: httpx.Client | None = None, backoff: Backoff | None = None,
              max_pages: int = 50, rand: Callable[[], float] = random.random) -> PollResult:
    """Fetch and store what the council has since the persisted cursor (see the module doc)."""
    if source.poll is None:
        raise ValueError(f"source {source.source_id!r} has no poll settings")
    if not source.enabled:
        return PollResult(source.source_id, "disabled")
    cursors = PollCursors(engine)
    state = cursors.get(source.source_id)
    if state.next_attempt_at is not None and clock.now() < state.next_attempt_at:
        return PollResult(source.source_id, "not-due", cursor=state.cursor,
                          failures=state.failures, next_attempt_at=state.next_attempt_at)
    own_client = client is None
    http = client or httpx.Client(timeout=DEFAULT_TIMEOUT)
    try:
        return _poll(source, source.poll, Intake(Inbox(engine), notify), cursors,
                     state.cursor, state.failures, clock, http, backoff or Backoff(),
                     max_pages, rand)
    finally:
        if own_client:
            http.close()


def _poll(source: SourceDefinition, poll: PollSettings, intake: Intake, cursors: PollCursors,
          cursor: str | None, failures: int, clock: Clock, client: httpx.Client,
          backoff: Backoff, max_pages: int, rand: Callable[[], float]) -> PollResult:
    source_id = source.source_id
    config = source.mapping_config()
    result = PollResult(source_id, "ok", cursor=cursor)
    for _ in range(max_pages):
        try:
            page = fetch_page(client, poll, result.cursor)
        except FeedError as exc:
            return _failed(result, exc, failures + 1, cursors, clock, backoff, rand)
        received_at = clock.now()
        stored = invalid = duplicates = 0
        for event in page.events:
            outcome = take_event(intake, source_id=source_id, config=config,
                                 channel=CHANNEL, event=event, received_at=received_at)
            if not outcome.accepted:
                invalid += 1
            elif outcome.duplicate:
                duplicates += 1
            else:
                stored += 1
        next_cursor = page.next_cursor if page.next_cursor is not None else result.cursor
        cursors.advance(source_id, next_cursor, clock.now())  # only after the page is stored
        moved = next_cursor != result.cursor
        result = replace(result, pages=result.pages + 1, stored=result.stored + stored,
                         invalid=result.invalid + invalid,
                         duplicates=result.duplicates + duplicates, cursor=next_cursor,
                         more=False)
        if not page.has_more:
            break
        if not moved:  # has_more without a new cursor would fetch the same page forever
            log.warning("council feed says has_more without a new cursor",
                        extra={"source": source_id})
            break
        result = replace(result, more=True)
    log.info("council feed polled: %s pages, %s stored, %s invalid, %s duplicates",
             result.pages, result.stored, result.invalid, result.duplicates,
             extra={"source": source_id, "pages": result.pages, "stored": result.stored})
    return result


def _failed(result: PollResult, exc: FeedError, failures: int, cursors: PollCursors,
            clock: Clock, backoff: Backoff, rand: Callable[[], float]) -> PollResult:
    delay = backoff.delay(failures, rand)
    if exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, backoff.max_seconds))
    now = clock.now()
    next_attempt_at = now + timedelta(seconds=delay)
    cursors.record_failure(result.source, failures, next_attempt_at, now)
    # The reason in the text: the JSON log lines keep only a few named extras.
    log.warning("council feed unavailable (%s in a row; next try in %.0f s): %s", failures,
                delay, exc.reason, extra={
        "source": result.source, "reason": exc.reason, "failures": failures,
        "retry_in_seconds": round(delay, 1)})
    return replace(result, status="failed", failures=failures,
                   next_attempt_at=next_attempt_at, error=exc.reason, more=False)


class PollerLoop:
    """Polls every enabled ``council-poll`` source when its interval has passed.

    ``run_pending`` is one pass (tests and schedulers call it); ``run`` loops until ``stop``
    is set and is what a thread or process of the hub runs. One httpx client is shared.
    """

    def __init__(self, *, engine: Engine, sources: SourceRegistry,
                 notify: Callable[[int], None], clock: Clock,
                 client: httpx.Client | None = None, backoff: Backoff | None = None) -> None:
        self.engine = engine
        self.sources = sources
        self.notify = notify
        self.clock = clock
        self.client = client or httpx.Client(timeout=DEFAULT_TIMEOUT)
        self.backoff = backoff or Backoff()
        self._last: dict[str, datetime] = {}

    def due(self, source: SourceDefinition) -> bool:
        last = self._last.get(source.source_id)
        interval = timedelta(seconds=source.poll.interval_seconds if source.poll else 60)
        return last is None or self.clock.now() >= last + interval

    def run_pending(self) -> list[PollResult]:
        results = []
        for source in self.sources.list():
            if source.kind != "council-poll" or source.poll is None or not source.enabled:
                continue
            if not self.due(source):
                continue
            try:
                result = poll_once(source, engine=self.engine, notify=self.notify,
                                   clock=self.clock, client=self.client, backoff=self.backoff)
            except Exception:  # a database hiccup must not stop the other sources
                log.exception("council poll failed", extra={"source": source.source_id})
                # Wait the interval as after a poll: else the council was called (and the
                # same crash met) at every tick, once a second.
                self._last[source.source_id] = self.clock.now()
                continue
            if result.status != "not-due" and not result.more:
                self._last[source.source_id] = self.clock.now()
            results.append(result)
        return results

    def run(self, stop: threading.Event, tick_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.run_pending()
            except Exception:  # the database away for a moment: try again next tick
                log.exception("council poll pass failed")
            stop.wait(tick_seconds)

    def close(self) -> None:
        self.client.close()
