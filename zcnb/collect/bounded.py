"""HTTP reads bounded in size and in total time (one deadline per call, not per read).

httpx's timeouts apply to each network operation: a server that sends one byte per second never
trips them, and an endless body is read until memory runs out. :func:`get_bounded` streams the
reply, stops at ``max_bytes`` (also when ``Content-Length`` announces more), and enforces a total
``deadline`` (``time.monotonic()`` value) with a watchdog that shuts the socket down when it passes,
so even a reply dripping its *headers* ends on time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["BoundedReply", "DeadlineExceeded", "ReplyTooLarge", "get_bounded"]


class ReplyTooLarge(Exception):
    """The reply is bigger than the cap (``size``: bytes read or announced when stopped)."""

    def __init__(self, size: int, limit: int, *, announced: bool = False) -> None:
        super().__init__(f"reply larger than {limit} bytes ({'announced' if announced else 'stopped at'} {size})")
        self.size = size
        self.limit = limit
        self.announced = announced  # from Content-Length: nothing of the body was read


class DeadlineExceeded(Exception):
    """The total time for the call ran out (``read``: bytes received until then)."""

    def __init__(self, read: int = 0) -> None:
        super().__init__(f"deadline passed after {read} bytes")
        self.read = read


@dataclass(frozen=True)
class BoundedReply:
    status_code: int
    headers: httpx.Headers
    content: bytes
    reason_phrase: str = ""


class _SocketHolder:
    """Remembers the socket of the client's latest connection (from httpcore's trace extension)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.fired = False

    def trace(self, name: str, info: Mapping[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self.sock = sock

    def fire(self) -> None:
        self.fired = True
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a recv blocked in another thread; close() would not
            except OSError:
                pass


@contextmanager
def _watchdog(holder: _SocketHolder, deadline: float) -> Iterator[None]:
    holder.fired = False
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), holder.fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _holder(client: httpx.Client) -> _SocketHolder:
    h = getattr(client, "_zcnb_socket_holder", None)
    if not isinstance(h, _SocketHolder):
        h = _SocketHolder()
        client._zcnb_socket_holder = h  # type: ignore[attr-defined]
    return h


def get_bounded(client: httpx.Client, url: str, *, params: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None, max_bytes: int, deadline: float) -> BoundedReply:
    """GET ``url`` and read at most ``max_bytes`` of body before ``deadline`` (a ``time.monotonic()`` value).

    Raises :class:`ReplyTooLarge`, :class:`DeadlineExceeded`, or httpx's transport errors.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded(0)
    holder = _holder(client)
    size = 0
    headers = {"Accept-Encoding": "gzip", **(headers or {})}
    with _watchdog(holder, deadline):
        try:
            with client.stream("GET", url, params=params, headers=headers, timeout=httpx.Timeout(remaining),
                               extensions={"trace": holder.trace}) as resp:
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ReplyTooLarge(int(declared), max_bytes, announced=True)
                chunks: list[bytes] = []
                if resp.is_stream_consumed:  # an in-memory reply (e.g. httpx.MockTransport): already read
                    if len(resp.content) > max_bytes:
                        raise ReplyTooLarge(len(resp.content), max_bytes)
                    return BoundedReply(resp.status_code, resp.headers, resp.content, resp.reason_phrase)
                for chunk in resp.iter_raw():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ReplyTooLarge(size, max_bytes)
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise DeadlineExceeded(size)
                if holder.fired:  # the watchdog's shutdown reads as a clean end of a length-less body
                    raise DeadlineExceeded(size)
                raw = b"".join(chunks)
                if resp.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
                    raw = _decode(resp, raw, max_bytes)
                return BoundedReply(resp.status_code, resp.headers, raw, resp.reason_phrase)
        except (httpx.TransportError, OSError):
            if holder.fired or time.monotonic() >= deadline:
                raise DeadlineExceeded(size) from None
            raise


def _decode(resp: httpx.Response, raw: bytes, max_bytes: int) -> bytes:
    """Undo gzip/deflate/br, refusing to inflate past ``max_bytes`` (a compressed bomb)."""
    import zlib

    enc = resp.headers.get("content-encoding", "").lower()
    if enc in ("gzip", "deflate"):
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
        out = d.decompress(raw, max_bytes + 1)
        if len(out) > max_bytes or d.unconsumed_tail:
            raise ReplyTooLarge(max_bytes + 1, max_bytes)
        return out
    raise httpx.DecodingError(f"unsupported content-encoding {enc!r}")
