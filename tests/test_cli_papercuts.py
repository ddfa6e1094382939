"""Command-line paper cuts: no token-less /health probe, sample's first-tick check, --out into a missing folder,
readable escalate, descriptions in --help, the restart dry run on a host without a user manager.

Real subprocesses of ``python -m zcnb`` against a real loopback HTTP server that counts what it receives.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zcnb.service.systemd import user_manager_reachable


def _zcnb(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "GATEWAY_AUTH_TOKEN"}
    return subprocess.run([sys.executable, "-m", "zcnb", *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})}, check=False)


class _Health(http.server.BaseHTTPRequestHandler):
    seen: list[str | None]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("X-Auth-Token"))
        body = b'{"status": "healthy"}' if self.headers.get("X-Auth-Token") == "tok-123" else \
            b'{"error": "Missing X-Auth-Token header"}'
        self.send_response(200 if self.headers.get("X-Auth-Token") == "tok-123" else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Health,), {"seen": seen}))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/health", seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_health_without_a_token_sends_nothing(health_server: tuple[str, list[str | None]]) -> None:
    url, seen = health_server
    proc = _zcnb("health", "--url", url, "--timeout", "2")
    assert proc.returncode == 1 and proc.stdout.startswith("not_probed:"), proc.stdout + proc.stderr
    assert "warning: no gateway token" in proc.stderr and "--probe-unauth" in proc.stderr
    assert seen == [], "a token-less request was sent (it leaks memory on the real gateway)"
    opted = _zcnb("health", "--url", url, "--timeout", "2", "--probe-unauth")
    assert seen and seen[0] is None and "unauthorized" in opted.stdout, "the control: --probe-unauth does probe"
    seen.clear()
    ok = _zcnb("health", "--url", url, "--timeout", "2", env={"GATEWAY_AUTH_TOKEN": "tok-123"})
    assert ok.returncode == 0 and seen == ["tok-123"], ok.stdout + ok.stderr


def test_sample_fails_at_once_when_the_pattern_matches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    t0 = time.monotonic()
    proc = _zcnb("sample", "--pattern", "no-such-gateway-zq81x", "--out", str(out), "--no-progress")
    assert proc.returncode == 2 and time.monotonic() - t0 < 30
    assert "nothing to sample" in proc.stderr and "--wait-for" in proc.stderr
    assert not out.exists(), "nothing may be written for a target that does not exist"


def test_sample_wait_for_picks_up_a_gateway_that_starts_later(tmp_path: Path) -> None:
    marker = f"zcnb-late-target-{os.getpid()}"
    late = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(1.5); import os; "
                             f"os.execv({sys.executable!r}, [{sys.executable!r}, '-c', 'import time; time.sleep(30)', "
                             f"{marker!r}])"])
    try:
        proc = _zcnb("sample", "--pattern", marker, "--wait-for", "20", "--interval", "0.5", "--duration", "2",
                     "--out", str(tmp_path / "m.csv"), "--no-progress", "--no-verdict")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "samples" in proc.stdout and not proc.stdout.startswith("wrote " + str(tmp_path / "m.csv") + ": 0")
    finally:
        late.kill()
        late.wait()


def test_out_into_a_missing_folder_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    proc = _zcnb("sample", "--pid", str(os.getpid()), "--out", str(missing / "m.csv"), "--duration", "1")
    assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "nonexistent").exists()
    pdf = _zcnb("pdf", str(tmp_path), "--out", str(missing / "r.pdf"))
    assert pdf.returncode == 2 and not (tmp_path / "nonexistent").exists()


def test_escalate_prints_plain_text(tmp_path: Path) -> None:
    a = tmp_path / "assessment.json"
    a.write_text(json.dumps({"verdict": "leak", "severity": "low", "growth_bytes_per_hour": 2**20,
                             "limit_bytes": 2**31, "current_bytes": 2**27, "time_to_limit_s": 30 * 86400}))
    proc = _zcnb("escalate", "--assessment", str(a))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Escalation: SCHEDULE RESTARTS")
    for markdown in ("###", "**", "|---", "```", "`"):
        assert markdown not in proc.stdout, f"raw Markdown {markdown!r} in the text output"
    assert "OnUnitActiveSec=" in proc.stdout and "systemctl --user enable --now" in proc.stdout


@pytest.mark.parametrize(("command", "words"), [
    ("status", "Changes nothing"), ("restart", "Runbook step 2"), ("health", "not_probed"),
    ("rollback", "Rollback"), ("escalate", "When to Escalate"), ("debug-logging", "LOG_LEVEL=debug"),
])
def test_service_commands_describe_themselves_in_help(command: str, words: str) -> None:
    proc = _zcnb(command, "--help")
    assert proc.returncode == 0
    description = proc.stdout.split("\n\n")[1]
    assert words in " ".join(description.split()), description


def test_restart_dry_run_warns_when_no_user_manager_is_reachable(tmp_path: Path) -> None:
    proc = _zcnb("restart", env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert "systemctl --user restart" in proc.stdout
    assert "no systemd user manager is reachable" in proc.stderr and str(tmp_path) in proc.stderr


def test_user_manager_check_looks_for_its_socket(tmp_path: Path) -> None:
    """Files only (no systemd is started): a private socket in the runtime dir means a manager listens."""
    ok, why = user_manager_reachable(str(tmp_path))
    assert not ok and "systemd/private" in why
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemd" / "private").write_text("not a socket")
    assert not user_manager_reachable(str(tmp_path))[0]
    (tmp_path / "systemd" / "private").unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(tmp_path / "systemd" / "private"))
        assert user_manager_reachable(str(tmp_path)) == (True, "")
