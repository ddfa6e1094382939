"""ProcessSupervisorBackend driving the real simulated gateway (real processes, real HTTP on 127.0.0.1).

Nothing is mocked here: each test starts ``python -m zcnb.demo.server`` under the supervisor in tmp_path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from zcnb.actions import read_actions
from zcnb.config import Secret
from zcnb.exceptions import CommandFailed, ConfigError, UnitNotFound
from zcnb.ops.demo_target import simulator_service
from zcnb.service import ProcessSupervisorBackend, SupervisedService, plan_restart, restart_service, set_debug_logging

TOKEN = Secret("test-token-supervisor-0123456789")
GW, WH = "zeptoclaw-gateway.service", "zeptoclaw-webhook.service"


def make(tmp_path: Path, *, units: tuple[str, ...] = (GW,), **kw: Any) -> ProcessSupervisorBackend:
    services = [simulator_service(u, run_dir=tmp_path, token=TOKEN, **kw) for u in units]
    return ProcessSupervisorBackend(services, run_dir=tmp_path)


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[ProcessSupervisorBackend]:
    m = make(tmp_path)
    yield m
    m.close()


def test_start_status_stop(sup: ProcessSupervisorBackend) -> None:
    out = sup.start(GW)
    st = sup.status(GW)
    assert st.active and st.pid == out.details["pid"] and psutil.pid_exists(st.pid)
    assert st.memory_bytes and st.memory_bytes > 1_000_000 and st.memory_source == "psutil rss"
    assert int(sup.service(GW).pid_file.read_text()) == st.pid
    again = sup.start(GW)
    assert "already running" in again.warnings[0]
    stop = sup.stop(GW, timeout_s=10)
    assert stop.warnings == ()  # real profile exits on SIGTERM once a connection wakes its accept loop
    assert not sup.status(GW).active and not sup.service(GW).pid_file.exists()
    assert "Main Token: ***" in "\n".join(sup.log_lines(GW, lines=50))
    assert TOKEN.reveal() not in "\n".join(sup.log_lines(GW, lines=50))


def test_restart_action_changes_pid_and_is_healthy(sup: ProcessSupervisorBackend, tmp_path: Path) -> None:
    sup.start(GW)
    old = sup.status(GW).pid
    inc = tmp_path / "incident"
    dry = restart_service(sup, unit=GW, token=TOKEN, incident=inc)
    assert dry.outcome == "planned" and sup.status(GW).pid == old
    res = restart_service(sup, unit=GW, token=TOKEN, execute=True, confirm=dry.plan_id, incident=inc)
    assert res.outcome == "ok", res.message
    assert sup.status(GW).pid not in (None, old)
    assert res.health_before and res.health_before.startswith("healthy")
    assert res.health_after and res.health_after.startswith("healthy")
    assert res.duration_s is not None and res.duration_s > 0
    recorded = read_actions(inc / "actions.jsonl")
    assert [r.dry_run for r in recorded] == [True, False]
    assert TOKEN.reveal() not in (inc / "actions.jsonl").read_text()


@pytest.mark.slow
def test_stop_that_hangs_falls_back_to_sigkill(tmp_path: Path) -> None:
    m = make(tmp_path, ignore_sigterm=True)
    try:
        m.start(GW)
        pid = m.status(GW).pid
        out = m.stop(GW, timeout_s=1.5)
        assert f"kill -KILL {pid}" in out.commands
        assert "SIGKILL" in out.warnings[0] and "leak report is lost" in out.warnings[0]
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        m.close()


@pytest.mark.slow
def test_full_restart_stops_reverse_starts_in_order_with_health(tmp_path: Path) -> None:
    m = make(tmp_path, units=(GW, WH))
    try:
        m.start(GW)
        m.start(WH)
        plan = plan_restart(m, full=True, wait_s=0.2, order=[GW, WH])
        assert plan.steps[0].startswith(f"kill -TERM $(cat {tmp_path / WH}")
        res = restart_service(m, full=True, wait_s=0.2, order=[GW, WH], token=TOKEN, execute=True, confirm=plan.plan_id)
        assert res.outcome == "ok", res.message
        gw_start = next(i for i, c in enumerate(res.commands) if f"--name {GW.removesuffix('.service')}" in c)
        wh_start = next(i for i, c in enumerate(res.commands) if f"--name {WH.removesuffix('.service')}" in c)
        stops = [c for c in res.commands if c.startswith("kill -TERM")]
        assert len(stops) == 2 and gw_start < wh_start and res.commands.index(stops[1]) < gw_start
        assert set(res.details["health"]) == {GW, WH}
        assert all(h["state"] == "healthy" for h in res.details["health"].values())
        gw_since, wh_since = m.status(GW).active_since, m.status(WH).active_since
        assert gw_since is not None and wh_since is not None and gw_since <= wh_since
    finally:
        m.close()


def test_start_command_that_fails_at_once(tmp_path: Path) -> None:
    svc = SupervisedService("bad", (sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"),
                            tmp_path / "bad.pid", tmp_path / "bad.log")
    m = ProcessSupervisorBackend([svc], run_dir=tmp_path)
    with pytest.raises(CommandFailed) as ei:
        m.start("bad")
    assert "code 3" in str(ei.value) and "boom" in str(ei.value) and "left stopped" in str(ei.value)
    assert not svc.pid_file.exists()


def test_start_command_missing_binary(tmp_path: Path) -> None:
    svc = SupervisedService("gone", (str(tmp_path / "no-such-binary"),), tmp_path / "g.pid", tmp_path / "g.log")
    with pytest.raises(CommandFailed) as ei:
        ProcessSupervisorBackend([svc], run_dir=tmp_path).start("gone")
    assert "no-such-binary" in str(ei.value)


def test_unknown_unit_and_bad_config(tmp_path: Path) -> None:
    svc = SupervisedService("a", (sys.executable,), tmp_path / "a.pid", tmp_path / "a.log")
    m = ProcessSupervisorBackend([svc], run_dir=tmp_path)
    with pytest.raises(UnitNotFound):
        m.status("zeptoclaw-nope.service")
    with pytest.raises(ConfigError):
        ProcessSupervisorBackend([svc, svc], run_dir=tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"services": [{"name": "x", "argv": "echo hi", "pid_file": "p", "log_file": "l"}]}')
    with pytest.raises(ConfigError, match="argv must be a non-empty list"):
        ProcessSupervisorBackend.from_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        ProcessSupervisorBackend.from_file(tmp_path / "missing.json")


def test_stale_pid_file_is_reported_not_signalled(tmp_path: Path) -> None:
    svc = SupervisedService("a", (sys.executable,), tmp_path / "a.pid", tmp_path / "a.log")
    proc = psutil.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    svc.pid_file.write_text(f"{proc.pid}\n")
    st = ProcessSupervisorBackend([svc], run_dir=tmp_path).status("a")
    assert st.active_state == "failed" and "stale pid file" in st.notes[0]


def test_file_roundtrip_keeps_token_out(tmp_path: Path) -> None:
    m = make(tmp_path)
    path = m.to_file(tmp_path / "services.json")
    text = path.read_text()
    assert TOKEN.reveal() not in text and oct(path.stat().st_mode & 0o777) == "0o600"
    back = ProcessSupervisorBackend.from_file(path)
    assert back.units == (GW,) and back.service(GW).argv == m.service(GW).argv
    assert json.loads(text)["services"][0]["health"]["needs_token"] is True


@pytest.mark.slow
@pytest.mark.parametrize("profile,honoured", [("runbook", True), ("real", False)])
def test_debug_logging_checks_whether_debug_lines_appear(tmp_path: Path, profile: str, honoured: bool) -> None:
    m = make(tmp_path, profile=profile)
    try:
        m.start(GW)
        plan = set_debug_logging(m, unit=GW, window_s=3).plan_id
        res = set_debug_logging(m, unit=GW, window_s=3, execute=True, confirm=plan, token=TOKEN)
        assert res.outcome == "ok", res.message
        assert (res.details["debug_lines_seen"] > 0) is honoured
        assert ("ignores LOG_LEVEL" in res.message) is (not honoured)
        off = set_debug_logging(m, unit=GW, enable=False).plan_id
        set_debug_logging(m, unit=GW, enable=False, execute=True, confirm=off, token=TOKEN)
        assert not m.env_dropin_path(GW).exists()
    finally:
        m.close()


@pytest.mark.slow
def test_cli_status_restart_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN.reveal())  # the services file never holds the token
    m = make(tmp_path)
    seen: list[str] = []

    def read() -> tuple[str, str]:
        cap = capsys.readouterr()
        seen.extend([cap.out, cap.err])
        return cap.out, cap.err

    try:
        m.start(GW)
        f = str(m.to_file(tmp_path / "services.json"))
        base = ["--backend", "supervisor", "--supervisor-file", f]
        assert main(["status", *base]) == 0
        out = read()[0]
        assert "active" in out and "psutil rss" in out and "health of zeptoclaw-gateway.service: healthy" in out
        assert main(["restart", *base]) == 0
        out = read()[0]
        plan_id = out.split("(plan ")[1].split(")")[0]
        assert "DRY RUN" in out and f"--execute --confirm {plan_id}" in out
        assert main(["restart", *base, "--execute", "--confirm", "bad"]) == 2
        assert "does not match" in read()[1]
        old = m.status(GW).pid
        assert main(["restart", *base, "--execute", "--confirm", plan_id, "--json"]) == 0
        res = json.loads(read()[0])
        assert res["outcome"] == "ok" and m.status(GW).pid != old
        health = m.service(GW).health
        assert health is not None
        url = health.url
        assert main(["health", "--url", url, "--timeout", "5"]) == 0
        assert main(["health", "--url", url, "--timeout", "5", "--token-env", "NO_SUCH_VAR_ZCNB"]) == 1
        assert "not_probed" in read()[0]  # without a token nothing is sent (it would leak on the real gateway)
        read()
        assert seen and TOKEN.reveal() not in "".join(seen)
    finally:
        m.close()


@pytest.mark.slow
def test_stage02_live_restart_then_watch(tmp_path: Path) -> None:
    """Stage 02 end to end on the simulator: status, planned + applied restart, live post-restart sampling."""
    from zcnb.incident import open_incident
    from zcnb.stages import mitigate

    t = mitigate.target()
    try:
        inc = open_incident(tmp_path / "inc")
        st = mitigate.status(t)
        assert st.health is not None and st.health.healthy and len(st.statuses) == 2
        plan = mitigate.restart(t, inc)
        assert plan.plan_id is not None
        res = mitigate.restart(t, inc, execute=True, confirm=plan.plan_id)
        assert res.outcome == "ok", res.message
        chk = mitigate.after_restart(t, inc, res, live=True, watch_s=3.0, interval_s=0.1)
        assert chk.n_samples >= 10 and (tmp_path / "inc" / "samples-after-restart.csv").exists()
        assert chk.verdict in ("inconclusive", "leak", "no_leak") and chk.log_lines
        assert "Main Token: ***" in "\n".join(chk.log_lines)
        skipped = mitigate.debug_logging(t, inc)
        assert isinstance(skipped, str) and skipped.startswith("debug logging: skipped")
    finally:
        t.demo.close()


def _unauth_count(m: ProcessSupervisorBackend) -> int:
    import httpx

    hc = m.health_check(GW)
    assert hc is not None
    r = httpx.get(hc.url.rsplit("/health", 1)[0] + "/__ground_truth", headers={"X-Auth-Token": TOKEN.reveal()},
                  timeout=10.0, trust_env=False)
    return int(r.json()["unauth"])


def test_restart_without_a_token_sends_no_token_less_probe(sup: ProcessSupervisorBackend, tmp_path: Path) -> None:
    """On the real gateway every token-less request leaks: with no token, health is not probed, and says so."""
    sup.start(GW)
    dry = restart_service(sup, unit=GW, token=None, incident=tmp_path / "inc")
    assert dry.health_before and dry.health_before.startswith("not_probed")
    res = restart_service(sup, unit=GW, token=None, execute=True, confirm=dry.plan_id, incident=tmp_path / "inc")
    assert res.outcome == "ok" and "health not verified" in res.message, res.message
    assert _unauth_count(sup) == 0, "the simulator counted token-less requests"
    # control: with the token, health is probed and healthy
    again = restart_service(sup, unit=GW, token=TOKEN, incident=tmp_path / "inc")
    assert again.health_before and again.health_before.startswith("healthy")


@pytest.mark.slow
def test_stage02_after_restart_feeds_the_escalation(tmp_path: Path) -> None:
    """Stage 02's post-restart verdict (bundled sample: the leak goes on after its restart) reaches stage 06."""
    import shutil

    from zcnb.incident import bundled_sample_dir, open_incident
    from zcnb.stages import escalate, mitigate

    inc = open_incident(tmp_path / "inc")
    shutil.copy(bundled_sample_dir() / "samples.csv", inc.path("samples"))
    t = mitigate.target()
    try:
        res = mitigate.restart(t, inc)
        chk = mitigate.after_restart(t, inc, res)
        assert chk.verdict == "leak" and inc.read_json("after_restart")["verdict"] == "leak"
        assert len(chk.log_lines) <= 50
        d = escalate.decision_for_incident(inc)
        assert d.persisted_after_restart is True
        told = escalate.decision_for_incident(inc, persisted_after_restart="no")
        assert told.persisted_after_restart is False, "an explicit answer wins"
        # the drop-in has its own plan id: execute without it shows the plan instead of failing
        plan = mitigate.debug_logging(t, inc, state="on", execute=True, confirm="")
        assert not isinstance(plan, str) and plan.dry_run and plan.plan_id
    finally:
        t.demo.close()
