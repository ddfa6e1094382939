"""Minimal HTTP/1.x for the simulated gateway: read one request, write replies.

Stdlib only and socket level, because the real gateway's /metrics reply has no
status line at all, which no high-level server class can send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field

__all__ = ["BadRequest", "Request", "json_reply", "metrics_text", "read_request", "reply", "ws_accept"]

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
_REASONS = {101: "Switching Protocols", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large"}


class BadRequest(Exception):
    """The bytes received are not an HTTP request we can serve."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


def read_request(conn: socket.socket) -> Request | None:
    """Read one request; None when the peer closed without sending anything."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            if not buf.strip():
                return None
            raise BadRequest(400, "connection closed inside the request head")
        buf += chunk
        if len(buf) > MAX_HEAD and b"\r\n\r\n" not in buf[:MAX_HEAD + 4]:
            raise BadRequest(400, "request head too large")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad Content-Length") from None
    if length < 0 or length > MAX_BODY:
        raise BadRequest(413, "body too large")
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise BadRequest(400, "connection closed inside the body")
        body += chunk
    path = parts[1].split("?", 1)[0]
    return Request(method=parts[0].upper(), path=path, headers=headers, body=body[:length])


def reply(conn: socket.socket, status: int, body: bytes, *, content_type: str = "application/json",
          extra: dict[str, str] | None = None) -> None:
    """Send a normal HTTP/1.1 reply and let the caller close the connection."""
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


def json_reply(conn: socket.socket, status: int, obj: object) -> None:
    reply(conn, status, json.dumps(obj, separators=(",", ":")).encode())


def ws_accept(key: str) -> str:
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def _go_float(value: float) -> str:
    """Format like prometheus-client's ``floatToGoString`` (Go switches to exponents early)."""
    s = repr(float(value))
    dot = s.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _process_metrics() -> list[tuple[str, str, str, float]]:
    """The process collector's families, read from /proc/self as prometheus-client does."""
    out: list[tuple[str, str, str, float]] = []
    ticks = float(os.sysconf("SC_CLK_TCK"))
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/stat", "rb") as f:
        btime = next(float(line.split()[1]) for line in f if line.startswith(b"btime "))
    with open("/proc/self/stat", "rb") as f:
        parts = f.read().split(b")")[-1].split()
    out.append(("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", float(parts[20])))
    out.append(("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                float(parts[21]) * page))
    out.append(("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                float(parts[19]) / ticks + btime))
    out.append(("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                (float(parts[11]) + float(parts[12])) / ticks))
    out.append(("process_open_fds", "gauge", "Number of open file descriptors.", float(len(os.listdir("/proc/self/fd")))))
    with open("/proc/self/limits", "rb") as f:
        max_fds = next(float(line.split()[3]) for line in f if line.startswith(b"Max open file"))
    out.append(("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds))
    return out


def metrics_text(*, requests_total: int, uptime_s: float, process: bool) -> str:
    """Prometheus text exposition; ``process`` adds the process collector (runbook profile)."""
    fams: list[tuple[str, str, str, float]] = _process_metrics() if process else []
    if process:
        rss = next(v for n, _t, _h, v in fams if n == "process_resident_memory_bytes")
        fams.append(("memory_usage_bytes", "gauge", "Memory usage in bytes.", rss))
    fams.append(("zeptoclaw_requests_total", "counter", "Total HTTP requests handled.", float(requests_total)))
    fams.append(("zeptoclaw_uptime_seconds", "gauge", "Seconds since the gateway started.", round(uptime_s, 3)))
    lines: list[str] = []
    for name, mtype, help_text, value in fams:
        # The Zig gateway prints whole numbers; prometheus-client prints Go-style floats.
        text = _go_float(value) if process else str(int(value))
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {mtype}", f"{name} {text}"]
    return "\n".join(lines) + "\n"
