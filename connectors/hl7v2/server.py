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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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


FrameHandler = Callable[[bytes], Reply]
AsyncFrameHandler = Callable[[bytes], Awaitable[Reply]]


class MllpServer:
    def __init__(self, handler: FrameHandler, host: str = "127.0.0.1", port: int = 2575, *,
                 threads: int = 8, idle_timeout: float = 600.0,
                 handle_async: AsyncFrameHandler | None = None,
                 max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.handler = handler
        self.handle_async = handle_async
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mllp")
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.frames_received = 0
        self.oversized_frames = 0  # answered AR, not stored (see the module's docstring)
        self.max_frame_bytes = max_frame_bytes

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self.host, self.port)
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("MLLP listening", extra={"source": f"{self.host}:{self.port}"})

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
        connections = list(self._connections)
        for task in connections:
            task.cancel()  # a frame not yet acknowledged is resent by its sender
        await asyncio.gather(*connections, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=False)

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
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
                    self.frames_received += 1
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

    def _refuse_oversized(self, event: Oversized, writer: asyncio.StreamWriter) -> bytes:
        self.oversized_frames += 1
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
