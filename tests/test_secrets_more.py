"""Secrets audit follow-ups: one redactor for service log tails and leak captures (H2), proxies ignored (H3),
URLs in messages without credentials (L2), private redacted leak-check output (L3), leak-capture plan ids
tied to the process start time (M5). Real processes, real loopback sockets; nothing mocked."""

from __future__ import annotations

import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from zcnb.collect.metrics import MetricsClient
from zcnb.collect.prometheus import PrometheusAuth, check_url, query_instant
from zcnb.config import Secret
from zcnb.exceptions import CommandFailed, ConfigError, EndpointAuthError, EndpointUnreachable, PrometheusError
from zcnb.leaks.capture import _capture_plan, capture_leak_report, run_with_leak_check
from zcnb.service import ProcessSupervisorBackend, SupervisedService

DATA = Path(__file__).parent / "data" / "leakreports"
GW_TOKEN = "gw-token-literal-5f4e3d2c1b"  # no known token shape: only the literal-value rule can catch it


# ---------------------------------------------------------------- H2: supervisor log tail in CommandFailed

def test_supervisor_start_failure_message_has_the_log_tail_redacted(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", GW_TOKEN)
    secrets = ["eyJhbGciOiJIUzI1NiJ9abcdef", "sk-proj-abcdefghijklmnop", "json-token-value-123", "env-token-value-456",
               GW_TOKEN]
    lines = [f"Authorization: Bearer {secrets[0]}", f"openai key {secrets[1]} rejected",
             f'config {{"token":"{secrets[2]}","port":18789}}', f"GATEWAY_AUTH_TOKEN={secrets[3]}",
             f"started with {GW_TOKEN}"]
    code = f"import sys; print({json.dumps(chr(10).join(lines))}, flush=True); sys.exit(3)"
    svc = SupervisedService(name="bad.service", argv=(sys.executable, "-c", code), pid_file=tmp_path / "bad.pid",
                            log_file=tmp_path / "bad.log")
    sup = ProcessSupervisorBackend([svc], run_dir=tmp_path, start_check_s=5.0)
    with pytest.raises(CommandFailed) as info:
        sup.start("bad.service", timeout_s=10)
    msg = str(info.value)
    assert "exited at once with code 3" in msg and "last log lines" in msg
    for s in secrets:
        assert s not in msg
    # what is left says where the secrets were, so the message still helps
    assert "Authorization: Bearer ***" in msg and '"token":"***"' in msg and "GATEWAY_AUTH_TOKEN=***" in msg
    assert "started with ***" in msg
    assert all(s not in "\n".join(sup.log_lines("bad.service")) for s in secrets)


# ---------------------------------------------------------------- H3: proxies from the environment are ignored

class _Proxy:
    """A loopback listener standing in for an HTTP proxy: records every connection and what was sent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                self.seen.append(data)
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class _Endpoint:
    """A real loopback HTTP server: /metrics (gateway-style, token required) and Prometheus' /api/v1/query."""

    def __init__(self, token: str) -> None:
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path.startswith("/api/v1/query"):
                    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                        {"metric": {"instance": "gw"}, "value": [time.time(), "123"]}]}}).encode()
                    ctype = "application/json"
                elif self.headers.get("X-Auth-Token") != token:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                else:
                    body, ctype = b"# TYPE up gauge\nup 1\n", "text/plain; version=0.0.4"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Proxy, _Endpoint]]:
    proxy, endpoint = _Proxy(), _Endpoint("scrape-token-abc123")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, proxy.url)
    try:
        yield proxy, endpoint
    finally:
        proxy.close()
        endpoint.close()


def test_the_proxy_setup_would_catch_a_client_that_trusts_the_environment(proxied: tuple[_Proxy, _Endpoint]) -> None:
    proxy, endpoint = proxied
    with httpx.Client(timeout=5) as client:  # httpx's default: trust_env=True
        resp = client.get(f"http://127.0.0.1:{endpoint.port}/metrics", headers={"X-Auth-Token": "scrape-token-abc123"})
    assert resp.status_code == 502 and len(proxy.seen) == 1 and b"scrape-token-abc123" in proxy.seen[0]
    assert endpoint.headers == []


def test_metrics_scrape_ignores_http_proxy(proxied: tuple[_Proxy, _Endpoint]) -> None:
    proxy, endpoint = proxied
    reply = MetricsClient(f"http://127.0.0.1:{endpoint.port}", token=Secret("scrape-token-abc123")).fetch()
    assert reply.status == 200 and "up 1" in reply.text
    assert proxy.seen == []
    assert [h.get("x-auth-token") for h in endpoint.headers] == ["scrape-token-abc123"]


def test_prometheus_query_ignores_http_proxy(proxied: tuple[_Proxy, _Endpoint], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, endpoint = proxied
    monkeypatch.setenv("ZCNB_TEST_PROM_BEARER", "prom-bearer-xyz789")
    out = query_instant(f"http://127.0.0.1:{endpoint.port}", "up", auth=PrometheusAuth(bearer_token_env="ZCNB_TEST_PROM_BEARER"),
                        retries=0, timeout_s=5)
    assert out == {"gw": 123.0}
    assert proxy.seen == []
    assert [h.get("authorization") for h in endpoint.headers] == ["Bearer prom-bearer-xyz789"]


# ---------------------------------------------------------------- L2: URLs in messages

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_errors_show_urls_without_credentials() -> None:
    url = f"http://ops:url-pass-1234@127.0.0.1:{_closed_port()}/metrics?token=query-tok-5678&x=1"
    client = MetricsClient(url, exact_url=True, timeout_s=2)
    with pytest.raises(EndpointUnreachable) as info:
        client.fetch()
    shown = str(info.value) + " " + str(info.value.context) + repr(client)
    assert "url-pass-1234" not in shown and "query-tok-5678" not in shown and "ops:" not in shown
    assert f"127.0.0.1:{client.port}/metrics?token=[REDACTED]&x=1" in str(info.value)
    with pytest.raises(ConfigError) as bad:
        MetricsClient("http://ops:url-pass-1234@127.0.0.1:99999/metrics?api_key=k-5678")
    assert "url-pass-1234" not in str(bad.value) and "k-5678" not in str(bad.value)


def test_metrics_401_shows_url_without_query_secret(proxied: tuple[_Proxy, _Endpoint]) -> None:
    _, endpoint = proxied
    client = MetricsClient(f"http://127.0.0.1:{endpoint.port}/metrics?access_token=leaky-q-9", exact_url=True)
    with pytest.raises(EndpointAuthError) as info:
        client.fetch()
    assert "leaky-q-9" not in str(info.value) and "leaky-q-9" not in str(info.value.context)
    assert "answered 401" in str(info.value)


def test_prometheus_url_errors_hide_secrets() -> None:
    with pytest.raises(PrometheusError) as info:
        check_url("http://127.0.0.1:99999/?token=prom-q-secret")
    assert "prom-q-secret" not in str(info.value) and "prom-q-secret" not in str(info.value.context)
    with pytest.raises(PrometheusError) as creds:
        check_url("http://u:prom-pw-secret@127.0.0.1:9090")
    assert "prom-pw-secret" not in str(creds.value) + str(creds.value.context)


# ---------------------------------------------------------------- L3: leak-check output is private and redacted

def test_leak_check_output_is_private_redacted_and_still_parsed(tmp_path: Path) -> None:
    report = (DATA / "lsan_leaky.txt").read_text()
    env_token = "env-gw-token-0a1b2c3d"
    code = ("import os, sys\n"
            "print('Main Token: banner-token-9z8y7x6w', flush=True)\n"
            "print('env says ' + os.environ['GATEWAY_AUTH_TOKEN'], flush=True)\n"
            f"sys.stderr.write({report!r})\n"
            "sys.stderr.write('Authorization: Bearer stderr-bearer-42\\n')\n")
    out = tmp_path / "new" / "leakcheck"
    res = run_with_leak_check([sys.executable, "-c", code], tool="lsan", seconds=20, out_dir=out,
                              env={**os.environ, "GATEWAY_AUTH_TOKEN": env_token})
    assert res.exited_early and res.report is not None and res.report.recognized
    assert res.report.leaked_bytes == 348 and res.report.tools == ("lsan",)  # parsed from the raw text
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    files = sorted(p.name for p in out.iterdir())
    assert files == ["stderr.log", "stdout.log"]  # no raw scratch copy left behind
    blob = ""
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        blob += p.read_text()
    for s in ("banner-token-9z8y7x6w", env_token, "stderr-bearer-42"):
        assert s not in blob and s not in json.dumps(res.to_dict())
    assert "Main Token: [REDACTED]" in blob and "348 byte(s) leaked" in blob  # the report itself is kept
    assert res.output_path == str(out / "stderr.log")


def test_leak_check_existing_out_dir_keeps_its_mode(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    res = run_with_leak_check([sys.executable, "-c", "print('token: abcdefgh1234')"], tool="asan", seconds=20,
                              out_dir=tmp_path)
    assert res.exited_early and stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert (tmp_path / "stdout.log").read_text() == "token: [REDACTED]\n"
    assert stat.S_IMODE((tmp_path / "stdout.log").stat().st_mode) == 0o600


# ---------------------------------------------------------------- M5: plan id = pid + start time

def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)


def test_capture_plan_id_changes_with_the_process_start_time(tmp_path: Path) -> None:
    a = _sleeper()
    time.sleep(0.05)  # create_time has clock-tick resolution: make the second process start later
    b = _sleeper()
    try:
        ta, tb = psutil.Process(a.pid).create_time(), psutil.Process(b.pid).create_time()
        assert ta != tb
        kw: dict[str, Any] = {"host": "127.0.0.1", "port": 18789, "timeout_s": 10.0, "where": "log",
                              "restart_name": None, "method": "auto"}
        # the same pid number with another start time (a reused pid) gives another plan id
        assert _capture_plan(a.pid, ta, **kw).plan_id != _capture_plan(a.pid, tb, **kw).plan_id
        assert _capture_plan(a.pid, ta, **kw).plan_id == _capture_plan(a.pid, ta, **kw).plan_id
        dry = capture_leak_report(pid=a.pid, port=18789, log_source=str(tmp_path / "log"), timeout_s=10.0)
        log = str(tmp_path / "log")
        assert dry.plan.plan_id == _capture_plan(a.pid, ta, **{**kw, "where": log}).plan_id
        assert "started " in dry.plan.target and dry.action.outcome == "planned"
    finally:
        for p in (a, b):
            p.kill()
            p.wait(timeout=10)
    # once that process is gone the old id no longer applies to the pid
    gone = capture_leak_report(pid=a.pid, port=18789, log_source=str(tmp_path / "log"), timeout_s=10.0)
    assert gone.plan.plan_id != dry.plan.plan_id and "not running" in gone.plan.target
