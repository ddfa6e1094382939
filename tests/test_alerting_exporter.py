"""``zcnb exporter``: gateway targets, incremental log counting, process series, exposition, the CLI.

Real parts: processes read through /proc, real journal files written by systemd-journal-remote and followed by
``journalctl -f``, log files appended while the exporter reads them, ``promtool check metrics`` on the
exposition, and the real gateway binary crashing at its 101st request.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from alerting_helpers import real_gateway, wait_until, zcnb_server
from zcnb.collect.process import read_cgroup_limit
from zcnb.monitor.exporter import Exporter, ExporterOptions, GatewayCollector, GatewayWatch
from zcnb.monitor.logcount import FileTail, JournalFollower, LogCounts
from zcnb.monitor.targets import parse_target, parse_targets
from zcnb.exceptions import ConfigError
from zcnb.logs.journal import JOURNAL_REMOTE, write_journal
from zcnb.logs import summarize_logs

ROOT = Path(__file__).resolve().parent.parent
UNIT = "zeptoclaw-gateway.service"
SKILL_TOOL = 'info: [agent] tool skill args={"name":"git_workflow","command":"/git-status"}'
LINES = [
    SKILL_TOOL,
    SKILL_TOOL,
    'info: [agent] tool skill args={"name":"web-qa"}',
    "info: [agent] running skill:git-workflow now",  # the runbook's token form
    'info: [agent] tool web_fetch args={"url":"http://127.0.0.1/"}',
    "error(gpa): memory address 0x7f00 leaked:",
    "error: [nim] request failed: error.ConnectionRefused",
    "Connection error: error.RateLimitExceeded",
    "thread 4242 panic: reached unreachable code",
    "Warn: MOLTBOOK_API_KEY not set (EnvironmentVariableNotFound)",
    "warning: [agent] slow turn",
    "info: [cron] disabled",
]

needs_journal = pytest.mark.skipif(not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")),
                                   reason="systemd-journal-remote / journalctl not installed")


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool missing: CI installs the prometheus package")
        pytest.skip("promtool not installed")
    return exe


# -- targets ------------------------------------------------------------------------------------------
def test_target_specs() -> None:
    t = parse_target("unit=zeptoclaw-gateway")
    assert t.unit == UNIT and t.log_source == "journal" and t.instance.endswith("/zeptoclaw-gateway")
    t = parse_target("instance=gw2,pid_file=/run/gw2.pid,log_file=/var/log/gw2.log")
    assert (t.instance, t.pid_file, t.log_file, t.log_source, t.unit_label) == (
        "gw2", "/run/gw2.pid", "/var/log/gw2.log", "file", "")
    t = parse_target("unit=gw.service,journal_file=/a.journal,journal_file=/b.journal")
    assert t.journal_files == ("/a.journal", "/b.journal")
    assert parse_targets(None)[0].unit == UNIT


@pytest.mark.parametrize(("spec", "needle"), [
    ("log_file=/x.log", "neither how to find the process nor its unit"),
    ("unit=gw,colour=blue", "unknown key 'colour'"),
    ("unit=gw,unit=gx", "unit given twice"),
    ("pid=-3", "not a positive integer"),
    ("pattern=([", "not a regular expression"),
    ("pid=1,journal_file=/x.journal", "journal files need unit="),
    ("unit=gw,log_file=/a,journal_dir=/b", "not both"),
    ("unit=gw,instance=has space", "not a usable label value"),
    ("unit", "is not KEY=VALUE"),
])
def test_bad_target_specs(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_target(spec)


def test_duplicate_instances_refused() -> None:
    with pytest.raises(ConfigError, match="two gateways have the instance name 'a'"):
        parse_targets(["instance=a,pid=1", "instance=a,pid=2"])


# -- counting -----------------------------------------------------------------------------------------
def test_counts_follow_the_log_rules_and_agree_with_stage_03() -> None:
    counts = LogCounts()
    counts.feed([ln.encode() for ln in LINES])
    snap = counts.snapshot()
    assert snap.lines == len(LINES)
    # docs/logs.md: a call may show both forms (skill:NAME and tool skill args=), so a skill counts
    # max(token form, tool form) per batch: 2 tool-form git_workflow calls and 1 token = 2.
    assert snap.skills == {"git-workflow": 2, "web-qa": 1}
    assert snap.tools == {"skill": 3, "web_fetch": 1}
    assert (snap.errors, snap.crashes, snap.warnings) == (4, 1, 2)
    from zcnb.logs.message import make_entry

    summary = summarize_logs([make_entry(ln) for ln in LINES])
    assert summary.skill_counts == snap.skills  # the exporter counts skills exactly as stage 03 does
    assert {str(r.tool): int(r.count) for r in summary.tools.itertuples()} == snap.tools


def test_label_values_are_checked_and_bounded() -> None:
    counts = LogCounts(max_names=3)
    weird = ['info: [agent] tool skill args={"name":"../../etc"}', 'info: [agent] tool skill args={"name":"a b"}']
    names = [f'info: [agent] tool skill args={{"name":"s{i}"}}' for i in range(10)]
    counts.feed([ln.encode() for ln in weird + names])
    snap = counts.snapshot()
    # "../../etc" is no label value; "a b" reads as a-b; after three names the rest count as "other"
    assert snap.skills == {"a-b": 1, "s0": 1, "s1": 1, "other": 9}


def test_file_tail_is_incremental_bounded_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    log.write_text("info: [cron] before the exporter started\n")
    counts = LogCounts()
    tail = FileTail(log, counts, max_bytes=100)
    tail.poll()
    assert counts.snapshot().lines == 0  # starts at the end, like tail -n0
    with log.open("a") as fh:
        fh.write("\n".join(LINES) + "\n")
        fh.write("error: half a li")  # no newline yet: not counted until it is complete
    polls = 0
    while True:
        tail.poll()
        polls += 1
        if tail.backlog == 0:
            break
        assert tail.backlog > 0 and polls < 100
    assert polls > 3  # at most 100 bytes per poll: the rest waits for the next scrapes
    assert counts.snapshot().lines == len(LINES) and counts.snapshot().errors == 4
    with log.open("a") as fh:
        fh.write("ne\n")
    tail.poll()
    assert counts.snapshot().errors == 5
    os.rename(log, tmp_path / "gw.log.1")  # rotated: a new file of the same name is read from its start
    log.write_text("thread 7 panic: reached unreachable code\n")
    tail.poll()
    assert counts.snapshot().crashes == 2 and tail.rotations == 1
    log.write_text("")  # truncated in place
    tail.poll()
    with log.open("a") as fh:
        fh.write("Warn: again\n")
    tail.poll()
    assert counts.snapshot().warnings == 3 and tail.rotations == 2
    log.unlink()
    tail.poll()
    assert not tail.ok and tail.error == f"log file {log} does not exist"


def test_file_tail_reads_a_file_that_appears_later_from_its_start(tmp_path: Path) -> None:
    """A log file created after the exporter started holds only new lines: none is skipped."""
    log = tmp_path / "later.log"
    counts = LogCounts()
    tail = FileTail(log, counts)
    tail.poll()
    assert not tail.ok and "does not exist" in tail.error
    log.write_text("\n".join(LINES) + "\n")
    tail.poll()
    assert tail.ok and tail.error == "" and counts.snapshot().lines == len(LINES)


def test_file_tail_cuts_a_line_without_end(tmp_path: Path) -> None:
    log = tmp_path / "flood.log"
    log.write_bytes(b"")
    counts = LogCounts()
    tail = FileTail(log, counts, max_bytes=1 << 20)
    tail.poll()
    with log.open("ab") as fh:
        fh.write(b"x" * (3 << 20))
    for _ in range(4):
        tail.poll()
    assert len(tail._carry) <= 64 << 10  # memory stays bounded however long a line gets
    with log.open("ab") as fh:
        fh.write(b"\nerror: after the flood\n")
    tail.poll()
    assert counts.snapshot().lines == 2 and counts.snapshot().errors == 1


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")


def _entries(lines: list[str], *, unit: str = UNIT, pid: int = 4242) -> list[dict[str, str | bytes | int]]:
    """Entries as journald writes them: this boot, real and monotonic clocks (journalctl -f and --after-cursor
    need both: a cursor is found again by boot id and monotonic time)."""
    t, m = int(time.time() * 1e6), time.monotonic_ns() // 1000
    return [{"__REALTIME_TIMESTAMP": t + i, "__MONOTONIC_TIMESTAMP": m + i, "_BOOT_ID": _boot_id(),
             "_SYSTEMD_USER_UNIT": unit, "_PID": pid, "PRIORITY": 6, "MESSAGE": line} for i, line in enumerate(lines)]


@needs_journal
def test_journal_follower_counts_each_entry_once(tmp_path: Path) -> None:
    jdir = tmp_path / "journal"
    write_journal(_entries(LINES) + _entries(["error: another unit's"], unit="other.service"), jdir / "a.journal")
    counts = LogCounts()
    follower = JournalFollower(UNIT, counts, start="all", directory=str(jdir), restart_s=0.2).start()
    try:
        wait_until(lambda: counts.snapshot().lines == len(LINES), timeout_s=20, what="the first entries")
        write_journal(_entries(LINES[:3]), jdir / "b.journal")  # a new file in the folder, followed live
        wait_until(lambda: counts.snapshot().lines == len(LINES) + 3, timeout_s=20, what="the new entries")
        assert follower.cursor and follower.ok
        first = follower._proc
        assert first is not None
        first.kill()  # journalctl dies: it is started again after the cursor, nothing counted twice
        wait_until(lambda: follower._proc is not first and follower.ok, timeout_s=20, what="journalctl again")
        write_journal(_entries(["thread 1 panic: reached unreachable code"]), jdir / "c.journal")
        wait_until(lambda: counts.snapshot().crashes == 2, timeout_s=20, what="the crash after the restart")
        time.sleep(0.5)
        snap = counts.snapshot()
        assert snap.lines == len(LINES) + 4 and snap.skills == {"git-workflow": 4, "web-qa": 2}
        assert "journalctl exited" in follower.error
        assert f"--after-cursor={follower.cursor}" in " ".join(follower.argv())
    finally:
        follower.stop()
    assert not follower.ok


@needs_journal
def test_journal_follower_from_the_end_skips_history(tmp_path: Path) -> None:
    jdir = tmp_path / "journal"
    write_journal(_entries(LINES), jdir / "a.journal")
    counts = LogCounts()
    follower = JournalFollower(UNIT, counts, directory=str(jdir)).start()
    try:
        wait_until(lambda: follower.ok, timeout_s=10, what="journalctl to run")
        time.sleep(1.0)
        assert counts.snapshot().lines == 0
        write_journal(_entries(["error: new"]), jdir / "b.journal")
        wait_until(lambda: counts.snapshot().errors == 1, timeout_s=20, what="the new entry")
    finally:
        follower.stop()


# -- process series -----------------------------------------------------------------------------------
def _series(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def _child(tmp_path: Path, mib: int = 20) -> subprocess.Popen[bytes]:
    """A process holding ``mib`` MiB and four extra open files."""
    code = (f"import sys,time; b=bytearray({mib}<<20); fs=[open(sys.argv[1]) for _ in range(4)]; "
            "print('ready', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, __file__], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_process_series_match_proc_and_restarts_are_counted(tmp_path: Path) -> None:
    a = _child(tmp_path)
    pid_file = tmp_path / "gw.pid"
    pid_file.write_text(f"{a.pid}\n")
    b = None
    try:
        exp = Exporter([parse_target(f"instance=gw,pid_file={pid_file}")], port=0)
        s = _series(exp.scrape().decode())
        lab = f'instance="gw",pid="{a.pid}",unit=""'
        p = psutil.Process(a.pid)
        full = p.memory_full_info()
        assert s['zcnb_gateway_up{instance="gw",unit=""}'] == 1
        assert abs(s[f"zcnb_gateway_resident_memory_bytes{{{lab}}}"] - full.rss) < 1 << 20
        assert s[f"zcnb_gateway_resident_memory_bytes{{{lab}}}"] > 20 << 20
        assert abs(s[f"zcnb_gateway_unique_memory_bytes{{{lab}}}"] - full.uss) < 1 << 20
        assert f"zcnb_gateway_proportional_memory_bytes{{{lab}}}" in s
        assert s[f"zcnb_gateway_open_fds{{{lab}}}"] == p.num_fds() >= 7
        assert s[f"zcnb_gateway_process_start_time_seconds{{{lab}}}"] == pytest.approx(p.create_time(), abs=0.01)
        assert s['zcnb_gateway_restarts_total{instance="gw",unit=""}'] == 0
        b = _child(tmp_path, mib=5)
        pid_file.write_text(f"{b.pid}\n")  # the supervisor started a new process
        s = _series(exp.scrape().decode())
        assert s['zcnb_gateway_restarts_total{instance="gw",unit=""}'] == 1
        assert f'zcnb_gateway_resident_memory_bytes{{instance="gw",pid="{b.pid}",unit=""}}' in s
        assert not any(f'pid="{a.pid}"' in k for k in s)
        b.kill()
        b.wait()
        s = _series(exp.scrape().decode())
        assert s['zcnb_gateway_up{instance="gw",unit=""}'] == 0
        assert s['zcnb_gateway_restarts_total{instance="gw",unit=""}'] == 1
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cgroup_limit_reading(tmp_path: Path) -> None:
    proc_root, cg = tmp_path / "proc", tmp_path / "cg"
    (proc_root / "7").mkdir(parents=True)
    (proc_root / "7" / "cgroup").write_text("0::/user.slice/gw.service\n")
    (cg / "user.slice" / "gw.service").mkdir(parents=True)
    (cg / "user.slice" / "gw.service" / "memory.max").write_text("max\n")
    assert read_cgroup_limit(7, cgroup_root=str(cg), proc_root=str(proc_root)) is None
    (cg / "user.slice" / "gw.service" / "memory.max").write_text("2147483648\n")
    assert read_cgroup_limit(7, cgroup_root=str(cg), proc_root=str(proc_root)) == 2 << 30
    (proc_root / "7" / "cgroup").write_text("4:memory:/gw\n0::/\n")  # cgroup v1: page-rounded 2^63 = none
    (cg / "memory" / "gw").mkdir(parents=True)
    (cg / "memory" / "gw" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert read_cgroup_limit(7, cgroup_root=str(cg), proc_root=str(proc_root)) is None
    (cg / "memory" / "gw" / "memory.limit_in_bytes").write_text("536870912\n")
    assert read_cgroup_limit(7, cgroup_root=str(cg), proc_root=str(proc_root)) == 512 << 20


def test_exposition_passes_promtool_and_sends_nothing_to_the_gateway(tmp_path: Path) -> None:
    """The watched process listens on a port, as a gateway does: the exporter never connects to it."""
    exe = promtool()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    log = tmp_path / "gw.log"
    log.write_text("")
    target = parse_target(f"instance=gw,pid={os.getpid()},log_file={log}")
    with Exporter([target], port=0) as exp:
        with log.open("a") as fh:
            fh.write("\n".join(LINES) + "\n")
        texts = [httpx.get(exp.url, timeout=5).text for _ in range(5)]
    with pytest.raises(BlockingIOError):
        srv.accept()  # nobody knocked
    srv.close()
    text = texts[-1]
    proc = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
    s = _series(text)
    assert s['zcnb_gateway_skill_invocations_total{instance="gw",skill="git-workflow",unit=""}'] == 2
    assert s['zcnb_gateway_tool_calls_total{instance="gw",tool="web_fetch",unit=""}'] == 1
    assert s['zcnb_gateway_crashes_total{instance="gw",unit=""}'] == 1
    assert s['zcnb_exporter_log_source_up{instance="gw",source="file",unit=""}'] == 1
    assert s['zcnb_exporter_log_backlog_bytes{instance="gw",unit=""}'] == 0


@pytest.mark.slow
def test_real_gateway_crash_and_restart_are_counted(tmp_path: Path) -> None:
    """The real binary crashes at its 101st request within a minute: one crash, two error lines, and the
    restarted process counts as a restart."""
    with real_gateway(tmp_path) as gw:
        target = parse_target(f"instance=real,pid_file={gw.pid_file},log_file={gw.log_path}")
        exp = Exporter([target], port=0, options=ExporterOptions(resolve_interval_s=0))
        for w in exp.watches:
            w.start()
        first = _series(exp.scrape().decode())
        assert first[f'zcnb_gateway_resident_memory_bytes{{instance="real",pid="{gw.pid}",unit=""}}'] > 1 << 20
        for _ in range(101):
            try:
                httpx.get(f"http://127.0.0.1:{gw.port}/health", headers={"X-Auth-Token": gw.token}, timeout=5)
            except httpx.HTTPError:
                break
        gw.proc.wait(timeout=20)
        s = _series(exp.scrape().decode())
        assert s['zcnb_gateway_up{instance="real",unit=""}'] == 0
        assert s['zcnb_gateway_crashes_total{instance="real",unit=""}'] == 1
        assert s['zcnb_gateway_errors_total{instance="real",unit=""}'] == 2  # Connection error + panic
    with real_gateway(tmp_path, name="gw2") as gw2:
        gw.pid_file.write_text(f"{gw2.pid}\n")
        s = _series(exp.scrape().decode())
        assert s['zcnb_gateway_restarts_total{instance="real",unit=""}'] == 1
        assert f'zcnb_gateway_resident_memory_bytes{{instance="real",pid="{gw2.pid}",unit=""}}' in s
    exp.stop()


def _zcnb(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "zcnb", *args], capture_output=True, text=True, env=env,
                          check=False, timeout=60)


def test_cli_once_and_bad_input(tmp_path: Path) -> None:
    exe = promtool()
    out = _zcnb("exporter", "--once", "--gateway", f"instance=me,pid={os.getpid()}")
    assert out.returncode == 0, out.stderr
    assert f'zcnb_gateway_resident_memory_bytes{{instance="me",pid="{os.getpid()}",unit=""}}' in out.stdout
    check = subprocess.run([exe, "check", "metrics"], input=out.stdout, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    for args, needle in ((["--gateway", "colour=blue"], "unknown key"), (["--listen", "9840"], "is not HOST:PORT"),
                         (["--max-log-bytes", "lots"], "cannot read 'lots' as a size")):
        bad = _zcnb("exporter", *args)
        assert bad.returncode == 2 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    log.write_text("")
    with zcnb_server(["exporter", "--gateway", f"instance=me,pid={os.getpid()},log_file={log}", "--listen",
                      "127.0.0.1:0"], tmp_path / "exporter.log") as (proc, url):
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        with log.open("a") as fh:
            fh.write("thread 1 panic: reached unreachable code\n")
        assert 'zcnb_gateway_crashes_total{instance="me",unit=""} 1.0' in httpx.get(url, timeout=5).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    log_text = (tmp_path / "exporter.log").read_text()
    assert "process by pid" in log_text and f"zcnb exporter: me: watching pid {os.getpid()}" in log_text


def test_a_missing_process_or_log_is_said_once_not_silently() -> None:
    said: list[str] = []
    w = GatewayWatch(parse_target("instance=gw,pattern=zcnb-test-no-such-gateway-[0-9]+,log_file=/nonexistent/gw.log"),
                     ExporterOptions(resolve_interval_s=0), said.append)
    exp_collector = GatewayCollector([w])
    for _ in range(3):
        text = "".join(str(m) for m in exp_collector.collect())
    assert "zcnb_gateway_up" in text
    assert len(said) == 2, said  # said once each, not at every scrape
    assert said[0].startswith("zcnb exporter: gw: no process (zcnb_gateway_up 0): no process matches pattern")
    assert said[1].startswith("zcnb exporter: gw: log file not read (zcnb_exporter_log_source_up 0)")
