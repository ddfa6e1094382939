"""zcnb.collect.process against real child processes, real /proc and cgroup files; fake /proc trees only for cgroup layouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from collection_helpers import child

from zcnb.collect.process import (
    ProcessQuery,
    find_by_query,
    find_process,
    read_cgroup_memory,
    read_memory,
    unit_main_pid,
)
from zcnb.exceptions import ConfigError, ProcessAccessDenied, ProcessNotFound


def test_find_by_pid_and_read_memory() -> None:
    with child("zcnb-proc-test-a", alloc_mb=30) as c:
        info = find_process(pid=c.pid)
        assert info.pid == c.pid and info.found_by == "pid" and "zcnb-proc-test-a" in info.cmdline
        m = read_memory(c.pid)
        assert m.rss_bytes >= 25 * 2**20 and m.vms_bytes >= m.rss_bytes
        assert m.uss_bytes is not None and m.uss_bytes >= 20 * 2**20
        # PSS is readable here (root); when it is not, the reading says so in notes instead
        assert m.pss_bytes is not None or any("PSS" in n for n in m.notes)
        assert "RSS" in m._repr_markdown_() and m.to_dict()["pid"] == c.pid


def test_pid_file(tmp_path: Path) -> None:
    pf = tmp_path / "gw.pid"
    with child("zcnb-proc-test-b") as c:
        pf.write_text(f"{c.pid}\n")
        assert find_process(pid_file=pf).pid == c.pid
    with pytest.raises(ProcessNotFound, match="does not exist"):
        find_process(pid_file=tmp_path / "missing.pid")
    pf.write_text("starting...\n")
    with pytest.raises(ProcessNotFound, match="does not hold a pid"):
        find_process(pid_file=pf)


def test_pattern_finds_child_only_when_children_allowed() -> None:
    with child("zcnb-proc-test-c") as c:
        assert find_process(pattern=r"zcnb-proc-test-[c]", exclude_children=False).pid == c.pid
        # by default zcnb's own children (helper tools) are never the target
        with pytest.raises(ProcessNotFound, match="excluded"):
            find_process(pattern=r"zcnb-proc-test-c")


def test_pattern_never_matches_self_parents_or_pytest() -> None:
    # this process and the shell/timeout that started it all carry "test_process.py" on their command line
    with pytest.raises(ProcessNotFound):
        find_process(pattern=r"tests/test_process\.py", exclude_children=False)
    # a process running pytest (any user's test run) is never the gateway, even when the pattern fits
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "pytest", "zcnb-self-marker"])
    try:
        time.sleep(0.3)
        with pytest.raises(ProcessNotFound):
            find_process(pattern="zcnb-self-marker", exclude_children=False)
    finally:
        proc.kill()
        proc.wait()


def test_pattern_prefers_the_root_of_matching_tree() -> None:
    with child("zcnb-proc-test-d") as a, child("zcnb-proc-test-d") as b:
        hit = find_process(pattern="zcnb-proc-test-d", exclude_children=False)
        assert hit.pid == min((a, b), key=lambda p: psutil.Process(p.pid).create_time()).pid
        assert hit.candidates == 2


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="regular expression"):
        find_process(pattern="([unclosed")
    with pytest.raises(ConfigError):
        find_process(pid=0)
    with pytest.raises(ConfigError, match="no way"):
        find_process()


def test_gone_process_is_not_found() -> None:
    with child("zcnb-proc-test-e") as c:
        pid = c.pid
        proc = psutil.Process(pid)
    with pytest.raises(ProcessNotFound, match="gone"):
        read_memory(pid, process=proc)
    with pytest.raises(ProcessNotFound):
        find_process(pid=pid)


def test_unit_main_pid_without_systemd_says_what_to_do() -> None:
    """Real systemctl: this machine has no user manager (never started here), so the lookup must fail cleanly."""
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl not installed")
    with pytest.raises(ProcessNotFound) as err:
        unit_main_pid("zeptoclaw-gateway.service", timeout_s=10)
    assert "--pid" in str(err.value)
    with pytest.raises(ProcessNotFound):
        find_by_query(ProcessQuery(unit="zeptoclaw-gateway.service"))


class _DeniedProcess:
    """Mock: root can read every /proc entry here, so AccessDenied can only be simulated."""

    pid = 1

    def memory_full_info(self) -> None:
        raise psutil.AccessDenied(1)

    def memory_info(self) -> None:
        raise psutil.AccessDenied(1)


class _NoSmapsProcess(_DeniedProcess):
    """Mock: smaps unreadable but statm readable (another user's process without ptrace rights)."""

    def memory_info(self) -> object:
        return psutil.Process().memory_info()


def test_access_denied() -> None:
    with pytest.raises(ProcessAccessDenied, match="access denied"):
        read_memory(1, process=_DeniedProcess(), cgroup=False)  # type: ignore[arg-type]
    m = read_memory(1, process=_NoSmapsProcess(), cgroup=False)  # type: ignore[arg-type]
    assert m.uss_bytes is None and m.pss_bytes is None and any("USS/PSS not readable" in n for n in m.notes)


def _fake(tmp_path: Path, cgroup_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(cgroup_line)
    for rel, value in files.items():
        (cg / rel).parent.mkdir(parents=True, exist_ok=True)
        (cg / rel).write_text(value)
    return proc, cg


def test_cgroup_v2_v1_and_root(tmp_path: Path) -> None:
    proc, cg = _fake(tmp_path / "v2", "0::/user.slice/gw.service\n", {"user.slice/gw.service/memory.current": "123\n"})
    assert read_cgroup_memory(42, cgroup_root=cg, proc_root=proc) == (123, "/user.slice/gw.service", None)
    proc, cg = _fake(tmp_path / "v1", "4:memory:/gw\n0::/\n", {"memory/gw/memory.usage_in_bytes": "456"})
    assert read_cgroup_memory(42, cgroup_root=cg, proc_root=proc)[0] == 456
    proc, cg = _fake(tmp_path / "root", "0::/\n", {})
    value, _path, note = read_cgroup_memory(42, cgroup_root=cg, proc_root=proc)
    assert value is None and "root cgroup" in (note or "")
    proc, cg = _fake(tmp_path / "unreadable", "0::/x\n", {})
    assert "not readable" in (read_cgroup_memory(42, cgroup_root=cg, proc_root=proc)[2] or "")


def test_cgroup_of_real_process_matches_proc() -> None:
    value, path, note = read_cgroup_memory(os.getpid())
    if value is None:
        pytest.skip(f"no readable memory cgroup here: {note}")
    assert value > 0 and path
