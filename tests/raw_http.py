"""A raw HTTP/1.1 server's one chore, for tests that script answers byte by byte."""

from __future__ import annotations

import re

import anyio.abc


async def next_request(stream: anyio.abc.SocketStream, buffer: bytes) -> bytes:
    """Read one request (its head and body) from *stream*; return the bytes after it."""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    found = re.search(rb"(?i)content-length: *(\d+)", head)
    length = int(found[1]) if found else 0
    while len(buffer) < length:
        buffer += await stream.receive()
    return buffer[length:]
