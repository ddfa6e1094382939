"""Restart of the real ZeptoClaw binary through the process-supervisor backend (REAL-GATEWAY.md).

A plain SIGTERM stop cannot stop it (it looks at SIGTERM only when accept() fails): the restart result says so,
how long it waited, that the leak report is lost, and names the clean alternative. With stop_method "clean" the
old process exits by itself and prints its leak report. Health waits send the token (a token-less probe would
be answered 401 and leak).
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import pytest

from zcnb.config import Secret
from zcnb.service import ProcessSupervisorBackend, plan_restart, restart_service

pytestmark = pytest.mark.slow
UNIT = "zeptoclaw-gateway.service"


@pytest.fixture
def real_binary(real_gateway: Any) -> Path:
    from zcnb.demo.realgw import locate_real_gateway

    exe = locate_real_gateway()
    assert exe is not None  # the real_gateway fixture skipped / failed already otherwise
    return exe


def _manager(binary: Path, tmp_path: Path, stop_method: str) -> tuple[ProcessSupervisorBackend, Secret, Any]:
    from zcnb.demo.realgw import real_gateway_service

    token = Secret(secrets.token_hex(16))
    svc = real_gateway_service(UNIT, binary, run_dir=tmp_path, token=token, stop_method=stop_method)
    return ProcessSupervisorBackend([svc], run_dir=tmp_path), token, svc


def _tokenless(url: str) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n")
        while s.recv(4096):
            pass


def test_restart_with_sigterm_says_it_was_ignored_and_the_report_lost(real_binary: Path, tmp_path: Path) -> None:
    m, token, svc = _manager(real_binary, tmp_path, "term")
    try:
        m.start(UNIT)
        old = m.pid(UNIT)
        _tokenless(svc.health.url)
        plan = plan_restart(m, unit=UNIT, timeout_s=3, health_timeout_s=20)
        res = restart_service(m, unit=UNIT, execute=True, confirm=plan.plan_id, token=token, timeout_s=3,
                              health_timeout_s=20)
        msg = res.message
        assert "did not exit on SIGTERM: waited 3.0 s" in msg and "leak report is lost" in msg, msg
        assert "zcnb leaks capture --pid" in msg and "stop_method 'clean'" in msg
        assert res.details["sigterm_ignored"] and res.details["report_lost"]
        assert res.details["clean_alternative"].startswith(f"zcnb leaks capture --pid {old} --port")
        assert f"kill -KILL {old}" in res.commands
        assert res.outcome == "ok" and res.health_after and res.health_after.startswith("healthy"), res
        assert m.pid(UNIT) not in (None, old)
        assert "leaked:" not in svc.log_file.read_text()  # SIGKILL: no report
        assert token.reveal() not in str(res.to_dict())
        print(f"\nrestart (term) on the real binary: {msg[:160]}...")
    finally:
        m.close()


def test_restart_with_the_clean_stop_gets_the_report(real_binary: Path, tmp_path: Path) -> None:
    m, token, svc = _manager(real_binary, tmp_path, "clean")
    try:
        m.start(UNIT)
        old = m.pid(UNIT)
        _tokenless(svc.health.url)
        plan = plan_restart(m, unit=UNIT, timeout_s=30, health_timeout_s=20)
        assert any("pidfd_getfd" in s for s in plan.steps)
        res = restart_service(m, unit=UNIT, execute=True, confirm=plan.plan_id, token=token, timeout_s=30,
                              health_timeout_s=20)
        assert res.outcome == "ok" and not res.details.get("sigterm_ignored"), res.message
        assert res.details["clean_stop"]["method"] == "shutdown-socket" and res.details["report_lost"] is False
        assert res.health_after and res.health_after.startswith("healthy")
        assert m.pid(UNIT) not in (None, old)
        log = svc.log_file.read_text()
        assert "error(DebugAllocator): memory address" in log and "parseRequest" in log
        print(f"\nrestart (clean) on the real binary: waited {res.details['waited_s']} s")
    finally:
        m.close()
