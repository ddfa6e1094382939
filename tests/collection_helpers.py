"""Real loopback servers and child processes for the collection tests (metrics, process, sampler, preflight)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

GOOD_BODY = (
    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
    "# TYPE process_resident_memory_bytes gauge\n"
    "process_resident_memory_bytes 52428800.0\n"
    "# TYPE process_virtual_memory_bytes gauge\n"
    "process_virtual_memory_bytes 104857600.0\n"
    "# TYPE zeptoclaw_requests_total counter\n"
    "zeptoclaw_requests_total 7\n"
)
REAL_BODY = "zeptoclaw_requests_total 12\nzeptoclaw_uptime_seconds 34\n"


class FakeEndpoint:
    """A raw-socket HTTP endpoint on 127.0.0.1 whose behaviour (``mode``) a test can switch at any time.

    Modes: ok (200 + body), bare (body with no status line, like the real gateway), 401, close (closes with
    no reply, like its rate limit), stall (waits ``stall_s`` then answers), garbage, huge (``huge_bytes`` body).
    ``body`` may be a callable, evaluated per request (e.g. the RSS of a real child process).
    """

    def __init__(self, *, mode: str = "ok", body: str | Callable[[], str] = GOOD_BODY, token: str | None = None,
                 stall_s: float = 10.0, huge_bytes: int = 50 * 1024 * 1024) -> None:
        self.mode, self.body, self.token, self.stall_s, self.huge_bytes = mode, body, token, stall_s, huge_bytes
        self.requests: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                req += chunk
            text = req.decode("latin-1")
            self.requests.append(text)
            mode = self.mode
            authed = self.token is None or f"x-auth-token: {self.token}" in text.lower()
            body = self.body() if callable(self.body) else self.body
            if mode == "close":
                return
            if mode == "401" or not authed:
                err = b'{"error":"Missing X-Auth-Token header"}'
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(err)).encode() + b"\r\nConnection: close\r\n\r\n" + err)
                return
            if mode == "stall":
                self._stop.wait(self.stall_s)
            if mode == "bare":
                conn.sendall(body.encode())
                return
            if mode == "garbage":
                body = "<html><body>{{{ not metrics at all }}}</body></html>\n"
            if mode == "huge":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
                line = b"x_bytes 1\n" * 10000
                sent = 0
                while sent < self.huge_bytes and not self._stop.is_set():
                    conn.sendall(line)
                    sent += len(line)
                return
            raw = body.encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: "
                         + str(len(raw)).encode() + b"\r\nConnection: close\r\n\r\n" + raw)
        except OSError:
            pass
        finally:
            conn.close()


def refused_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def child(tag: str, *, alloc_mb: int = 20, grow_kb_per_s: int = 0) -> Iterator[subprocess.Popen[bytes]]:
    """A real Python child holding ``alloc_mb`` MiB (growing by ``grow_kb_per_s``), tagged in its argv."""
    code = ("import sys,time\nkeep=[b'x'*(%d*1024*1024)]\nwhile True:\n    time.sleep(0.1)\n"
            "    keep.append(b'y'*(%d*100))\n") % (alloc_mb, grow_kb_per_s)
    proc = subprocess.Popen([sys.executable, "-c", code, tag])
    try:
        deadline = time.monotonic() + 10
        import psutil
        while time.monotonic() < deadline and psutil.Process(proc.pid).memory_info().rss < alloc_mb * 2**20 * 0.8:
            time.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
