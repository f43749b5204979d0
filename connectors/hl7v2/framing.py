"""MLLP framing (0x0B … 0x1C 0x0D), apart from any HL7 parsing.

The reader is incremental: TCP delivers frames split and glued at random, and senders put
garbage (keep-alive newlines, half-written frames after a reconnect) between frames. Bytes
outside a frame are counted and dropped; an oversized frame is dropped whole.
"""

from __future__ import annotations

START = b"\x0b"
END = b"\x1c\x0d"
MAX_FRAME_BYTES = 4 * 1024 * 1024


def frame(payload: bytes) -> bytes:
    return START + payload + END


class FrameReader:
    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self.max_frame_bytes = max_frame_bytes
        self.discarded_bytes = 0
        self.oversized_frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame now complete, in order."""
        self._buffer.extend(data)
        frames: list[bytes] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self.discarded_bytes += len(self._buffer)
                self._buffer.clear()
                return frames
            if start:
                self.discarded_bytes += start
                del self._buffer[:start]
            end = self._buffer.find(END, 1)
            if end < 0:
                if len(self._buffer) > self.max_frame_bytes:
                    self.oversized_frames += 1
                    self.discarded_bytes += len(self._buffer)
                    self._buffer.clear()
                return frames
            # A second START before END means the first frame was cut off: keep the newer one.
            restart = self._buffer.rfind(START, 1, end)
            if restart > 0:
                self.discarded_bytes += restart
                del self._buffer[:restart]
                continue
            frames.append(bytes(self._buffer[1:end]))
            del self._buffer[:end + len(END)]

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)
