"""The simulated gateway (zcnb.demo), tested as real processes over real loopback HTTP.

Nothing is mocked: every test starts ``python -m zcnb.demo.server`` on 127.0.0.1 (free port)
and measures the process with psutil.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from zcnb.config import Secret
from zcnb.demo import SimulatedGateway, TrafficGenerator
from zcnb.exceptions import CommandFailed, ConfigError

ZIG_LINE = re.compile(r"^(error|warning|info|debug)(\([A-Za-z]+\))?: \S")
UNLEVELLED = ("ZeptoClaw Gateway ", "Listening on http://127.0.0.1:", "Main Token: ", "Connection error: error.")
MiB = 1024 * 1024


def raw_get(gw: Any, path: str, *, token: str | None = None) -> bytes:
    """Send one request over a plain socket and read until EOF (works without a status line)."""
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if token is not None:
        head += f"X-Auth-Token: {token}\r\n"
    with socket.create_connection((gw.host, gw.port), timeout=10) as s:
        s.sendall((head + "\r\n").encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def hdr(gw: Any) -> dict[str, str]:
    return {"X-Auth-Token": gw.token.reveal()}


def gone(gw: Any, timeout: float = 10.0) -> bool:
    """Wait for our own child to exit without reaping it behind Popen's back (keeps its exit code)."""
    deadline = time.monotonic() + timeout
    while gw.running:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def idle_in_accept(pid: int, timeout: float) -> bool:
    """True once the process holds no TCP connection but its listening socket (it waits in accept())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.status == psutil.CONN_LISTEN for c in psutil.Process(pid).net_connections(kind="tcp")):
            return True
        time.sleep(0.02)
    return False


def wait_exit(pid: int, timeout: float = 10.0) -> bool:
    """Wait for a process that is not our child."""
    try:
        psutil.Process(pid).wait(timeout)
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False


def test_real_profile_requires_token_with_documented_401_bodies(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real")
    for path in ("/health", "/metrics", "/heartbeat"):
        r = httpx.get(gw.url + path)
        assert r.status_code == 401 and r.json() == {"error": "Missing X-Auth-Token header"}
        r = httpx.get(gw.url + path, headers={"X-Auth-Token": "wrong"})
        assert r.status_code == 401 and r.json() == {"error": "Invalid or expired token"}
    r = httpx.get(gw.url + "/health", headers=hdr(gw))
    assert r.status_code == 200 and r.json() == {"status": "healthy"}
    assert httpx.get(gw.url + "/__ground_truth").status_code == 401
    truth = gw.ground_truth()
    assert truth["unauth"] == 6 and truth["unauth_by_route"] == {"health": 2, "heartbeat": 2, "metrics": 2}
    assert truth["requests"] == {"health": 1}


def test_real_metrics_has_no_status_line_and_no_process_metrics(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real")
    with pytest.raises(httpx.HTTPError):
        httpx.get(gw.url + "/metrics", headers=hdr(gw), timeout=10)
    body = raw_get(gw, "/metrics", token=gw.token.reveal()).decode()
    assert body.startswith("# HELP ") and "HTTP/" not in body
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    assert set(fams) == {"zeptoclaw_requests", "zeptoclaw_uptime_seconds"}
    assert fams["zeptoclaw_requests"].type == "counter" and fams["zeptoclaw_uptime_seconds"].type == "gauge"
    assert fams["zeptoclaw_requests"].samples[0].value == 2  # both /metrics requests counted


def test_runbook_metrics_have_process_collector_values(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="runbook")
    assert httpx.get(gw.url + "/health").json() == {"status": "healthy"}  # token optional
    r = httpx.get(gw.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {s.name: s.value for f in text_string_to_metric_families(r.text) for s in f.samples}
    rss = psutil.Process(gw.pid).memory_info().rss
    assert abs(values["process_resident_memory_bytes"] - rss) < 0.25 * rss
    assert values["process_virtual_memory_bytes"] >= values["process_resident_memory_bytes"]
    assert abs(values["process_start_time_seconds"] - psutil.Process(gw.pid).create_time()) < 2
    for name in ("process_cpu_seconds_total", "process_open_fds", "memory_usage_bytes", "zeptoclaw_requests_total",
                 "zeptoclaw_uptime_seconds"):
        assert name in values
    assert httpx.get(gw.url + "/health", headers={"X-Auth-Token": "bad"}).status_code == 401


def test_health_detail_and_slow_agent_turn_blocks_health(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", health_detail=True)
    body = httpx.get(gw.url + "/health", headers=hdr(gw)).json()
    assert body["status"] == "healthy" and set(body) == {"status", "whatsapp", "turns"}
    with socket.create_connection((gw.host, gw.port), timeout=10) as slow:
        payload = json.dumps({"skill": "git_workflow", "delay_s": 3}).encode()
        slow.sendall(b"POST /agent HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"X-Auth-Token: {gw.token.reveal()}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        time.sleep(0.3)  # the single-threaded server is now inside the slow turn
        with pytest.raises(httpx.TimeoutException):
            httpx.get(gw.url + "/health", headers=hdr(gw), timeout=1.0)
        assert slow.recv(100).startswith(b"HTTP/1.1 200")
    assert psutil.pid_exists(gw.pid)  # busy, not dead


def test_rate_limit_closes_connection_without_reply(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", rate_limit_max=3, rate_limit_window_s=60)
    for _ in range(3):
        assert raw_get(gw, "/health", token=gw.token.reveal()).startswith(b"HTTP/1.1 200")
    assert raw_get(gw, "/health", token=gw.token.reveal()) == b""
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(gw.url + "/health", headers=hdr(gw))
    assert httpx.get(gw.url + "/health").status_code == 401  # no token: not limited, still refused
    truth = gw.ground_truth()  # not rate limited itself
    assert truth["rate_limited"] == 2 and truth["requests"] == {"health": 3}
    assert gw.log_text().count("Connection error: error.RateLimitExceeded") == 2


def test_rate_limit_window_slides(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", rate_limit_max=2, rate_limit_window_s=1.0)
    assert [bool(raw_get(gw, "/health", token=gw.token.reveal())) for _ in range(3)] == [True, True, False]
    time.sleep(1.3)
    assert raw_get(gw, "/health", token=gw.token.reveal()).startswith(b"HTTP/1.1 200")


def test_per_request_leak_really_grows_rss_and_none_does_not(sim_gateway: Any) -> None:
    leaky = sim_gateway(profile="real", leak="per_request", leak_kind="unauth", leak_bytes=256 * 1024)
    clean = sim_gateway(profile="real", leak="none")
    before = {g.pid: psutil.Process(g.pid).memory_info().rss for g in (leaky, clean)}
    with httpx.Client() as client:
        for _ in range(80):
            for g in (leaky, clean):
                client.get(g.url + "/health")  # token-less probe: the leaking kind
    grown = {g.pid: psutil.Process(g.pid).memory_info().rss - before[g.pid] for g in (leaky, clean)}
    assert grown[leaky.pid] >= 16 * MiB, grown  # 80 x 256 KiB = 20 MiB retained
    assert grown[clean.pid] < 3 * MiB, grown
    assert leaky.ground_truth()["leak"]["leaked_bytes_total"] == 80 * 256 * 1024
    assert clean.ground_truth()["leak"]["leaked_bytes_total"] == 0


@pytest.mark.slow
def test_time_driven_modes_shape_rss(sim_gateway: Any) -> None:
    lin = sim_gateway(leak="linear", leak_rate=6 * MiB)
    flat = sim_gateway(leak="sawtooth-flat", leak_period=1.0, leak_transient=24 * MiB)
    warm = sim_gateway(leak="warmup-plateau", leak_rate=12 * MiB, leak_warmup=1.0)
    procs = {name: psutil.Process(g.pid) for name, g in (("lin", lin), ("flat", flat), ("warm", warm))}
    series: dict[str, list[int]] = {k: [] for k in procs}
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.5:
        for k, p in procs.items():
            series[k].append(p.memory_info().rss)
        time.sleep(0.05)
    assert series["lin"][-1] - series["lin"][0] >= 8 * MiB  # ~20 MiB expected
    assert max(series["flat"]) - min(series["flat"]) >= 8 * MiB  # transient peaks...
    assert series["flat"][-1] - series["flat"][0] < 24 * MiB
    n = len(series["warm"])
    assert series["warm"][n // 2] - series["warm"][0] >= 6 * MiB  # grew during warm-up...
    assert abs(series["warm"][-1] - series["warm"][n // 2]) < 2 * MiB  # ...then flat
    assert flat.ground_truth()["leak"]["leaked_bytes_total"] == 0
    assert warm.ground_truth()["leak"]["leaked_bytes_total"] == 0
    assert lin.ground_truth()["leak"]["leaked_bytes_total"] >= 8 * MiB


def test_traffic_counts_match_ground_truth(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="runbook", leak="per_request", leak_kind="agent", leak_bytes=4096)
    tg = TrafficGenerator(gw.url, token=gw.token, skills={"git_workflow": 8, "web_research": 5},
                          tools={"web_search": 4}, unauth_rate=5, heartbeat_rate=3, ws_rate=2, duration_s=2.5,
                          budget_per_min=1000, seed=3)
    counts = tg.start().wait(30)
    assert not tg.running and counts.dropped == 0 and counts.failed == 0
    truth = gw.ground_truth()
    assert counts.skills == truth["skills"] and sum(counts.skills.values()) >= 20
    assert counts.tools == truth["tools"]
    assert counts.unauth == truth["unauth"] > 0
    assert counts.heartbeat == truth["requests"]["heartbeat"] and counts.ws == truth["requests"]["ws"]
    agent_calls = sum(counts.skills.values()) + sum(counts.tools.values())
    assert truth["requests"]["agent"] == agent_calls
    assert truth["leak"]["leaked_bytes_total"] == agent_calls * 4096
    json.dumps(counts.to_dict())


def test_traffic_respects_token_budget_and_tolerates_drops(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", rate_limit_max=4, rate_limit_window_s=60)
    with TrafficGenerator(gw.url, token=gw.token, skills={"git_workflow": 20}, budget_per_min=6) as tg:
        time.sleep(1.0)
    counts = tg.counts()
    assert counts.sent_with_token + counts.dropped == 6 and counts.skipped_budget > 0
    assert counts.skills == {"git_workflow": 4} and counts.dropped == 2  # the server's limit is 4
    assert gw.ground_truth()["rate_limited"] == 2


def test_sigterm_is_ignored_until_accept_fails_then_gpa_report(sim_gateway: Any) -> None:
    """The real profile behaves like the real binary: SIGTERM plus a connection does not stop it (the connection
    is served); a failing accept() (its listening socket shut down through pidfd_getfd) ends it cleanly."""
    from zcnb.leaks.cleanstop import clean_stop

    gw = sim_gateway(profile="real", leak="per_request", leak_kind="agent", leak_bytes=1000)
    with httpx.Client(headers=hdr(gw)) as client:
        for i in range(25):
            assert client.post(gw.url + "/agent", json={"skill": "git_workflow", "command": f"/c{i}"}).status_code == 200
    # The gateway serves one connection at a time: SIGTERM while it still handles the client's keep-alive
    # connection would (rightly) end it after that connection. Wait until it is back in accept().
    assert idle_in_accept(gw.pid, 10), "the gateway still holds the client's connection"
    os.kill(gw.pid, signal.SIGTERM)
    assert not gone(gw, 1.5), "exited before any connection: the real gateway waits in accept()"
    socket.create_connection((gw.host, gw.port), timeout=5).close()
    assert not gone(gw, 1.5), "exited after a connection: the real gateway sees SIGTERM only when accept() fails"
    assert httpx.get(gw.url + "/health", headers=hdr(gw), timeout=5).status_code == 200  # still served
    assert idle_in_accept(gw.pid, 10)
    stop = clean_stop(gw.pid, port=gw.port, timeout_s=15, kill_after=False)
    assert stop.exited and stop.method == "shutdown-socket", stop
    assert gone(gw, 15)
    result = gw.stop()
    assert result.exit_code == 0 and result.note == "was not running"
    report = gw.leak_report_lines()
    heads = [line for line in report if line.startswith("error(gpa): memory address 0x")]
    assert len(heads) == 20 and all(h.endswith(" leaked:") for h in heads)
    assert report[-1].startswith("error(gpa): 5 more leaked allocations") and "25000 bytes" in report[-1]
    frame = re.compile(r"^/\S+\.zig:(\d+):(\d+): 0x[0-9a-f]+ in \w+ \(zeptoclaw-gateway\)$")
    frames = [i for i, line in enumerate(report) if frame.match(line)]
    assert "config.zig" in report[frames[0]] and "loadConfig" in report[frames[0]]
    for i in frames:  # source line, then a caret under the column
        col = int(frame.match(report[i]).group(2))  # type: ignore[union-attr]
        assert report[i + 2] == " " * (col - 1) + "^"


def test_stop_clean_and_report_scope_for_newer_zig(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", leak="per_request", leak_kind="ws", gpa_scope="DebugAllocator")
    r = httpx.get(gw.url + "/ws", headers={**hdr(gw), "Upgrade": "websocket", "Connection": "Upgrade",
                                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status_code == 101 and r.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    result = gw.stop(timeout=10)
    assert result.clean and not result.killed and not gw.running
    assert gw.leak_report_lines()[0].startswith("error(DebugAllocator): memory address 0x")


def test_ignore_sigterm_then_stop_falls_back_to_kill(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", leak="per_request", leak_kind="unauth", ignore_sigterm=True)
    httpx.get(gw.url + "/health")
    pid = gw.pid
    result = gw.stop(timeout=1.0)
    assert result.killed and result.report_lost and not result.clean and result.exit_code == -signal.SIGKILL
    assert "lost" in result.note and not psutil.pid_exists(pid)
    assert gw.leak_report_lines() == []


def test_runbook_profile_exits_at_once_on_sigterm(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="runbook")
    os.kill(gw.pid, signal.SIGTERM)
    assert gone(gw, 10)  # no connection needed
    assert gw.stop().exit_code == 0


def test_log_lines_have_documented_forms(sim_gateway: Any) -> None:
    real = sim_gateway(profile="real", error_rate=1.0, seed=7)
    book = sim_gateway(profile="runbook", error_rate=0.0)
    for gw in (real, book):
        with httpx.Client(headers=hdr(gw)) as client:
            client.post(gw.url + "/agent", json={"skill": "git_workflow", "command": "/git-status"})
            client.post(gw.url + "/agent", json={"tool": "web_search", "args": {"query": "x"}})
            client.post(gw.url + "/heartbeat")
    real_log, book_log = real.log_text(), book.log_text()
    for text in (real_log, book_log):
        assert 'info: [agent] tool skill args={"name":"git_workflow","command":"/git-status"}\n' in text
        assert 'info: [agent] tool web_search args={"query":"x"}\n' in text
        assert "Main Token: ***" in text and real.token.reveal() not in text and book.token.reveal() not in text
        for line in text.splitlines():
            assert ZIG_LINE.match(line) or line.startswith(UNLEVELLED), line
        assert not re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d", text)  # the app writes no timestamps
    assert "info: [agent] invoking skill:git-workflow" in book_log and "skill:" not in real_log
    assert real.log_path.read_text().count(f"Main Token: {real.token.reveal()}") == 1  # clear in the raw log
    assert stat.S_IMODE(real.log_path.stat().st_mode) == 0o600
    noise = real.ground_truth()["noise_lines"]
    assert sum(noise.values()) == 3 and any(k.startswith(("error", "warning")) for k in noise)


def test_noise_lines_are_deterministic_per_seed(sim_gateway: Any) -> None:
    logs = []
    for seed in (5, 5, 6):
        gw = sim_gateway(profile="real", error_rate=0.5, seed=seed)
        with httpx.Client(headers=hdr(gw)) as client:
            for _ in range(12):
                client.post(gw.url + "/heartbeat")
        logs.append([ln for ln in gw.log_text().splitlines() if not ln.startswith(("info:", "Listening", "ZeptoClaw"))])
    assert logs[0] == logs[1] and logs[0] != logs[2] and len(logs[0]) > 1


def test_pid_file_argv_and_token_only_in_environment(sim_gateway: Any, tmp_path: Path) -> None:
    token = "tok-" + "x" * 20
    gw = sim_gateway(profile="real", token=token, pid_file=tmp_path / "gw.pid")
    assert isinstance(gw.token, Secret) and repr(gw.token) == "Secret('***')"
    assert int((tmp_path / "gw.pid").read_text()) == gw.pid
    proc = psutil.Process(gw.pid)
    cmdline = proc.cmdline()
    assert "zeptoclaw-gateway" in " ".join(cmdline) and token not in " ".join(cmdline)
    assert token not in " ".join(gw.argv) and gw.argv[:3] == [sys.executable, "-m", "zcnb.demo.server"]
    assert proc.environ()["GATEWAY_AUTH_TOKEN"] == token
    assert token not in repr(gw) and token not in json.dumps(gw.to_dict()) and token not in gw._repr_markdown_()


def test_argv_and_supervisor_env_start_the_same_gateway(sim_gateway: Any, tmp_path: Path) -> None:
    gw = sim_gateway(profile="real")
    port, argv, env = gw.port, gw.argv, gw.supervisor_env()
    gw.stop()
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", headers=hdr(gw), timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.kill()
        proc.wait()


def test_restart_keeps_port_new_pid_and_fresh_counts(sim_gateway: Any) -> None:
    gw = sim_gateway(profile="real", leak="per_request", leak_kind="unauth")
    httpx.get(gw.url + "/health")
    port, pid = gw.port, gw.pid
    old = gw.restart()
    assert old.clean and gw.port == port and gw.pid not in (None, pid)
    assert gw.ground_truth()["unauth"] == 0
    assert len(gw.leak_report_lines()) > 0  # the old process's exit report is in the (appended) log


def test_bad_options_and_failed_start_give_clear_errors(sim_gateway: Any) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        SimulatedGateway(profile="prod")
    with pytest.raises(ConfigError, match="needs leak_kind"):
        SimulatedGateway(leak="per_request")
    with pytest.raises(ConfigError, match="only applies"):
        SimulatedGateway(leak="linear", leak_kind="agent")
    with pytest.raises(ConfigError, match="negative"):
        SimulatedGateway(leak="linear", leak_rate=-1)
    busy = sim_gateway(profile="real")
    other = SimulatedGateway(profile="real", port=busy.port)
    try:
        with pytest.raises(CommandFailed, match="cannot bind") as info:
            other.start()
        assert other.token.reveal() not in str(info.value)
    finally:
        other.close()
    r = httpx.post(busy.url + "/agent", headers=hdr(busy), content=b"{not json")
    assert r.status_code == 400
    with socket.create_connection((busy.host, busy.port), timeout=5) as s:
        s.sendall(b"garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")


SCRIPT = """
import os, sys, time
from zcnb.demo import SimulatedGateway
gw = SimulatedGateway(profile="real").start()
print(gw.pid, flush=True)
if sys.argv[1] == "raise":
    raise RuntimeError("test failure inside a user script")
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["raise", "sigkill"])
def test_no_process_left_behind(how: str, tmp_path: Path) -> None:
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(SCRIPT))
    parent = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        # (with "raise" the controller's finalizer may already have stopped the child by now)
        if how == "sigkill":  # no finalizer can run: the child notices its parent is gone
            parent.kill()
        parent.wait(20)
        assert wait_exit(child, 10), "simulator outlived its controller"
    finally:
        parent.kill()
        parent.wait()


def test_cli_gateway_prints_url_and_env_name_never_the_token(tmp_path: Path) -> None:
    token = "cli-secret-" + "z" * 16
    env = {**os.environ, "GATEWAY_AUTH_TOKEN": token}
    proc = subprocess.run(
        [sys.executable, "-m", "zcnb", "gateway", "--port", "0", "--duration", "1.5", "--leak", "per_request",
         "--leak-kind", "unauth", "--traffic", "--log-file", str(tmp_path / "gw.log"),
         "--token-file", str(tmp_path / "tok")],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"at http://127\.0\.0\.1:\d+", out) and "GATEWAY_AUTH_TOKEN" in out and token not in out
    assert "clean exit" in out
    assert (tmp_path / "tok").read_text().strip() == token and stat.S_IMODE((tmp_path / "tok").stat().st_mode) == 0o600
    assert "warning(gateway): unauthorized GET /health" in (tmp_path / "gw.log").read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_gateway_stops_cleanly_on_ctrl_c_or_term(sig: int, tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    proc = subprocess.Popen([sys.executable, "-m", "zcnb", "gateway", "--port", "0", "--leak", "per_request",
                             "--leak-kind", "unauth", "--log-file", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)  # type: ignore[union-attr]
        httpx.get(url + "/health")  # one token-less probe: one leaked allocation
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=90)  # generous: the machine may be busy
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and "stopped: clean exit" in out, out
    assert log.read_text().count("error(gpa): memory address 0x") == 1
