"""wait_healthy / probe_health against real servers on 127.0.0.1: the simulated gateway and tiny stdlib servers.

The tiny ``http.server`` servers stand in for bodies the simulator never sends (newer gateways' extra objects,
wrong bodies, the webhook's plain ``ok``); they are real HTTP servers, not mocks.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from zcnb.config import Secret
from zcnb.exceptions import ConfigError
from zcnb.ops.demo_target import simulator_service
from zcnb.service import ProcessSupervisorBackend, probe_health, wait_healthy

TOKEN = Secret("health-test-token-abcdef012345")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[ProcessSupervisorBackend, str]]:
    svc = simulator_service("gw", run_dir=tmp_path, token=TOKEN, extra_args=("--rate-limit", "5"))
    m = ProcessSupervisorBackend([svc], run_dir=tmp_path)
    m.start("gw")
    assert svc.health is not None
    wait_healthy(svc.health.url, token=TOKEN, timeout_s=15)
    yield m, svc.health.url
    m.close()


def serve(body: bytes, status: int = 200) -> tuple[ThreadingHTTPServer, str]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/health"


def test_healthy_unauthorized_wrong_token(gateway: tuple[ProcessSupervisorBackend, str]) -> None:
    m, url = gateway
    pid = m.status("gw").pid
    ok = wait_healthy(url, token=TOKEN, timeout_s=5, pid=pid)
    assert ok.healthy and ok.body_status == "healthy" and ok.pid_alive
    missing = wait_healthy(url, token=None, timeout_s=5)
    assert missing.state == "unauthorized" and "Missing X-Auth-Token" in missing.detail and missing.attempts == 1
    wrong = probe_health(url, token=Secret("nope"))
    assert wrong.state == "unauthorized" and "Invalid" in wrong.detail
    assert "GATEWAY_AUTH_TOKEN" in wrong.advice
    assert TOKEN.reveal() not in json.dumps(ok.to_dict()) + ok._repr_markdown_()


def test_busy_when_single_threaded_server_is_held(gateway: tuple[ProcessSupervisorBackend, str]) -> None:
    m, url = gateway
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    hold = socket.create_connection(("127.0.0.1", port))  # occupies the one connection slot, like an agent turn
    try:
        res = wait_healthy(url, token=TOKEN, timeout_s=2.0, probe_timeout_s=0.7, pid_getter=lambda: m.status("gw").pid)
    finally:
        hold.close()
    assert res.state == "busy" and res.pid_alive is True and "alive" in res.detail
    assert "wait and probe again" in res.advice


def test_down_when_process_gone(gateway: tuple[ProcessSupervisorBackend, str]) -> None:
    m, url = gateway
    pid = m.status("gw").pid
    m.stop("gw", timeout_s=10)
    res = wait_healthy(url, token=TOKEN, timeout_s=10, pid=pid)
    assert res.state == "down" and res.pid_alive is False and res.attempts == 1  # no point waiting


def test_rate_limited_connection_closed(gateway: tuple[ProcessSupervisorBackend, str]) -> None:
    _, url = gateway
    states = [probe_health(url, token=TOKEN).state for _ in range(8)]
    assert "rate_limited" in states and states[0] == "healthy"
    res = wait_healthy(url, token=TOKEN, timeout_s=5)
    assert res.state == "rate_limited" and res.attempts == 1 and "wait a minute" in res.advice


def test_lenient_body_with_extra_objects() -> None:
    srv, url = serve(json.dumps({"status": "healthy", "whatsapp": {"connected": True}, "turns": {"active": 0}}).encode())
    try:
        res = wait_healthy(url, token=TOKEN, timeout_s=3)
    finally:
        srv.shutdown()
    assert res.healthy and res.extras == ("turns", "whatsapp")


@pytest.mark.parametrize("body,status,detail", [(b'{"status":"degraded"}', 200, "degraded"),
                                                (b"<html>oops</html>", 200, "not JSON"),
                                                (b'{"status":"healthy"}', 500, "HTTP 500"),
                                                (b"[1,2]", 200, "not an object")])
def test_unexpected_bodies(body: bytes, status: int, detail: str) -> None:
    srv, url = serve(body, status)
    try:
        res = wait_healthy(url, token=None, timeout_s=0.6, interval_s=0.2)
    finally:
        srv.shutdown()
    assert res.state == "unexpected" and detail in res.detail and res.attempts >= 2


def test_webhook_plain_ok() -> None:
    srv, url = serve(b"ok")
    try:
        assert probe_health(url, expect="text-ok").healthy
        assert probe_health(url).state == "unexpected"  # "ok" is not the gateway's JSON
    finally:
        srv.shutdown()


def test_refused_without_pid_keeps_polling_until_timeout(free_port: int) -> None:
    res = wait_healthy(f"http://127.0.0.1:{free_port}/health", token=None, timeout_s=1.0, interval_s=0.2)
    assert res.state == "down" and res.attempts >= 3 and "refused" in res.detail


@pytest.mark.parametrize("url", ["ftp://x/health", "127.0.0.1:18789/health", "file:///etc/passwd"])
def test_bad_url_is_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="http"):
        probe_health(url)


def test_bad_timeouts() -> None:
    with pytest.raises(ConfigError):
        wait_healthy("http://127.0.0.1:1/health", token=None, timeout_s=-1)
