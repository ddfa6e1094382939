"""Test helpers shared by test_prometheus.py and test_fleet.py: free ports and a real Prometheus on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prometheus_exe() -> str:
    """The ``prometheus`` binary, or skip the test where the Debian package is not installed."""
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("prometheus binary not installed (apt-get install -y prometheus)")
    return exe


def stop(proc: subprocess.Popen[bytes], *, timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; always reaps the process."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running_prometheus(tmp: Path, config: Callable[[int], str], *, ready_timeout_s: float = 60.0,
                       port: int | None = None, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Start Prometheus with ``config(port)`` as its YAML (and ``extra_args`` flags), wait for /-/ready, yield its
    URL, stop it on exit."""
    exe = prometheus_exe()
    port = port or free_port()
    (tmp / "prometheus.yml").write_text(config(port))
    log_path = tmp / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([exe, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={tmp / 'data'}",
                                 *extra_args],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("prometheus did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        stop(proc)
