"""A partner's HTTP answer read with limits: the pollers run in the serving process (with
the API and the MLLP listener), so a page that never ends or never stops growing must not
take its memory or a thread with it."""

from __future__ import annotations

import time

import httpx


class BodyOverLimit(Exception):
    """The body passed ``max_bytes`` or took longer than ``seconds`` to arrive."""


def read_bounded(response: httpx.Response, *, max_bytes: int, seconds: float) -> bytes:
    """A streamed response's body, read in chunks; BodyOverLimit past either limit."""
    deadline = time.monotonic() + seconds
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise BodyOverLimit(f"a page is over {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise BodyOverLimit(f"a page took over {seconds:.0f} s to arrive")
    return bytes(body)
