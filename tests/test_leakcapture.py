"""Leak capture with real tools: gcc ASan/LSan, valgrind memcheck and massif, Zig 0.17 (ziglang),
and the clean-exit capture against the real simulated gateway process (zcnb.demo)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zcnb.cli import main
from zcnb.exceptions import ConfigError, PlanError, ProcessNotFound
from zcnb.leaks.capture import capture_leak_report, run_with_leak_check
from zcnb.leaks.parse import parse_leak_report

SRC = Path(__file__).parent / "data" / "leakreports" / "src"
TOKEN = "test-token-not-secret-1234"


def _need(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed: {hint}")


@pytest.fixture(scope="module")
def cbin(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _need("gcc", "apt-get install gcc")
    out = tmp_path_factory.mktemp("cbin")
    builds = {"asan": ["-fsanitize=address"], "lsan": ["-fsanitize=leak"], "plain": []}
    bins = {}
    for name, flags in builds.items():
        bins[name] = out / f"leaky_{name}"
        subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer", *flags, str(SRC / "leaky.c"), "-o",
                        str(bins[name])], check=True)
    bins["grows"] = out / "grows"
    subprocess.run(["gcc", "-g", "-O0", str(SRC / "grows.c"), "-o", str(bins["grows"])], check=True)
    return bins


def _sites(report):  # function -> bytes
    return {s.function: s.bytes for s in report.top_sites()}


def test_asan_and_lsan_exit_codes_and_exact_leaks(cbin: dict[str, Path]) -> None:
    a = subprocess.run([str(cbin["asan"])], check=False, capture_output=True, text=True, timeout=60)
    assert a.returncode == 1
    ra = parse_leak_report(a.stderr)
    assert ra.tools == ("asan",) and [(x.kind, x.bytes, x.blocks) for x in ra.records] == [
        ("direct", 300, 3), ("direct", 16, 1), ("indirect", 32, 1)]
    assert _sites(ra) == {"make_buffer": 300, "make_node": 48}
    lsan = subprocess.run([str(cbin["lsan"])], check=False, capture_output=True, text=True, timeout=60)
    assert lsan.returncode == 23 and lsan.stdout.strip() == "done"  # flushed before the leak check
    rl = parse_leak_report(lsan.stderr)
    assert rl.tools == ("lsan",) and rl.leaked_bytes == 348


@pytest.mark.slow
def test_valgrind_all_kinds_exact(cbin: dict[str, Path], tmp_path: Path) -> None:
    _need("valgrind", "apt-get install valgrind")
    log = tmp_path / "vg.log"
    subprocess.run(["valgrind", "--leak-check=full", "--show-leak-kinds=all", f"--log-file={log}", str(cbin["plain"])],
                   check=True, capture_output=True, timeout=120)
    r = parse_leak_report(log.read_text())
    assert {k: (t["bytes"], t["blocks"]) for k, t in r.totals.items()} == {
        "definitely": (316, 4), "indirect": (32, 1), "possibly": (64, 1), "still-reachable": (48, 1)}
    assert r.tool_summary["valgrind"]["definitely"] == {"bytes": 316, "blocks": 4} and not r.truncated


def test_run_with_leak_check_asan_serve(cbin: dict[str, Path], tmp_path: Path) -> None:
    res = run_with_leak_check([str(cbin["asan"]), "serve"], tool="asan", seconds=1.0, out_dir=tmp_path)
    assert not res.killed and not res.exited_early and res.exit_code is not None and res.exit_code >= 0
    assert res.report is not None and res.report.recognized
    buf = _sites(res.report)["make_buffer"]
    assert buf is not None and buf > 300 and buf % 100 == 0  # 3 x 100 once + 100 per 50 ms tick
    assert _sites(res.report)["make_node"] == 48
    assert res.output_path.startswith(str(tmp_path)) and "asan run" in res.summary


@pytest.mark.slow
def test_run_with_leak_check_valgrind_sigterm(cbin: dict[str, Path]) -> None:
    _need("valgrind", "apt-get install valgrind")
    res = run_with_leak_check([str(cbin["plain"]), "serve"], tool="valgrind", seconds=3.0,
                              stop_signal=signal.SIGTERM, timeout=60)
    assert res.report is not None and not res.killed
    t = res.report.totals
    assert t["indirect"]["bytes"] == 32 and t["possibly"]["bytes"] == 64 and t["still-reachable"]["bytes"] == 48
    assert (t["definitely"]["bytes"] or 0) >= 316 + 100 and ((t["definitely"]["bytes"] or 0) - 16) % 100 == 0


@pytest.mark.slow
def test_run_massif_on_mmap_growth(cbin: dict[str, Path], tmp_path: Path) -> None:
    _need("valgrind", "apt-get install valgrind")
    res = run_with_leak_check([str(cbin["grows"]), "0"], tool="massif", seconds=3.0, out_dir=tmp_path, timeout=60)
    m = res.massif
    assert m is not None and not res.killed and (tmp_path / "massif.out").exists()
    growth = {s.function: s.growth_bytes for s in m.growth_sites}
    assert growth["grow_cache"] > 0 and growth["grow_cache"] % 2**20 == 0
    assert growth["grow_cache"] > growth.get("keep_session", 0) and m.growth_sites[0].function == "grow_cache"
    assert m.peak_bytes >= m.start_bytes + growth["grow_cache"]


def test_run_stop_ignored_means_report_lost(tmp_path: Path) -> None:
    code = "import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    res = run_with_leak_check([sys.executable, "-c", code], tool="asan", seconds=0.5, timeout=1.0, out_dir=tmp_path)
    assert res.killed and res.exit_code == -signal.SIGKILL and any("lost" in n for n in res.notes)


def test_run_bad_input() -> None:
    with pytest.raises(ConfigError, match="non-empty list"):
        run_with_leak_check("./prog --x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown leak-check tool"):
        run_with_leak_check(["true"], tool="heaptrack")
    with pytest.raises(ConfigError, match="no such program"):
        run_with_leak_check(["/nonexistent/zcnb-prog"], tool="asan", seconds=0.1)


@pytest.fixture(scope="module")
def zig_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        pytest.skip("ziglang not installed: pip install ziglang")
    cache = tmp_path_factory.getbasetemp() / "zig-cache"  # one cache per session
    out = tmp_path_factory.mktemp("zig")
    env = {**os.environ, "ZIG_GLOBAL_CACHE_DIR": str(cache), "ZIG_LOCAL_CACHE_DIR": str(cache)}
    exe = out / "gateway"
    subprocess.run([sys.executable, "-m", "ziglang", "build-exe", str(SRC / "gateway" / "main.zig"),
                    f"-femit-bin={exe}"], check=True, env=env, cwd=out, timeout=300, capture_output=True)
    runs = {"gateway": subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)}
    runs["test"] = subprocess.run([sys.executable, "-m", "ziglang", "test", str(SRC / "leak_test.zig")],
                                  check=False, capture_output=True, text=True, env=env, cwd=out, timeout=300)
    return runs


@pytest.mark.slow
def test_zig_debug_allocator_real(zig_outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    gw = zig_outputs["gateway"]
    assert gw.returncode == 0 and "error(DebugAllocator): memory address 0x" in gw.stderr
    r = parse_leak_report(gw.stderr)
    assert len(r.records) == 4 and not r.truncated
    assert {s.function: s.records for s in r.top_sites()} == {"loadConfig": 3, "parseHeaders": 1}
    assert all(x.bytes is None for x in r.records)
    t = zig_outputs["test"]
    assert t.returncode == 1
    rt = parse_leak_report(t.stderr + t.stdout)
    assert rt.tests_leaked == 1 and [(x.bytes, x.site.function if x.site else "") for x in rt.records] == [
        (48, "buildReply")]


# ------------------------------------------------------------ clean-exit capture


class _Gateway:
    """The simulated gateway's real-profile server process (zcnb.demo.server), started directly."""

    def __init__(self, tmp: Path, *, ignore_sigterm: bool = False) -> None:
        self.log = tmp / "gateway.log"
        port_file = tmp / f"port-{time.monotonic_ns()}"
        argv = [sys.executable, "-m", "zcnb.demo.server", "--profile", "real", "--port-file", str(port_file),
                "--log-file", str(self.log), "--no-stderr", "--leak", "per_request", "--leak-kind", "unauth",
                "--leak-bytes", "2048", "--gpa-scope", "DebugAllocator", "--exit-with-parent"]
        if ignore_sigterm:
            argv.append("--ignore-sigterm")
        self.proc = subprocess.Popen(argv, env={**os.environ, "GATEWAY_AUTH_TOKEN": TOKEN},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("simulated gateway did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.pid = self.proc.pid

    def unauth_request(self) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(4096)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[_Gateway]]:
    started: list[_Gateway] = []
    yield started
    for g in started:
        g.close()


def test_capture_dry_run_then_execute_with_restart(tmp_path: Path, gateways: list[_Gateway]) -> None:
    gw = _Gateway(tmp_path)
    gateways.append(gw)
    for _ in range(3):
        assert b"401" in gw.unauth_request()
    dry = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log)
    assert dry.action.dry_run and dry.action.outcome == "planned" and gw.proc.poll() is None
    assert dry.plan.steps[0].startswith(f"kill -TERM {gw.pid};") and dry.report is None
    assert "pidfd_getfd" in dry.plan.steps[1] and "RLIMIT_NOFILE" in dry.plan.steps[2]
    assert dry.plan.steps[3].startswith("wait up to 10 s") and "kill -KILL" in dry.plan.steps[3]
    with pytest.raises(PlanError, match="does not match"):
        capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, execute=True, confirm="nope")
    assert gw.proc.poll() is None

    def restart() -> None:
        folder = tmp_path / f"restart{len(gateways)}"
        folder.mkdir()
        gateways.append(_Gateway(folder))

    plan_id = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, restart=restart,
                                  timeout_s=20).plan.plan_id
    res = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, restart=restart, execute=True,
                              confirm=plan_id, timeout_s=20)
    assert res.action.outcome == "ok" and not res.report_lost, res.action.message
    assert res.method == "shutdown-socket" and "state save ran" in (res.state_save or "")
    assert gw.proc.wait(timeout=10) == 0  # a clean exit, not a kill
    assert res.report is not None and res.report.recognized
    assert len(res.report.leaks) == 3  # one per unauthenticated request; the unblocking connect leaks nothing
    assert res.report.top_sites()[0].function == "handleRequest"
    assert len(gateways) == 2 and gateways[1].proc.poll() is None  # restarted
    assert TOKEN not in str(res.to_dict())


def test_capture_sigterm_ignored_kills_and_says_report_lost(tmp_path: Path, gateways: list[_Gateway]) -> None:
    gw = _Gateway(tmp_path, ignore_sigterm=True)
    gateways.append(gw)
    gw.unauth_request()
    plan = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, timeout_s=1.0).plan
    t0 = time.monotonic()
    res = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, timeout_s=1.0, execute=True,
                              confirm=plan.plan_id)
    # Its accept loop keeps logging "Accept error" after the listener is shut: that output is not a leak report
    # being written, so the SIGKILL comes at the timeout, not after the long grace for a report in progress.
    assert time.monotonic() - t0 < 20
    assert res.report_lost and res.action.outcome == "partial" and "LOST" in res.action.message
    assert gw.proc.wait(timeout=10) == -signal.SIGKILL


@pytest.mark.parametrize("method", ["fd-limit", "connect"])
def test_capture_other_methods_on_the_real_profile(tmp_path: Path, gateways: list[_Gateway], method: str) -> None:
    """fd-limit (the fallback) stops the real profile cleanly and says the state save is skipped; connect alone
    (SIGTERM + one connection) does not stop it: SIGKILL after the timeout, report lost, said so."""
    gw = _Gateway(tmp_path)
    gateways.append(gw)
    gw.unauth_request()
    timeout = 15.0 if method == "fd-limit" else 1.5
    plan = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, timeout_s=timeout, method=method).plan
    res = capture_leak_report(pid=gw.pid, port=gw.port, log_source=gw.log, timeout_s=timeout, method=method,
                              execute=True, confirm=plan.plan_id)
    assert res.method == method
    if method == "fd-limit":
        assert res.action.outcome == "ok" and gw.proc.wait(timeout=10) == 0, res.action.message
        assert res.report is not None and len(res.report.leaks) == 1
        assert "state save" in res.action.message and "skipped" in res.action.message
    else:
        assert res.report_lost and "LOST" in res.action.message and "within 1.5 s" in res.action.message
        assert gw.proc.wait(timeout=10) == -signal.SIGKILL


def test_capture_callable_source_and_errors(tmp_path: Path, gateways: list[_Gateway]) -> None:
    gw = _Gateway(tmp_path)
    gateways.append(gw)
    gw.unauth_request()
    offset = {"n": 0}

    def new_text() -> str:  # a log source like a journal cursor: returns text added since the last call
        data = gw.log.read_text()
        text, offset["n"] = data[offset["n"]:], len(data)
        return text

    plan = capture_leak_report(pid=gw.pid, port=gw.port, log_source=new_text).plan
    res = capture_leak_report(pid=gw.pid, port=gw.port, log_source=new_text, execute=True, confirm=plan.plan_id)
    assert res.report is not None and len(res.report.leaks) == 1
    with pytest.raises(ProcessNotFound):
        capture_leak_report(pid=gw.pid, port=gw.port, log_source=new_text, execute=True, confirm=plan.plan_id)
    with pytest.raises(ConfigError, match="invalid port"):
        capture_leak_report(pid=gw.pid, port=0, log_source=new_text)


def test_cli_capture_dry_run_and_run(tmp_path: Path, gateways: list[_Gateway], cbin: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    gw = _Gateway(tmp_path)
    gateways.append(gw)
    assert main(["leaks", "capture", "--pid", str(gw.pid), "--port", str(gw.port), "--log", str(gw.log)]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "--confirm" in out and gw.proc.poll() is None
    plan_id = out.split("--confirm ")[1].split()[0]
    assert main(["leaks", "capture", "--pid", str(gw.pid), "--port", str(gw.port), "--log", str(gw.log),
                 "--execute", "--confirm", plan_id]) == 0
    assert gw.proc.wait(timeout=10) == 0
    js = tmp_path / "run.json"
    assert main(["leaks", "run", "--tool", "asan", "--seconds", "0.5", "--json", str(js), "--",
                 str(cbin["asan"]), "serve"]) == 0
    assert "make_buffer" in capsys.readouterr().out and js.exists()
    assert main(["leaks", "run", "--bogus"]) == 2


def test_capture_with_simulated_gateway_class(tmp_path: Path) -> None:
    """Same capture through zcnb.demo.SimulatedGateway (real profile), restarting through it."""
    from zcnb.demo import SimulatedGateway

    with SimulatedGateway(profile="real", leak="per_request", leak_kind="unauth", leak_bytes=1024, token=TOKEN,
                          log_path=tmp_path / "gw.log", gpa_scope="DebugAllocator") as gw:
        for _ in range(2):
            with socket.create_connection((gw.host, gw.port), timeout=10) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert b"401" in s.recv(4096)
        old_pid = gw.pid
        assert old_pid is not None
        kw = {"pid": old_pid, "port": gw.port, "log_source": gw.log_path, "restart": gw.start, "timeout_s": 20.0}
        plan = capture_leak_report(**kw).plan  # type: ignore[arg-type]
        res = capture_leak_report(**kw, execute=True, confirm=plan.plan_id)  # type: ignore[arg-type]
        assert res.action.outcome == "ok", res.action.message
        assert res.report is not None and len(res.report.leaks) == 2
        assert res.report.top_sites()[0].function == "handleRequest"
        assert gw.running and gw.pid != old_pid
