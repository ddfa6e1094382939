"""``zcnb gateway --real PATH`` and ``zcnb demo --gateway-binary PATH`` on the real ZeptoClaw binary."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_gateway_real_prints_where_never_the_token_and_stops_cleanly(real_gateway: Any, tmp_path: Path) -> None:
    from zcnb.demo.realgw import locate_real_gateway

    exe = locate_real_gateway()
    token = "cli-test-token-7f3a9c2b1d"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_AUTH_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-m", "zcnb", "gateway", "--real", str(exe), "--port", "0",
                             "--work-dir", str(tmp_path / "w"), "--duration", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    m = re.search(r"at http://127\.0\.0\.1:(\d+)\s+pid (\d+)", first)
    assert m, first
    with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n")
        assert b"401" in s.recv(4096)
    proc.wait(timeout=60)
    out = first + proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "log: " in out and "pid file: " in out and "from $GATEWAY_AUTH_TOKEN" in out
    assert token not in out and token not in err
    assert re.search(r"stopped: clean exit after [\d.]+ s \(stop method shutdown-socket\); zig: 7 record", out), out
    assert "parseRequest" in out


def test_gateway_real_with_a_bad_path_is_a_clear_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "zcnb", "gateway", "--real", str(tmp_path / "nope")], check=False,
                       capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and "is not an executable file" in r.stderr and "build-real-gateway" in r.stderr
