"""The real ZeptoClaw binary as the test suite starts it (REAL-GATEWAY.md): loopback, token, no memory metric."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from zcnb.demo.realgw import locate_real_gateway
from zcnb.exceptions import ConfigError


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_real_gateway_listens_on_loopback_only_and_checks_the_token(real_gateway: Any) -> None:
    gw = real_gateway()
    conns = [c for c in psutil.Process(gw.pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert conns and all(c.laddr.ip == "127.0.0.1" for c in conns), conns
    ok = httpx.get(gw.url + "/health", headers={"X-Auth-Token": gw.token.reveal()}, timeout=5)
    assert ok.status_code == 200 and ok.json() == {"status": "healthy"}
    denied = httpx.get(gw.url + "/health", timeout=5)
    assert denied.status_code == 401 and "Missing X-Auth-Token" in denied.text
    metrics = _raw(gw.port, f"GET /metrics HTTP/1.1\r\nX-Auth-Token: {gw.token.reveal()}\r\n\r\n".encode())
    assert not metrics.startswith(b"HTTP/") and b"zeptoclaw_requests_total" in metrics
    assert b"resident_memory" not in metrics


def test_real_gateway_token_never_in_repr(real_gateway: Any) -> None:
    gw = real_gateway()
    assert gw.token.reveal() not in repr(gw) and gw.token.reveal() in gw.log_path.read_text()  # the banner prints it


def test_locate_refuses_a_path_that_is_not_an_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "not-a-binary"
    bad.write_text("x")
    with pytest.raises(ConfigError, match="not an executable file"):
        locate_real_gateway(bad)
    monkeypatch.setenv("ZCNB_REAL_GATEWAY", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="ZCNB_REAL_GATEWAY"):
        locate_real_gateway()
    monkeypatch.delenv("ZCNB_REAL_GATEWAY")
    monkeypatch.setenv("ZCNB_REAL_GATEWAY_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert locate_real_gateway() is None
    assert os.environ["PATH"] == str(tmp_path)
