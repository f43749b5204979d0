"""Pull Patient, Encounter and EpisodeOfCare from a trust's FHIR server, from a cursor.

For trusts that expose a FHIR R4 server instead of pushing to ``/fhir/r4``. A source of kind
``fhir-r4`` with ``poll`` settings (url, interval, bearer token) is searched per type:

    GET {url}/{Type}?_lastUpdated=ge{cursor}&_sort=_lastUpdated&_count=N

following the Bundle's ``link[relation=next]`` (same origin only: the token is never sent
elsewhere). Each resource is stored through ``Intake.accept`` on channel ``fhir-poll`` with
message id ``<type>/<id>/_history/<versionId or lastUpdated>``, mapped first so that one that
can never apply is stored ``failed`` with its error. The search is ``ge`` the cursor, not
``gt``: a resource the server stamps with the cursor's very instant after we searched
(instants are not unique) is still found; the ones already stored at that instant come back
each poll and are recognised as duplicates.

The cursor (per type) only ever says "everything stamped before this is stored":
* it moves after a page's resources are stored only when the server shows that it sorted by
  ``_lastUpdated`` (the first page's ``self`` link names ``_sort=_lastUpdated``: R4 has a
  server echo there the parameters it used, and one may ignore ``_sort``) and the stamps it
  sent never went backwards; otherwise only once the whole search (every next page) is
  stored, since a later page may hold older stamps;
* it never passes the time the server answered (its ``Date`` header, else the hub's clock):
  a resource stamped in the future would otherwise hide every change made before that date.
A page over ``MAX_PAGE_BYTES`` or slower than ``PAGE_DEADLINE_SECONDS`` is a failure, as is
anything else that is not a searchset (network, timeout, non-200): it stores nothing more,
keeps the cursor, and backs the source off exponentially (capped).

``poll_once`` does one poll now; ``FhirPollRunner`` polls every due source on a tick, in a
thread only when started. Nothing runs at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine

from mapping.errors import MappingError
from register_core.adapters.inbox import Inbox, InboxEntry
from register_core.adapters.sources import SourceDefinition
from register_core.domain.commands import Command
from register_core.ports import Clock

from ..bounded_read import BodyOverLimit, read_bounded
from ..inbound_mapper import map_fhir
from ..intake import Intake
from .cursors import DEFAULT_BACKOFF_CAP, PollCursors

log = logging.getLogger(__name__)

CHANNEL = "fhir-poll"
RESOURCE_TYPES = ("Patient", "Encounter", "EpisodeOfCare")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
PAGE_SIZE = 100
MAX_PAGES = 10_000  # per type and poll: a server that loops its next links is stopped
# A page of _count=100 resources is well under this; a server that ignores _count (or sends
# garbage) must not take the serving process's memory with it.
MAX_PAGE_BYTES = 32 * 1024 * 1024
PAGE_DEADLINE_SECONDS = 120.0  # a page trickled in byte by byte still ends


class PollHub(Protocol):
    """What polling needs of the composition root (``s117hub.bootstrap.Hub`` has it)."""

    engine: Engine
    clock: Clock
    inbox: Inbox

    def notify(self, partition: int) -> None: ...


class SourceLister(Protocol):
    def list(self) -> list[SourceDefinition]: ...


class PollFailed(Exception):
    """The FHIR server could not be read properly (the message never holds resource data)."""


@dataclass(frozen=True)
class PollResult:
    source: str
    fetched: int
    stored: int  # new inbox rows (``failed`` ones included)
    duplicates: int
    cursor: dict[str, str]
    failed: int = 0  # stored but not mappable
    pages: int = 0
    error: str | None = None
    failures: int = 0  # consecutive failed polls after this one


@dataclass
class _Tally:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    pages: int = 0
    cursor: dict[str, str] = field(default_factory=dict)


def is_pollable(source: SourceDefinition) -> bool:
    return source.kind == "fhir-r4" and source.poll is not None and source.enabled


def poll_once(hub: PollHub, source: SourceDefinition, *, client: httpx.Client | None = None,
              page_size: int = PAGE_SIZE, backoff_cap: float = DEFAULT_BACKOFF_CAP
              ) -> PollResult:
    """Poll one source now (whatever its backoff says: the runner decides when)."""
    if source.kind != "fhir-r4" or source.poll is None:
        raise ValueError(f"source {source.source_id!r} is not a polled fhir-r4 source")
    settings = source.poll
    cursors = PollCursors(hub.engine)
    tally = _Tally(cursor=dict(cursors.load(source.source_id).cursor))
    intake = Intake(hub.inbox, hub.notify)
    headers = {"Accept": "application/fhir+json"}
    if settings.bearer_token:
        headers["Authorization"] = f"Bearer {settings.bearer_token}"
    own_client = client is None
    http = client or httpx.Client(timeout=DEFAULT_TIMEOUT)
    try:
        for kind in RESOURCE_TYPES:
            _poll_type(hub, source, kind, http, headers, intake, cursors, tally, page_size)
    except (httpx.HTTPError, httpx.InvalidURL, PollFailed, ValueError) as exc:
        error = _describe(exc)
        state = cursors.record_failure(source.source_id, hub.clock.now(),
                                       settings.interval_seconds, backoff_cap)
        # The reason in the text: the JSON log lines keep only a few named extras.
        log.warning("FHIR poll failed (%s in a row): %s", state.failures, error,
                    extra={"source": source.source_id, "error": error,
                           "failures": state.failures})
        return _result(source, tally, error=error, failures=state.failures)
    finally:
        if own_client:
            http.close()
    cursors.record_success(source.source_id, hub.clock.now(), settings.interval_seconds)
    log.info("FHIR poll done: %s fetched, %s stored, %s duplicates, %s failed", tally.fetched,
             tally.stored, tally.duplicates, tally.failed,
             extra={"source": source.source_id, "fetched": tally.fetched,
                    "stored": tally.stored})
    return _result(source, tally)


def _result(source: SourceDefinition, tally: _Tally, *, error: str | None = None,
            failures: int = 0) -> PollResult:
    return PollResult(source=source.source_id, fetched=tally.fetched, stored=tally.stored,
                      duplicates=tally.duplicates, cursor=dict(tally.cursor),
                      failed=tally.failed, pages=tally.pages, error=error, failures=failures)


def _poll_type(hub: PollHub, source: SourceDefinition, kind: str, http: httpx.Client,
               headers: dict[str, str], intake: Intake, cursors: PollCursors, tally: _Tally,
               page_size: int) -> None:
    assert source.poll is not None
    base = httpx.URL(source.poll.url.rstrip("/") + "/")
    url: httpx.URL | None = base.join(kind)
    start_cursor = tally.cursor.get(kind)
    first: dict[str, str | int] = {"_sort": "_lastUpdated", "_count": page_size}
    if start_cursor:
        first["_lastUpdated"] = f"ge{start_cursor}"
    params: dict[str, str | int] | None = first
    seen: set[str] = set()
    high: tuple[datetime, str] | None = None  # latest stamp stored so far in this search
    page_by_page: bool | None = None  # may the cursor move before the search ends?
    future_noted = False
    while url is not None:
        if str(url) in seen or len(seen) >= MAX_PAGES:
            raise PollFailed(f"{kind} search: the next links loop")
        seen.add(str(url))
        response, body = _get_page(http, url, params, headers, kind)
        params = None  # a next link carries its own query
        bundle = _searchset(response, body, kind)
        if page_by_page is None:
            page_by_page = _sorted_by_last_updated(bundle)
        answered_at = _answered_at(response, hub.clock)
        for resource in _matches(bundle, kind):
            tally.fetched += 1
            _store(hub, source, kind, resource, intake, tally)
            stamp = _last_updated(resource)
            if stamp is None:
                continue
            if stamp[0] > answered_at:  # stamped after the server answered: not a position
                if not future_noted:
                    log.warning("FHIR poll: a %s is stamped after the server's own time; the "
                                "cursor stops at that time", kind,
                                extra={"source": source.source_id})
                    future_noted = True
                stamp = (answered_at, answered_at.isoformat())
            if high is not None and stamp[0] < high[0] and page_by_page:
                # The server said it sorted but did not: what was saved may be past records
                # not yet seen. Back to where this search began; save once it is complete.
                log.warning("FHIR poll: %s stamps went backwards; the cursor moves only when "
                            "a search is complete", kind, extra={"source": source.source_id})
                page_by_page = False
                _rewind(hub, source, cursors, tally, kind, start_cursor)
            if high is None or stamp[0] > high[0]:
                high = stamp
        url = _next_link(bundle, response.url, base)
        tally.pages += 1
        if page_by_page and high is not None:
            _advance(hub, source, cursors, tally, kind, high[1])
    if high is not None:
        _advance(hub, source, cursors, tally, kind, high[1])


def _advance(hub: PollHub, source: SourceDefinition, cursors: PollCursors, tally: _Tally,
             kind: str, position: str) -> None:
    """Persist ``position`` for ``kind`` if it is later than the one held."""
    if _later(position, tally.cursor.get(kind)):
        tally.cursor[kind] = position
        cursors.save_cursor(source.source_id, tally.cursor, hub.clock.now())


def _rewind(hub: PollHub, source: SourceDefinition, cursors: PollCursors, tally: _Tally,
            kind: str, position: str | None) -> None:
    """Persist ``position`` (where the search began) for ``kind``, even if earlier."""
    if tally.cursor.get(kind) == position:
        return
    if position is None:
        tally.cursor.pop(kind, None)
    else:
        tally.cursor[kind] = position
    cursors.save_cursor(source.source_id, tally.cursor, hub.clock.now())


def _store(hub: PollHub, source: SourceDefinition, kind: str, resource: dict[str, Any],
           intake: Intake, tally: _Tally) -> None:
    text = json.dumps(resource, separators=(",", ":"), ensure_ascii=False)
    message_id = poll_message_id(kind, resource, text)
    received_at = hub.clock.now()
    commands: list[Command] = []
    error: MappingError | None = None
    try:
        commands = map_fhir(InboxEntry(
            id=0, source=source.source_id, message_id=message_id, channel=CHANNEL,
            message_type=kind, payload=text, received_at=received_at, status="received",
            attempts=0, partition=0), source)
    except MappingError as exc:
        error = exc
    stored = intake.accept(source=source.source_id, channel=CHANNEL, message_id=message_id,
                           message_type=kind, payload=text, received_at=received_at,
                           commands=commands, error=error)
    if stored.duplicate:
        tally.duplicates += 1
        return
    tally.stored += 1
    if error is not None:
        tally.failed += 1


def poll_message_id(kind: str, resource: dict[str, Any], text: str) -> str:
    """``<type>/<id>/_history/<versionId or lastUpdated>`` (a body hash when neither)."""
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    version = meta.get("versionId") or meta.get("lastUpdated") or (
        "sha256:" + hashlib.sha256(text.encode()).hexdigest())
    logical = resource.get("id") or "-"
    message_id = f"{kind}/{logical}/_history/{version}"
    # inbox_messages.message_id holds 200 characters and (PostgreSQL) no NUL: a resource id
    # holding one must be stored (as failed), not stop the feed at that resource for ever.
    if len(message_id) > 200 or "\x00" in message_id:
        message_id = f"{kind}/sha256:{hashlib.sha256(message_id.encode()).hexdigest()}"
    return message_id


# --- search bundles -------------------------------------------------------------------------

def _get_page(http: httpx.Client, url: httpx.URL, params: dict[str, str | int] | None,
              headers: dict[str, str], kind: str) -> tuple[httpx.Response, bytes]:
    """GET one page, read in chunks up to ``MAX_PAGE_BYTES`` and ``PAGE_DEADLINE_SECONDS``."""
    with http.stream("GET", url, params=params, headers=headers) as response:
        if response.status_code != 200:
            raise PollFailed(f"{kind} search answered HTTP {response.status_code}")
        try:
            body = read_bounded(response, max_bytes=MAX_PAGE_BYTES,
                                seconds=PAGE_DEADLINE_SECONDS)
        except BodyOverLimit as exc:
            raise PollFailed(f"{kind} search: {exc}") from None
    return response, body


def _searchset(response: httpx.Response, body: bytes, kind: str) -> dict[str, Any]:
    try:
        bundle = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PollFailed(f"{kind} search: the answer is not JSON") from exc
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise PollFailed(f"{kind} search: the answer is not a Bundle")
    if bundle.get("type") != "searchset":
        shown = str(bundle.get("type"))[:40]  # the server's text: kept short in the log
        raise PollFailed(f"{kind} search: Bundle.type is {shown!r}, not searchset")
    return bundle


def _sorted_by_last_updated(bundle: dict[str, Any]) -> bool:
    """Whether the ``self`` link says the search was sorted by ``_lastUpdated`` ascending."""
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "self" and \
                isinstance(link.get("url"), str):
            try:
                sort = httpx.URL(link["url"]).params.get_list("_sort")
            except (httpx.InvalidURL, ValueError, TypeError):
                return False
            keys = [key.strip() for value in sort for key in value.split(",")]
            return bool(keys) and keys[0] == "_lastUpdated"
    return False


def _answered_at(response: httpx.Response, clock: Clock) -> datetime:
    """When the server answered: its ``Date`` header (whole seconds), else the hub's now."""
    try:
        answered = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return clock.now()
    return answered if answered.tzinfo is not None else clock.now()


def _matches(bundle: dict[str, Any], kind: str) -> Iterable[dict[str, Any]]:
    """The entries that matched the search (``_include``d and outcome entries are not)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != kind:
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode", "match") != "match":
            continue
        yield resource


def _next_link(bundle: dict[str, Any], current: httpx.URL, base: httpx.URL) -> httpx.URL | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            url = current.join(str(link["url"]))
            if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
                raise PollFailed("the next link points at another server; not followed")
            return url
    return None


def _last_updated(resource: dict[str, Any]) -> tuple[datetime, str] | None:
    meta = resource.get("meta")
    raw = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (instant, raw) if instant.tzinfo is not None else None


def _later(candidate: str, current: str | None) -> bool:
    if current is None:
        return True
    try:
        return datetime.fromisoformat(candidate) > datetime.fromisoformat(current)
    except ValueError:
        return True


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {type(exc).__name__}"
    if isinstance(exc, httpx.HTTPError):
        return f"transport: {type(exc).__name__}"
    return str(exc)


# --- the loop -------------------------------------------------------------------------------

class FhirPollRunner:
    """Polls every enabled, due ``fhir-r4`` source with poll settings, every ``tick`` seconds.

    ``run_due()`` is one pass (for a scheduler or a test); ``start()`` runs passes in a daemon
    thread until ``stop()``. Nothing starts at construction.
    """

    def __init__(self, hub: PollHub, sources: SourceLister, *, tick: float = 1.0,
                 client_factory: Callable[[], httpx.Client] | None = None) -> None:
        self.hub = hub
        self.sources = sources
        self.tick = tick
        self.client_factory = client_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> list[PollResult]:
        results: list[PollResult] = []
        cursors = PollCursors(self.hub.engine)
        for source in self.sources.list():
            if not is_pollable(source):
                continue
            if not cursors.load(source.source_id).due(self.hub.clock.now()):
                continue
            client = self.client_factory() if self.client_factory else None
            try:
                results.append(poll_once(self.hub, source, client=client))
            except Exception:  # one broken source (or a database blip) must not stop the rest
                log.exception("FHIR poll crashed", extra={"source": source.source_id})
                self._back_off(cursors, source)
            finally:
                if client is not None:
                    client.close()
        return results

    def _back_off(self, cursors: PollCursors, source: SourceDefinition) -> None:
        """After a crash, as after a failed poll: else the source was due again at the next
        tick, and the trust's server was called (and the hub crashed) every second."""
        assert source.poll is not None
        try:
            cursors.record_failure(source.source_id, self.hub.clock.now(),
                                   source.poll.interval_seconds)
        except Exception:  # the database itself is away: the next pass cannot read it either
            log.exception("FHIR poll: could not record the failure",
                          extra={"source": source.source_id})

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:
                log.exception("FHIR poll pass crashed")
            self._stop.wait(self.tick)

    def start(self) -> threading.Thread:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="fhir-poller", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
