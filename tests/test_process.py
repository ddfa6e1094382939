"""zcnb.collect.process against real child processes, real /proc and cgroup files; fake /proc trees only for cgroup layouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
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
from zcnb.exceptions import ConfigError, ProcessAccessDenied, ProcessAmbiguous, ProcessNotFound


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


def test_several_equal_matches_are_refused_with_the_list_and_the_options() -> None:
    with child("zcnb-proc-test-d") as a, child("zcnb-proc-test-d") as b, pytest.raises(ProcessAmbiguous) as err:
        find_process(pattern="zcnb-proc-test-d", exclude_children=False)
    e = err.value
    assert {c["pid"] for c in e.candidates} == {a.pid, b.pid}  # type: ignore[attr-defined]
    text = str(e)
    for pid in (a.pid, b.pid):
        assert f"pid {pid}, started 20" in text  # pid, start time (ISO), command line
    assert "zcnb-proc-test-d" in text and "--pid" in text and "--pid-file" in text and "--unit" in text
    assert "\n  pid" in e.message and "keep=[b'x'" in text  # one line per candidate, the command line flattened


def test_a_matching_child_of_a_match_is_not_a_second_candidate(tmp_path: Path) -> None:
    # a process named by the pattern that forks a helper which is also named by it: the parent is the target
    exe = _named_copy(tmp_path, "zcnb-proc-tree-" + uuid.uuid4().hex[:6], "/bin/sh")
    proc = subprocess.Popen([str(exe), "-c", f"{exe} -c 'sleep 30' & sleep 30"])
    try:
        _wait_children(proc.pid, 1)
        hit = find_process(pattern=exe.name, exclude_children=False)
        assert hit.pid == proc.pid and hit.match == "executable"
        assert any("child of another match" in p for p in hit.passed_over)
    finally:
        _kill_tree(proc)


def _named_copy(folder: Path, name: str, source: str) -> Path:
    """A copy of an executable under another name (a link when the file system allows one)."""
    dest = folder / name
    try:
        os.link(os.path.realpath(source), dest)
    except OSError:
        shutil.copy2(os.path.realpath(source), dest)
    return dest


def _wait_children(pid: int, n: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(psutil.Process(pid).children(recursive=True)) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    for c in psutil.Process(proc.pid).children(recursive=True):
        c.kill()
    proc.kill()
    proc.wait(timeout=10)


def _decoys(folder: Path, name: str, port: int) -> list[subprocess.Popen[bytes]]:
    """What ``pgrep -f NAME`` also finds: a ``tail -f`` of a file named after the gateway, a script given the
    name as an argument, and zcnb's simulator started under that name."""
    log = folder / f"{name}.log"
    log.write_text("started\n")
    script = folder / "watch.py"
    script.write_text("import sys, time\ntime.sleep(120)\n")
    procs = [subprocess.Popen(["tail", "-f", str(log)], stdout=subprocess.DEVNULL),
             subprocess.Popen([sys.executable, str(script), "--target", name, "--every", "5"]),
             subprocess.Popen([sys.executable, "-m", "zcnb.demo.server", "--name", name, "--port", str(port),
                               "--no-stderr", "--log-file", str(folder / "sim.log")], cwd=str(REPO),
                              env={**os.environ, "PYTHONPATH": str(REPO), "GATEWAY_AUTH_TOKEN": "decoy-" + name})]
    time.sleep(0.5)
    return procs


REPO = Path(__file__).resolve().parents[1]


def test_named_process_wins_over_decoys_and_a_restart_gap_never_picks_one(tmp_path: Path, free_port: int) -> None:
    name = "zcnb-gw-" + uuid.uuid4().hex[:8]
    exe = _named_copy(tmp_path, name, "/bin/sleep")
    decoys = _decoys(tmp_path, name, free_port)
    target = subprocess.Popen([str(exe), "60"])
    try:
        time.sleep(0.2)
        hit = find_process(pattern=name, exclude_children=False)
        assert hit.pid == target.pid and hit.match == "executable" and hit.exe == str(exe)
        assert hit.candidates == 4 and len(hit.passed_over) == 3
        assert all("command line only" in p for p in hit.passed_over)
        assert f"its executable is named {name!r}" in hit.describe() and f"pid {target.pid}" in hit.describe()
        assert hit.to_dict()["reason"] == hit.reason and hit.to_dict()["passed_over"] == list(hit.passed_over)
        target.kill()
        target.wait()
        # the gateway is restarting: with exe_match_only (what the sampler asks once it found a named process)
        # a decoy is never taken for the new gateway
        with pytest.raises(ProcessNotFound, match=r"no process whose executable is named .*3 other"):
            find_process(pattern=name, exclude_children=False, exe_match_only=True)
        # without it, three processes merely mention the name: refused, never a guess
        with pytest.raises(ProcessAmbiguous, match="3 processes match the pattern on their command line"):
            find_process(pattern=name, exclude_children=False)
    finally:
        for d in [*decoys, target]:
            d.kill()
            d.wait(timeout=10)


def test_argv0_names_the_process_too(tmp_path: Path) -> None:
    name = "zcnb-argv0-" + uuid.uuid4().hex[:6]
    # exec -a sets argv[0] while the executable stays /bin/sleep (a wrapper or a symlinked binary looks so)
    proc = subprocess.Popen(["bash", "-c", f"exec -a {name} sleep 30"])
    try:
        time.sleep(0.3)
        hit = find_process(pattern=name, exclude_children=False)
        assert hit.pid == proc.pid and hit.match == "argv[0]" and "argv[0] is named" in hit.reason
    finally:
        proc.kill()
        proc.wait()


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


def _zcnb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "zcnb", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=str(REPO), check=False)


def test_real_gateway_is_chosen_over_decoys_by_sample_and_preflight(real_gateway: object, tmp_path: Path,
                                                                    free_port: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from zcnb.demo.realgw import locate_real_gateway

    real = locate_real_gateway()
    assert real is not None  # the fixture skipped (or failed under CI) otherwise
    name = "zeptoclaw-gateway-" + uuid.uuid4().hex[:8]  # other real gateways may run on this host meanwhile
    gw = real_gateway(binary=_named_copy(tmp_path, name, str(real)))  # type: ignore[operator]
    decoys = _decoys(tmp_path, name, free_port)
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", gw.token.reveal())
    try:
        out = tmp_path / "s.csv"
        run = _zcnb("sample", "--pattern", name, "--interval", "0.5", "--duration", "2.5", "--out", str(out),
                    "--no-progress", "--no-verdict")
        assert run.returncode == 0, run.stderr
        assert f"process: pid {gw.pid} ({gw.binary}), found by pattern" in run.stderr
        head = [ln for ln in out.read_text().splitlines() if ln.startswith("# process:")]
        assert len(head) == 1 and f"pid {gw.pid}" in head[0] and f"its executable is named {name!r}" in head[0]
        assert "passed over 3" in head[0] and "command line only" in head[0]
        from zcnb.collect.sampling import read_samples

        df = read_samples(out)
        pids = set(df["pid"].dropna().astype(int))
        assert pids == {gw.pid} and int((df["event"] == "restart").sum()) == 0
        assert df.attrs["header"]["process"].startswith(f"pid {gw.pid}")

        run = _zcnb("preflight", "--port", str(gw.port), "--pattern", name, "--timeout", "3", "--json", "-")
        import json

        data = json.loads(run.stdout)
        assert data["process"]["pid"] == gw.pid and data["process"]["match"] == "executable"
        row = next(c for c in data["checks"] if c["name"] == "process")
        assert row["status"] == "ok" and f"pid {gw.pid}" in row["detail"] and "passed over 3" in row["detail"]
        assert data["url"] == f"http://127.0.0.1:{gw.port}"  # --port made the URL
        assert gw.token.reveal() not in run.stdout + run.stderr

        # a second real gateway under the same name: two processes are named by the pattern, refuse and list them
        gw2 = real_gateway(binary=tmp_path / name, name="second")  # type: ignore[operator]
        run = _zcnb("sample", "--pattern", name, "--duration", "1", "--out", str(tmp_path / "t.csv"), "--no-progress")
        assert run.returncode == 2
        assert f"pid {gw.pid}, started" in run.stderr and f"pid {gw2.pid}, started" in run.stderr
        assert "--pid" in run.stderr and "--pid-file" in run.stderr and "--unit" in run.stderr
        assert not (tmp_path / "t.csv").exists()
        assert gw.proc.poll() is None and gw2.proc.poll() is None
    finally:
        for d in decoys:
            d.kill()
            d.wait(timeout=10)


def test_command_lines_shown_never_carry_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tok-" + uuid.uuid4().hex
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", secret)
    name = "zcnb-secretive-" + uuid.uuid4().hex[:6]
    exe = _named_copy(tmp_path, name, "/bin/sh")
    # a process named by the pattern with the token in its argv, and a decoy passing it as a header
    target = subprocess.Popen([str(exe), "-c", "sleep 30; true", secret])
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", name, "X-Auth-Token:", secret,
                              "--api-key=abcdefgh12345678"])
    try:
        time.sleep(0.3)
        hit = find_process(pattern=name, exclude_children=False)
        shown = hit.describe() + hit.cmdline + repr(hit.to_dict())
        assert hit.pid == target.pid and secret not in shown and "abcdefgh12345678" not in shown
        assert "[REDACTED]" in shown
        _kill_tree(target)
        monkeypatch.delenv("GATEWAY_AUTH_TOKEN")  # the X-Auth-Token: rule alone still hides it
        second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", name])
        try:
            time.sleep(0.3)
            with pytest.raises(ProcessAmbiguous) as err:
                find_process(pattern=name, exclude_children=False)
            assert secret not in str(err.value) + repr(err.value.candidates)  # type: ignore[attr-defined]
        finally:
            second.kill()
            second.wait()
    finally:
        for p in (target, decoy):
            p.kill()
            p.wait()


def test_the_report_names_the_process_chosen_and_why(tmp_path: Path) -> None:
    from zcnb.collect.sampling import sample
    from zcnb.incident import open_incident
    from zcnb.report.summary import build_incident_summary
    from zcnb.stages.report import IncidentReport

    name = "zcnb-reported-" + uuid.uuid4().hex[:6]
    exe = _named_copy(tmp_path, name, "/bin/sleep")
    target = subprocess.Popen([str(exe), "30"])
    decoy = subprocess.Popen(["tail", "-f", "/dev/null", "--", name], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.2)
        inc = open_incident(tmp_path / "inc")
        sample(inc.path("samples"), pattern=name, exclude_children=False, interval_s=0.2, duration_s=0.6,
               progress=False)
        summary = build_incident_summary(inc)
        assert summary["process"].startswith(f"pid {target.pid} ({exe}), found by pattern")
        assert f"its executable is named {name!r}" in summary["process"] and "passed over 1" in summary["process"]
        inc.write_json("summary", summary)
        html = IncidentReport.load(inc.root).header()._repr_html_()
        assert f"Observed process: pid {target.pid}" in html and "command line only" in html
    finally:
        for p in (target, decoy):
            p.kill()
            p.wait()


def test_sampler_never_takes_a_decoy_for_a_restarted_gateway(tmp_path: Path) -> None:
    import threading

    from zcnb.collect.sampling import Sampler, read_samples

    name = "zcnb-gap-" + uuid.uuid4().hex[:6]
    exe = _named_copy(tmp_path, name, "/bin/sleep")
    target = subprocess.Popen([str(exe), "60"])
    decoy = subprocess.Popen(["tail", "-f", "/dev/null", "--", name], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    new: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(0.2)
        s = Sampler(tmp_path / "s.csv", query=ProcessQuery(pattern=name, exclude_children=False),
                    interval_s=0.2, duration_s=3.0, progress=False, uss_pss=False)

        def restart() -> None:  # down for ~1 s (gap rows), then up again under a new pid
            time.sleep(0.8)
            target.kill()
            target.wait()
            time.sleep(1.0)
            new.append(subprocess.Popen([str(exe), "60"]))

        threading.Thread(target=restart).start()
        summary = s.run()
        df = read_samples(tmp_path / "s.csv")
        assert decoy.pid not in set(df["pid"].dropna().astype(int))
        gaps = df[df["event"] == "gap"]
        assert len(gaps) >= 2 and all("process gone" in n or "no process whose executable is named" in n
                                      for n in gaps["note"])
        assert any("no process whose executable is named" in n for n in gaps["note"])
        assert summary.restarts == 1 and summary.pids == (target.pid, new[0].pid)
        restart_row = df[df["event"] == "restart"].iloc[0]
        assert f"pid {target.pid} -> {new[0].pid}" in restart_row["note"] and "chosen: its executable" in restart_row["note"]
    finally:
        for p in [target, decoy, *new]:
            p.kill()
            p.wait()


def test_is_the_gateway_running_answers_yes_when_several_processes_match(tmp_path: Path) -> None:
    from zcnb.state.gateway import process_running

    tag = "zcnb-run-" + uuid.uuid4().hex[:6]
    pids = tmp_path / "pids"
    # two orphans (not this test's children, which the pattern would leave out), each mentioning the tag
    cmd = f"{sys.executable} -c 'import time; time.sleep(30)' {tag}"
    subprocess.run(["sh", "-c", f"({cmd} & echo $! >> {pids}); ({cmd} & echo $! >> {pids})"], check=True)
    time.sleep(0.2)
    found = [int(x) for x in pids.read_text().split()]
    try:
        check = process_running(tag)
        assert check.running and "several processes match" in check.detail
        assert all(str(pid) in check.detail for pid in found)
    finally:
        for pid in found:
            os.kill(pid, 9)
