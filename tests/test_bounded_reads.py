"""Every HTTP body zcnb reads is bounded in size and in total time: hostile loopback servers.

Real TCP servers on 127.0.0.1 (raw sockets, so they can misbehave in ways an HTTP framework will not):
an endless body, a 1-byte-per-second drip of the body and of the headers, a Content-Length above the
cap, a gzip bomb. Each client must end within its deadline with a clear error and bounded memory.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zcnb.cli import main as cli_main
from zcnb.collect.metrics import fetch_metrics
from zcnb.collect.prometheus import query_range
from zcnb.exceptions import EndpointBodyTooLarge, EndpointUnreachable, PrometheusError

JSON_HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'


class Hostile:
    """A loopback server that answers every connection with ``behave(conn)`` in its own thread."""

    def __init__(self, behave: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.connections = 0
        self.behave = behave
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            conn.recv(65536)  # the request
            self.behave(conn)
        except OSError:
            pass  # the client hung up: expected
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def endless(conn: socket.socket) -> None:
    conn.sendall(JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" * 65536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn.sendall(frame)


def drip_body(conn: socket.socket) -> None:
    conn.sendall(JSON_HEAD + b"\r\n")  # no length: the body runs until the connection closes
    for _ in range(600):
        conn.sendall(b" ")
        time.sleep(1.0)


def drip_headers(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(600):
        conn.sendall(b"X")
        time.sleep(1.0)


def huge_length(conn: socket.socket) -> None:
    conn.sendall(JSON_HEAD + b"Content-Length: 99999999999\r\n\r\n{")
    time.sleep(5)


def gzip_bomb(conn: socket.socket) -> None:
    body = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB of spaces in ~64 KiB
    conn.sendall(JSON_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    server = Hostile(request.param)
    yield server
    server.close()


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


@pytest.mark.parametrize("hostile", [drip_body, drip_headers], indirect=True, ids=["drip-body", "drip-headers"])
def test_prometheus_slow_drip_ends_at_the_total_deadline(hostile: Hostile) -> None:
    t0 = time.monotonic()
    with pytest.raises(PrometheusError, match="within the 2 s deadline") as info:
        query_range(hostile.url, "up", start=0, end=15, step=15, timeout_s=2, retries=3)
    assert time.monotonic() - t0 < 3.5
    assert "raise --timeout" in (info.value.hint or "")


@pytest.mark.parametrize("hostile", [endless, huge_length, gzip_bomb], indirect=True,
                         ids=["endless", "huge-length", "gzip-bomb"])
def test_prometheus_oversized_reply_is_refused(hostile: Hostile) -> None:
    t0 = time.monotonic()
    with pytest.raises(PrometheusError, match="larger than 4.0 MiB") as info:
        query_range(hostile.url, "up", start=0, end=15, step=15, timeout_s=20, max_response_bytes=4 * 2**20)
    assert time.monotonic() - t0 < 10
    assert "--max-response" in (info.value.hint or "")


@pytest.mark.parametrize("hostile", [drip_body, drip_headers], indirect=True, ids=["drip-body", "drip-headers"])
def test_metrics_and_health_slow_drip(hostile: Hostile) -> None:
    for path in ("/metrics", "/health"):
        t0 = time.monotonic()
        with pytest.raises(EndpointUnreachable, match="within 1.5 s"):
            fetch_metrics(hostile.url + path, timeout_s=1.5)
        assert time.monotonic() - t0 < 2.8


@pytest.mark.parametrize("hostile", [endless, huge_length, gzip_bomb], indirect=True,
                         ids=["endless", "huge-length", "gzip-bomb"])
def test_metrics_oversized(hostile: Hostile) -> None:
    with pytest.raises(EndpointBodyTooLarge, match="more than 1048576 bytes"):
        fetch_metrics(hostile.url, timeout_s=10, max_bytes=2**20)


@pytest.mark.parametrize("hostile", [endless], indirect=True)
def test_cli_fleet_endless_reply_bounded_memory(hostile: Hostile) -> None:
    """``zcnb fleet`` in a child process: ends with exit 2 and a clear message, peak RSS far below the stream."""
    # VmHWM of the child's own address space (ru_maxrss would carry the forking pytest process's peak over execve)
    code = ("import sys\nfrom zcnb.cli import main\n"
            f"rc = main(['fleet', '--prometheus-url', {hostile.url!r}, '--since', '1h', '--timeout', '20',"
            " '--max-response', '32MiB', '--no-rule'])\n"
            "hwm = next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:'))\n"
            "print('PEAK', hwm, file=sys.stderr)\nsys.exit(rc)\n")
    t0 = time.monotonic()
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                          env=env, cwd=root)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    assert "larger than 32.0 MiB" in proc.stderr and "Traceback" not in proc.stderr
    peak_kib = int(proc.stderr.split("PEAK")[1].split()[0])
    assert peak_kib < 400 * 1024  # python + pandas + the 32 MiB cap, not the endless stream
    assert elapsed < 30


@pytest.mark.parametrize("hostile", [drip_body], indirect=True)
def test_cli_fleet_timeout_is_total(hostile: Hostile, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    assert cli_main(["fleet", "--prometheus-url", hostile.url, "--since", "1h", "--timeout", "2", "--no-rule"]) == 2
    assert time.monotonic() - t0 < 4
    err = capsys.readouterr().err
    assert "within the 2 s deadline" in err and "Traceback" not in err



@pytest.mark.parametrize(("hostile", "expected"), [(drip_body, "no reply within 1.5 s"),
                                                   (drip_headers, "no reply within 1.5 s"),
                                                   (endless, "larger than 1048576 bytes")],
                         indirect=["hostile"], ids=["drip-body", "drip-headers", "endless"])
def test_health_probe_is_bounded(hostile: Hostile, expected: str) -> None:
    """``probe_health`` (zcnb health, restart waits) ends by its deadline and never reads past 1 MiB."""
    from zcnb.service.health import probe_health

    t0 = time.monotonic()
    res = probe_health(hostile.url + "/health", timeout_s=1.5)
    assert time.monotonic() - t0 < 2.8
    assert res.state != "healthy" and expected in res.detail, res
