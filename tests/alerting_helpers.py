"""Test helpers for the exporter / alert rules / receiver tests: real processes on 127.0.0.1 only.

``real_gateway`` starts the real ZeptoClaw binary through ``zcnb.demo.realgw`` (temporary HOME, env -i,
GATEWAY_BIND=127.0.0.1, a throwaway token, stderr to a log file); it skips when the binary is absent and fails
under CI=true. The ``real_gateway`` fixture of conftest.py is the same thing for a single test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import httpx
import pytest
from prom_helpers import free_port, stop

from zcnb.demo.realgw import RealGatewayProcess, locate_real_gateway

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
T = TypeVar("T")


def need(path: str | Path, what: str) -> str:
    """The executable, or skip (fail under CI=true, where everything must be installed)."""
    exe = str(path) if Path(path).is_file() else shutil.which(str(path))
    if exe is None:
        msg = f"{what} not found ({path})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ": CI must provide it")
        pytest.skip(msg)
    return exe


@dataclass
class RealGateway:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    pid_file: Path
    token: str  # throwaway; the startup banner prints it, so nothing zcnb writes may hold it

    @property
    def pid(self) -> int:
        return self.proc.pid


def real_gateway_binary() -> str:
    """The real binary (``$ZCNB_REAL_GATEWAY`` or ``.ci/build-real-gateway``'s cache), or skip (fail under CI=true)."""
    exe = locate_real_gateway()
    return need(exe if exe is not None else "zeptoclaw-gateway",
                "the real zeptoclaw-gateway binary (build it: bash .ci/build-real-gateway; or set ZCNB_REAL_GATEWAY)")


@contextmanager
def real_gateway(tmp: Path, *, name: str = "gw", log_path: Path | None = None,
                 pid_file: Path | None = None) -> Iterator[RealGateway]:
    """The real gateway binary on 127.0.0.1 (``zcnb.demo.realgw``); killed by pid at the end.

    Its stderr goes to ``log_path`` (default ``tmp/NAME.log``), opened for appending, so a test may append lines
    too without the gateway writing over them; its pid is written to ``pid_file`` (default ``tmp/NAME.pid``) as
    soon as it is started, before it listens.
    """
    exe = real_gateway_binary()
    with RealGatewayProcess.start(exe, tmp, name=name, log_path=log_path, pid_file=pid_file) as gw:
        yield RealGateway(gw.proc, gw.port, gw.log_path, gw.pid_file, gw.token.reveal())


class TokenlessTraffic:
    """Token-less GET /health requests with ten headers each, ``rate`` per second (each leaks ~3.5 KB)."""

    def __init__(self, port: int, *, rate: float = 100.0) -> None:
        self.port, self.rate, self.sent = port, rate, 0
        headers = "".join(f"X-Probe-{i}: value-{i}-abcdefghij\r\n" for i in range(10))
        self.request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(self.request)
                    while s.recv(4096):
                        pass
                self.sent += 1
            except OSError:
                self._stop.wait(0.05)
            lag = t0 + self.sent / self.rate - time.monotonic()
            if lag > 0:
                self._stop.wait(lag)


@contextmanager
def zcnb_server(args: list[str], log_path: Path, *, env: dict[str, str] | None = None,
                timeout_s: float = 30.0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m zcnb ARGS`` (a server printing ``listening on URL``); yields (process, URL); stopped by pid."""
    full_env = {**os.environ, **(env or {})}
    root = str(Path(__file__).resolve().parent.parent)
    full_env["PYTHONPATH"] = root + os.pathsep + full_env.get("PYTHONPATH", "")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "zcnb", *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=full_env)
    try:
        deadline = time.monotonic() + timeout_s
        url = ""
        while not url:
            for line in log_path.read_text(errors="replace").splitlines():
                if "listening on " in line:
                    url = line.split("listening on ", 1)[1].strip()
            if url:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"zcnb {args[0]} did not start: " + log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.05)
        yield proc, url
    finally:
        stop(proc)


@contextmanager
def running_alertmanager(tmp: Path, webhook_url: str, token_file: Path, *, repeat_interval: str = "2s",
                         port: int | None = None) -> Iterator[str]:
    """A real Alertmanager routing every alert to ``webhook_url`` with a bearer token file; yields its URL."""
    exe = need(ALERTMANAGER, "prometheus-alertmanager (apt-get install prometheus-alertmanager)")
    port = port or free_port()
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(f"""route:
  receiver: zcnb
  group_by: [alertname, instance, unit, pid]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: {repeat_interval}
receivers:
  - name: zcnb
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
""")
    log_path = tmp / "alertmanager.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([exe, f"--config.file={cfg}", f"--storage.path={tmp / 'am-data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("alertmanager did not start: " + log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        yield url
    finally:
        stop(proc)


def wait_until(pred: Callable[[], T], *, timeout_s: float, what: str, interval_s: float = 0.25,
               context: Callable[[], str] | None = None) -> T:
    """Poll ``pred()`` until it returns something truthy (and return that); fail with ``what`` after ``timeout_s``,
    adding ``context()`` (what the parts say) to the message."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}" + (f"\n{context()}" if context else ""),
                        pytrace=False)
        time.sleep(interval_s)


def backfill(tmp: Path, samples: dict[str, list[tuple[float, float]]], *, kind: str = "gauge") -> Path:
    """Backfill ``{'name{labels}': [(epoch s, value), ...]}`` with promtool into the TSDB folder that
    ``running_prometheus(tmp, ...)`` then opens."""
    exe = need("promtool", "promtool (apt-get install prometheus)")
    names: dict[str, list[str]] = {}
    for series, points in samples.items():
        name = series.split("{", 1)[0]
        names.setdefault(name, []).extend(f"{series} {v:.0f} {t:.3f}" for t, v in points)
    text = "".join(f"# TYPE {name} {kind}\n" + "\n".join(lines) + "\n" for name, lines in names.items()) + "# EOF\n"
    (tmp / "backfill.om").write_text(text)
    data = tmp / "data"  # where running_prometheus keeps its TSDB
    proc = subprocess.run([exe, "tsdb", "create-blocks-from", "openmetrics", str(tmp / "backfill.om"), str(data)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return data
