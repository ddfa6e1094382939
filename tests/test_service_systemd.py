"""SystemdUserBackend: command construction, parsing, timeout->kill fallback, error mapping.

The systemd outputs here are captured formats (``systemctl --user show/status``, ``journalctl -o json``) replayed
through an injected command runner, because a systemd manager or journald must never be started on these
machines (see ENVIRONMENT.md: it would move every process of the host into new cgroups). Everything else in zcnb's
service layer runs for real through the process-supervisor backend (tests/test_service_supervisor.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zcnb.exceptions import ActionTimeout, CommandFailed, PlanError, ServiceError, ServicePermissionError, UnitNotFound
from zcnb.service import SystemdUserBackend, restart_service, set_debug_logging
from zcnb.service.systemd import parse_journal_json, parse_status_text, parse_systemd_bytes, parse_systemd_timestamp

DATA = Path(__file__).parent / "data" / "systemd"
GW = "zeptoclaw-gateway.service"


def fx(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


class Runner:
    """Replays captured outputs by verb; records every argv; ``hang`` verbs raise TimeoutExpired."""

    def __init__(self, replies: dict[str, tuple[int, str, str]] | None = None, hang: Sequence[str] = ()) -> None:
        self.replies = replies or {}
        self.hang = set(hang)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        verb = argv[0] if argv[0] == "journalctl" else argv[2]
        if verb in self.hang:
            raise subprocess.TimeoutExpired(argv, timeout_s)
        rc, out, err = self.replies.get(verb, (0, "", ""))
        return subprocess.CompletedProcess(argv, rc, out, err)


def backend(runner: Runner, tmp_path: Path) -> SystemdUserBackend:
    return SystemdUserBackend(runner=runner, config_home=tmp_path / "config", health={})


def test_status_parses_show_output(tmp_path: Path) -> None:
    r = Runner({"show": (0, fx("show_gateway_active.txt"), "")})
    st = backend(r, tmp_path).status(GW)
    assert r.calls[0] == ["systemctl", "--user", "show", "-p",
                          ("MainPID,ActiveState,SubState,MemoryCurrent,MemoryMax,ActiveEnterTimestamp,NRestarts,"
                           "LoadState,FragmentPath,Result"), "--", GW]  # the unit after "--": never an option
    assert (st.active, st.pid, st.memory_bytes, st.memory_max_bytes, st.restarts) == (True, 4242, 56623104, None, 2)
    assert st.active_since == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert st.memory_source.startswith("cgroup")
    assert "4242" in st._repr_markdown_()


def test_status_without_memory_accounting_says_so(tmp_path: Path) -> None:
    st = backend(Runner({"show": (0, fx("show_gateway_noaccounting.txt"), "")}), tmp_path).status(GW)
    assert st.memory_bytes is None and st.memory_max_bytes == 512 * 1024**2
    assert any("MemoryCurrent not set" in n for n in st.notes)


def test_old_systemd_uint64_max_means_unset(tmp_path: Path) -> None:
    st = backend(Runner({"show": (0, fx("show_gateway_old_systemd.txt"), "")}), tmp_path).status(GW)
    assert st.memory_bytes is None and st.memory_max_bytes is None
    assert st.active_since == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_failed_unit_is_inactive_not_an_error(tmp_path: Path) -> None:
    st = backend(Runner({"show": (0, fx("show_failed.txt"), "")}), tmp_path).status(GW)
    assert (st.active, st.active_state, st.pid, st.restarts) == (False, "failed", None, 5)


def test_unknown_unit_load_state_not_found(tmp_path: Path) -> None:
    with pytest.raises(UnitNotFound) as ei:
        backend(Runner({"show": (0, fx("show_not_found.txt"), "")}), tmp_path).status("nosuch.service")
    assert "nosuch.service" in str(ei.value) and "list-unit-files" in str(ei.value)


@pytest.mark.parametrize("stderr_file", ["stderr_bus.txt", "stderr_access_denied.txt"])
def test_bus_and_permission_errors_map_to_permission_error(tmp_path: Path, stderr_file: str) -> None:
    r = Runner({"show": (1, "", fx(stderr_file)), "restart": (1, "", fx(stderr_file))})
    with pytest.raises(ServicePermissionError) as ei:
        backend(r, tmp_path).restart(GW)
    assert "XDG_RUNTIME_DIR" in str(ei.value)


def test_start_failure_says_what_state_was_left(tmp_path: Path) -> None:
    r = Runner({"start": (1, "", fx("stderr_start_failed.txt")), "show": (0, fx("show_failed.txt"), "")})
    with pytest.raises(CommandFailed) as ei:
        backend(r, tmp_path).start(GW)
    assert "left failed/failed" in str(ei.value)
    assert "journalctl --user -u" in str(ei.value)


def test_start_of_unknown_unit(tmp_path: Path) -> None:
    r = Runner({"start": (5, "", fx("stderr_unit_not_found.txt"))})
    with pytest.raises(UnitNotFound):
        backend(r, tmp_path).start("nosuch.service")


def test_missing_systemctl_is_a_clear_error(tmp_path: Path) -> None:
    def runner(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(argv[0])

    with pytest.raises(ServiceError) as ei:
        SystemdUserBackend(runner=runner, health={}).status(GW)
    assert "supervisor" in str(ei.value)


def test_restart_hang_falls_back_to_kill_then_start_with_warning(tmp_path: Path) -> None:
    r = Runner(hang=["restart"])
    out = backend(r, tmp_path).restart(GW, timeout_s=3)
    assert r.calls == [["systemctl", "--user", "restart", "--", GW],
                       ["systemctl", "--user", "kill", "-s", "SIGKILL", "--", GW],
                       ["systemctl", "--user", "start", "--", GW]]
    assert out.details["kill_fallback"] is True
    assert "leak report" in out.warnings[0] and "lost" in out.warnings[0]


def test_start_hang_is_an_action_timeout(tmp_path: Path) -> None:
    with pytest.raises(ActionTimeout):
        backend(Runner(hang=["start"]), tmp_path).start(GW, timeout_s=1)


def test_restart_action_dry_run_then_execute(tmp_path: Path) -> None:
    r = Runner({"show": (0, fx("show_gateway_active.txt"), "")})
    m = backend(r, tmp_path)
    dry = restart_service(m, unit=GW)
    assert dry.dry_run and dry.outcome == "planned" and dry.plan_id
    assert f"systemctl --user restart -- {GW}" in dry.commands
    assert not any(c[2] == "restart" for c in r.calls)  # nothing ran
    with pytest.raises(PlanError):
        restart_service(m, unit=GW, execute=True, confirm="wrong")
    done = restart_service(m, unit=GW, execute=True, confirm=dry.plan_id)
    assert done.outcome == "ok" and done.commands == (f"systemctl --user restart -- {GW}",)


def test_full_restart_order_and_wait(tmp_path: Path) -> None:
    r = Runner({"show": (0, fx("show_gateway_active.txt"), "")})
    m = SystemdUserBackend(runner=r, config_home=tmp_path, health={},
                           units=(GW, "zeptoclaw-webhook.service", "zeptoclaw-shell2http.service"))
    plan = restart_service(m, full=True, wait_s=0).plan_id
    res = restart_service(m, full=True, wait_s=0, execute=True, confirm=plan)
    verbs = [(c[2], c[4]) for c in r.calls if c[2] in ("stop", "start")]
    assert verbs == [("stop", "zeptoclaw-shell2http.service"), ("stop", "zeptoclaw-webhook.service"), ("stop", GW),
                     ("start", GW), ("start", "zeptoclaw-webhook.service"), ("start", "zeptoclaw-shell2http.service")]
    assert res.outcome == "ok"


def test_debug_dropin_written_reloaded_and_checked(tmp_path: Path) -> None:
    journal = fx("journal_gateway.json")
    r = Runner({"journalctl": (0, journal, ""), "show": (0, fx("show_gateway_active.txt"), "")})
    m = backend(r, tmp_path)
    path = tmp_path / "config" / "systemd" / "user" / f"{GW}.d" / "zcnb-debug.conf"
    path.parent.mkdir(parents=True)
    path.write_text("# an older file of the same name\n")
    plan = set_debug_logging(m, unit=GW, enable=True, window_s=0).plan_id
    res = set_debug_logging(m, unit=GW, enable=True, execute=True, confirm=plan, window_s=0)
    assert 'Environment="LOG_LEVEL=debug"' in path.read_text() and "[Service]" in path.read_text()
    kept = list(path.parent.glob("zcnb-debug.conf.bak-*"))
    assert len(kept) == 1 and kept[0].read_text() == "# an older file of the same name\n"
    assert ["systemctl", "--user", "daemon-reload"] in r.calls
    jcall = next(c for c in r.calls if c[0] == "journalctl")
    assert f"_SYSTEMD_USER_UNIT={GW}" in jcall and "--since" in jcall and "-o" in jcall
    assert res.details["debug_lines_seen"] == 2 and "Debug lines appeared" in res.message
    off = set_debug_logging(m, unit=GW, enable=False)
    set_debug_logging(m, unit=GW, enable=False, execute=True, confirm=off.plan_id)
    assert not path.exists() and list(path.parent.glob("zcnb-debug.conf.removed-*"))


def test_debug_dropin_ignored_says_so(tmp_path: Path) -> None:
    r = Runner({"journalctl": (0, "", ""), "show": (0, fx("show_gateway_active.txt"), "")})
    m = backend(r, tmp_path)
    plan = set_debug_logging(m, unit=GW, window_s=0.3).plan_id
    res = set_debug_logging(m, unit=GW, execute=True, confirm=plan, window_s=0.3)
    assert res.details["debug_lines_seen"] == 0 and "ignores LOG_LEVEL" in res.message


def test_parse_status_text_and_redaction() -> None:
    st = parse_status_text(fx("status_gateway_active.txt"))
    assert st["main_pid"] == 4242 and st["memory_bytes"] == int(54.0 * 1024**2) and st["loaded"] == "loaded"
    assert st["active"].startswith("active (running)") and len(st["log_lines"]) == 3
    r = Runner({"status": (3, fx("status_gateway_inactive.txt"), "")})
    text = SystemdUserBackend(runner=r, health={}).status_text(GW)  # exit 3 = inactive: not an error
    assert "inactive (dead)" in text
    r2 = Runner({"status": (0, fx("status_gateway_active.txt"), "")})
    assert "zc_live_5f2a9c1e7b" not in SystemdUserBackend(runner=r2, health={}).status_text(GW)


def test_parse_journal_json_bytes_message_cut_line_and_token() -> None:
    entries = parse_journal_json(fx("journal_gateway.json"))
    assert len(entries) == 8  # the cut last line is skipped
    assert entries[0]["time"] == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert entries[5]["message"].startswith("warning: [memory] bad byte")
    assert all("zc_live_5f2a9c1e7b" not in e["message"] for e in entries)
    assert entries[1]["message"] == "Main Token: ***"


@pytest.mark.parametrize("text,expected", [("[not set]", None), ("infinity", None), ("", None),
                                           ("18446744073709551615", None), ("1048576", 1048576), ("junk", None)])
def test_parse_systemd_bytes(text: str, expected: int | None) -> None:
    assert parse_systemd_bytes(text) == expected


def test_parse_systemd_timestamp_forms() -> None:
    assert parse_systemd_timestamp("n/a") is None and parse_systemd_timestamp("") is None
    local = parse_systemd_timestamp("Sat 2026-11-28 10:00:00 CET")
    assert local is not None and local.tzinfo is not None


def test_status_names_an_oom_kill_result(tmp_path: Path) -> None:
    """systemd's Result=oom-kill (captured `show` format) becomes a note naming the OOM kill."""
    text = fx("show_gateway_active.txt") + "Result=oom-kill\n"
    st = backend(Runner({"show": (0, text, "")}), tmp_path).status(GW)
    assert any("OOM kill (Result=oom-kill)" in n for n in st.notes), st.notes
    plain = backend(Runner({"show": (0, fx("show_gateway_active.txt") + "Result=success\n", "")}), tmp_path).status(GW)
    assert not any("OOM" in n or "last result" in n for n in plain.notes)
    other = backend(Runner({"show": (0, fx("show_gateway_active.txt") + "Result=exit-code\n", "")}), tmp_path)
    assert "last result: exit-code" in other.status(GW).notes
