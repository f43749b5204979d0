"""MLLP framing (0x0B … 0x1C 0x0D), apart from any HL7 parsing.

The reader is incremental: TCP delivers frames split and glued at random, and senders put
garbage (keep-alive newlines, half-written frames after a reconnect) between frames. Bytes
outside a frame are counted and dropped. A frame over ``max_frame_bytes`` is read to its end
without being kept (memory stays bounded whatever the sender sends) and reported as an
``Oversized`` event carrying its first bytes, so that the listener can answer it (``AR``
naming the limit, with MSA-2 echoing MSH-10 when the head shows it): a sender that got no
answer would resend it for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

START = b"\x0b"
END = b"\x1c\x0d"
MAX_FRAME_BYTES = 4 * 1024 * 1024
HEAD_BYTES = 16 * 1024  # kept of an oversized frame: its MSH line, to answer it


def frame(payload: bytes) -> bytes:
    return START + payload + END


@dataclass(frozen=True)
class Oversized:
    """A frame over the size limit, read to its end and dropped: its first ``HEAD_BYTES``
    and its size in bytes (without the framing)."""

    head: bytes
    size: int


class FrameReader:
    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self.max_frame_bytes = max_frame_bytes
        self.discarded_bytes = 0
        self.oversized_frames = 0
        # inside an oversized frame: its head, its bytes so far, whether the last byte read
        # was END's first (END split across two reads)
        self._skipping = False
        self._skip_head = b""
        self._skip_size = 0
        self._skip_fs = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame now complete, in order (oversized frames
        are dropped: ``feed_events`` reports them)."""
        return [event for event in self.feed_events(data) if isinstance(event, bytes)]

    def feed_events(self, data: bytes) -> list[bytes | Oversized]:
        """Add received bytes; return every frame now complete and every oversized frame now
        ended, in order."""
        events: list[bytes | Oversized] = []
        if self._skipping:
            data = self._skip(data, events)
            if self._skipping:
                return events
        self._buffer.extend(data)
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self.discarded_bytes += len(self._buffer)
                self._buffer.clear()
                return events
            if start:
                self.discarded_bytes += start
                del self._buffer[:start]
            end = self._buffer.find(END, 1)
            if end < 0:
                split_end = self._buffer.endswith(END[:1])
                if len(self._buffer) - 1 - split_end > self.max_frame_bytes:
                    self._begin_skip(split_end)
                    self._buffer.clear()
                return events
            # A second START before END means the first frame was cut off: keep the newer one.
            restart = self._buffer.rfind(START, 1, end)
            if restart > 0:
                self.discarded_bytes += restart
                del self._buffer[:restart]
                continue
            if end - 1 > self.max_frame_bytes:  # complete in one read, but over the limit
                self.oversized_frames += 1
                events.append(Oversized(bytes(self._buffer[1:min(end, 1 + HEAD_BYTES)]),
                                        end - 1))
                self.discarded_bytes += end + len(END)
            else:
                events.append(bytes(self._buffer[1:end]))
            del self._buffer[:end + len(END)]

    def _begin_skip(self, split_end: bool) -> None:
        self.oversized_frames += 1
        self._skipping = True
        self._skip_head = bytes(self._buffer[1:len(self._buffer) - split_end][:HEAD_BYTES])
        self._skip_size = len(self._buffer) - 1
        self._skip_fs = split_end
        self.discarded_bytes += len(self._buffer)

    def _skip(self, data: bytes, events: list[bytes | Oversized]) -> bytes:
        """Read on through an oversized frame; the bytes after its end, if it ended here."""
        if self._skip_fs and data[:1] == END[1:]:
            self._end_skip(events, size=self._skip_size - 1)
            self.discarded_bytes += 1
            return data[1:]
        end = data.find(END)
        restart = data.find(START)
        if restart >= 0 and (end < 0 or restart < end):
            # Cut off by a new frame (the sender gave up on it): as for any cut-off frame,
            # nothing to answer; the sender sends it again.
            self._skipping = False
            self._skip_head = b""
            self.discarded_bytes += restart
            return data[restart:]
        if end < 0:
            self._skip_size += len(data)
            self.discarded_bytes += len(data)
            self._skip_fs = data.endswith(END[:1])
            self._add_to_head(data[:len(data) - self._skip_fs])
            return b""
        self._add_to_head(data[:end])
        self.discarded_bytes += end + len(END)
        self._end_skip(events, size=self._skip_size + end)
        return data[end + len(END):]

    def _add_to_head(self, data: bytes) -> None:
        if len(self._skip_head) < HEAD_BYTES:
            self._skip_head += data[:HEAD_BYTES - len(self._skip_head)]

    def _end_skip(self, events: list[bytes | Oversized], *, size: int) -> None:
        events.append(Oversized(self._skip_head, size))
        self._skipping = False
        self._skip_head = b""
        self._skip_fs = False

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)
