"""An asyncio MLLP server. It frames and schedules: a blocking receiver runs in a thread pool,
an async one (``handle_async``: the hub's, which parses on the loop and hands the commit to
the inbox's writer thread) on the loop; either returns the ACK, written back in order.

Many connections are served at once; each connection's messages are handled in order, so a
sender that waits for each ACK (original mode) sees them one for one.

A handler answers every frame it was able to store (the hub's receiver falls back to a minimal
ACK rather than fail over the ACK itself). Should a handler still raise (the database is down),
the frame may not be stored, so it gets no ACK: the connection is closed and the sender resends,
which the inbox recognises as a duplicate if the frame was stored after all. Failures are logged
with the exception type and code locations only: an exception's text may quote the payload.

A reply without an ACK (enhanced mode, when MSH-15 asks for no accept ACK) sends nothing, not
an empty frame. A frame over the size limit (``framing.MAX_FRAME_BYTES``) is answered here,
``AR`` with an ERR naming the limit (``oversized_answer``), counted in ``oversized_frames``
and logged with its ids and size only. It is not stored: the point of the limit is that such
a body is never held in memory, and the sender keeps it and is told why.

At most ``max_connections`` connections are served at once (``S117HUB_MLLP_MAX_CONNECTIONS``):
one beyond is closed as soon as it is accepted, before anything is read, counted in
``refused_connections`` and logged with the peer's address and the limit only. A sender that
leaks connections (opens one per message, never closes) so cannot exhaust the process's file
descriptors and starve the senders that behave. The counters live in a ``ListenerStats`` the
composition root may share with ``/metrics``; nothing here knows of Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mapping.hl7v2_ack import oversized_answer

from .framing import MAX_FRAME_BYTES, FrameReader, Oversized, frame

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """What the receiver answers a frame with; ``follow_up`` sends a later message (the
    application ACK of enhanced mode) on the same connection."""

    ack: bytes  # empty: nothing to send now
    follow_up: Callable[[], Awaitable[bytes | None]] | None = None


def failure_summary(exc: BaseException) -> str:
    """``ChildNotValid at core.py:494 < hl7v2_ack.py:270 < …``: the type and innermost frames
    of an exception, without its message (which may quote personal data)."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    where = " < ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(frames))
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__


@dataclass
class ListenerStats:
    """What the listener counts, read by ``/metrics`` (plain ints: only the listener's loop
    writes them, and a scrape from another thread reads whole values)."""

    listening: bool = False  # a listener in this process uses these counters
    frames_received: int = 0
    oversized_frames: int = 0  # answered AR, not stored
    connections_accepted: int = 0  # served (not counting the refused)
    refused_connections: int = 0  # closed at once: over max_connections
    open_connections: int = 0
    max_connections: int = 0


DEFAULT_MAX_CONNECTIONS = 256
REFUSAL_LOG_INTERVAL = 10.0  # seconds between log lines about refused connections

FrameHandler = Callable[[bytes], Reply]
AsyncFrameHandler = Callable[[bytes], Awaitable[Reply]]


class MllpServer:
    def __init__(self, handler: FrameHandler, host: str = "127.0.0.1", port: int = 2575, *,
                 threads: int = 8, idle_timeout: float = 600.0,
                 handle_async: AsyncFrameHandler | None = None,
                 max_frame_bytes: int = MAX_FRAME_BYTES,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 stats: ListenerStats | None = None) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.handler = handler
        self.handle_async = handle_async
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mllp")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.stats = stats if stats is not None else ListenerStats()
        self.stats.max_connections = max_connections
        self.max_connections = max_connections
        self.max_frame_bytes = max_frame_bytes
        self._refusal_logged_at = -REFUSAL_LOG_INTERVAL
        self._refused_unlogged = 0

    @property
    def frames_received(self) -> int:
        return self.stats.frames_received

    @property
    def oversized_frames(self) -> int:
        return self.stats.oversized_frames

    @property
    def refused_connections(self) -> int:
        return self.stats.refused_connections

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port)
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self.stats.listening = True
        log.info("MLLP listening on %s:%s", self.host, self.port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.stats.listening = False
        connections = list(self._connections)
        for task in connections:
            task.cancel()  # a frame not yet acknowledged is resent by its sender
        await asyncio.gather(*connections, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=False)

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            await self._refuse_connection(writer)
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        self.stats.connections_accepted += 1
        self.stats.open_connections = len(self._connections)
        frames = FrameReader(self.max_frame_bytes)
        followers: set[asyncio.Task[None]] = set()
        write_lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: wait_for wraps each read in a new Task.
                    async with asyncio.timeout(self.idle_timeout):
                        data = await reader.read(65536)
                except TimeoutError:
                    break
                if not data:
                    break
                for payload in frames.feed_events(data):
                    self.stats.frames_received += 1
                    if isinstance(payload, Oversized):
                        async with write_lock:
                            writer.write(frame(self._refuse_oversized(payload, writer)))
                            await writer.drain()
                        continue
                    try:
                        if self.handle_async is not None:
                            reply = await self.handle_async(payload)
                        else:
                            reply = await loop.run_in_executor(self._executor, self.handler,
                                                               payload)
                    except Exception as exc:
                        log.error("MLLP frame not handled (%s): connection closed without an "
                                  "ACK so that the sender resends", failure_summary(exc))
                        return
                    if reply.ack:
                        async with write_lock:
                            writer.write(frame(reply.ack))
                            await writer.drain()
                    if reply.follow_up is not None:
                        follower = asyncio.create_task(
                            self._send_follow_up(reply.follow_up, writer, write_lock))
                        followers.add(follower)
                        follower.add_done_callback(followers.discard)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The server is stopping. The task ends normally: Python 3.11's stream callback
            # logs a cancelled connection task as an error with a traceback.
            pass
        except Exception as exc:
            log.error("MLLP connection failed (%s)", failure_summary(exc))
        finally:
            for follower in followers:
                follower.cancel()
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)
            self.stats.open_connections = len(self._connections)

    async def _refuse_connection(self, writer: asyncio.StreamWriter) -> None:
        """Over the limit: closed before anything is read (the sender's frames are not ours
        yet, so nothing is lost; it retries, as after any dropped connection)."""
        self.stats.refused_connections += 1
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL:
            # At most one line per interval: a sender stuck in a reconnect loop would
            # otherwise write one per attempt.
            peer = writer.get_extra_info("peername")
            log.warning("MLLP connection from %s refused: %d connections open, the limit "
                        "(%d refused since the last such line)",
                        f"{peer[0]}:{peer[1]}" if peer else "?", self.max_connections,
                        self._refused_unlogged)
            self._refusal_logged_at = now
            self._refused_unlogged = 0
        writer.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await writer.wait_closed()

    def _refuse_oversized(self, event: Oversized, writer: asyncio.StreamWriter) -> bytes:
        self.stats.oversized_frames += 1
        ack, control_id = oversized_answer(event.head, event.size, self.max_frame_bytes)
        peer = writer.get_extra_info("peername")
        log.warning("MLLP frame of %d bytes from %s over the %d-byte limit: answered AR, "
                    "not stored", event.size, f"{peer[0]}:{peer[1]}" if peer else "?",
                    self.max_frame_bytes, extra={"message_id": control_id})
        return ack.encode()

    @staticmethod
    async def _send_follow_up(make: Callable[[], Awaitable[bytes | None]],
                              writer: asyncio.StreamWriter, lock: asyncio.Lock) -> None:
        try:
            message = await make()
        except Exception as exc:
            log.error("MLLP follow-up ACK not sent (%s)", failure_summary(exc))
            return
        if message is None or writer.is_closing():
            return
        async with lock:
            writer.write(frame(message))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
