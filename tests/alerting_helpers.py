"""Test helpers for the exporter / alert rules / receiver tests: real processes on 127.0.0.1 only.

``real_gateway`` starts the real ZeptoClaw binary the way REAL-GATEWAY.md shows (temporary HOME, env -i,
GATEWAY_BIND=127.0.0.1, a throwaway token, stderr to a log file). It is kept apart from the tests so that it can
be replaced by the shared real-gateway fixture; it skips when the binary is absent and fails under CI=true.
"""

from __future__ import annotations

import os
import secrets
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
from typing import TypeVar

import httpx
import pytest

from prom_helpers import free_port, stop

REAL_GATEWAY = Path(os.environ.get("ZCNB_REAL_GATEWAY", "/work/scratch/zc/bin/zeptoclaw-gateway"))
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


@contextmanager
def real_gateway(tmp: Path, *, name: str = "gw", log_path: Path | None = None,
                 pid_file: Path | None = None) -> Iterator[RealGateway]:
    """The real gateway binary on 127.0.0.1 (see the module docstring); killed by pid at the end.

    Its stderr goes to ``log_path`` (default ``tmp/NAME.log``), opened for appending, so a test may append lines
    too without the gateway writing over them; its pid is written to ``pid_file`` (default ``tmp/NAME.pid``) as
    soon as it is started, before it listens.
    """
    exe = need(REAL_GATEWAY, "the real zeptoclaw-gateway binary (set ZCNB_REAL_GATEWAY)")
    home = tmp / f"{name}-home"
    (home / ".zeptoclaw").mkdir(parents=True)
    (home / "workspace").mkdir()
    port, token = free_port(), secrets.token_hex(16)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "WORKSPACE": str(home / "workspace"),
           "NVIDIA_API_KEY": "unused", "GATEWAY_BIND": "127.0.0.1", "GATEWAY_PORT": str(port),
           "GATEWAY_AUTH_TOKEN": token, "ZEPTO_MEMORY_SECS": "0"}
    log_path, pid_file = log_path or tmp / f"{name}.log", pid_file or tmp / f"{name}.pid"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([exe], cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log)
    pid_file.write_text(f"{proc.pid}\n")
    try:
        deadline = time.monotonic() + 30
        while b"listening on" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the real gateway did not print 'listening on' within 30 s (exit code {proc.poll()}); "
                            "its log: " + log_path.read_text(errors="replace")[-1500:])
            time.sleep(0.05)
        yield RealGateway(proc, port, log_path, pid_file, token)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


class TokenlessTraffic:
    """Token-less GET /health requests with ten headers each, ``rate`` per second (each leaks ~3.5 KB)."""

    def __init__(self, port: int, *, rate: float = 100.0) -> None:
        self.port, self.rate, self.sent = port, rate, 0
        headers = "".join(f"X-Probe-{i}: value-{i}-abcdefghij\r\n" for i in range(10))
        self.request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TokenlessTraffic:
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
