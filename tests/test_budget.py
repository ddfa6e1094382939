"""The shared request budget (zcnb.collect.budget): a real ledger file with flock, real child processes competing
for it (one killed while holding the lock, one stopped), real loopback endpoints that count what reached them.
A fake clock only where a test needs time to pass without waiting for it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from collection_helpers import REAL_BODY, FakeEndpoint

from zcnb.collect import budget as budget_mod
from zcnb.collect.budget import RECORD_SIZE, RequestBudget, budget_for_url, runtime_dir
from zcnb.collect.metrics import MetricsClient
from zcnb.config import Secret, load_settings
from zcnb.exceptions import ConfigError, RequestBudgetExhausted
from zcnb.service.health import probe_health, wait_healthy

REPO = Path(__file__).resolve().parents[1]
TOKEN = "budget-test-token"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_sliding_window_counts_each_kind_and_frees_as_records_age(tmp_path: Path) -> None:
    clock = Clock()
    b = RequestBudget("127.0.0.1", 18789, limit=3, window_s=10, folder=tmp_path, clock=clock)
    for i in range(3):
        assert b.try_acquire() == 0.0
        clock.t += 1
    wait = b.try_acquire()  # t0+3: the three are 3, 2 and 1 s old
    assert 6.9 < wait <= 7.01
    with pytest.raises(RequestBudgetExhausted, match=r"used up \(3 requests per 10 s.*not sent") as err:
        b.acquire(wait_s=1.0)
    assert err.value.reason == "budget" and err.value.next_free_s == pytest.approx(wait, abs=0.01)  # type: ignore[attr-defined]
    assert b.try_acquire(token=False) == 0.0  # token-less requests have their own count
    usage = b.usage()
    assert (usage.used, usage.unauth_used, usage.limit) == (3, 1, 3) and "3 of 3" in usage.describe()
    clock.t += 7.01  # the first record is now older than the window
    assert b.try_acquire() == 0.0 and b.try_acquire() > 0
    assert [e.kind for e in b.history()] == ["T", "T", "T", "U", "T"]
    assert all(e.pid == os.getpid() and e.caller == "zcnb" for e in b.history())


def test_background_callers_leave_a_reserve_for_interactive_ones(tmp_path: Path) -> None:
    b = RequestBudget("127.0.0.1", 1, limit=8, window_s=60, folder=tmp_path)
    assert b.reserve == 2
    taken = sum(b.try_acquire(background=True) == 0.0 for _ in range(10))
    assert taken == 6
    assert b.try_acquire() == 0.0 and b.try_acquire() == 0.0 and b.try_acquire() > 0  # the reserve, then full


def test_acquire_waits_for_a_slot_and_says_so(tmp_path: Path) -> None:
    b = RequestBudget("localhost", 2, limit=2, window_s=0.6, folder=tmp_path)
    b.acquire()
    b.acquire()
    t0 = time.monotonic()
    grant = b.acquire(wait_s=5)
    assert 0.4 < time.monotonic() - t0 < 2.0 and grant.waited_s > 0.4
    assert "waited" in grant.note() and "localhost:2" in grant.note()
    # a sleep that reports "stopped" ends the wait without taking anything
    b2 = RequestBudget("localhost", 3, limit=1, window_s=30, folder=tmp_path)
    b2.acquire()
    with pytest.raises(RequestBudgetExhausted, match="stopped while waiting"):
        b2.acquire(wait_s=60, sleep=lambda s: True)
    assert len(b2.history()) == 1


def test_loopback_names_share_one_budget_and_settings_choose_limit_and_folder(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "2")
    monkeypatch.setenv("ZCNB_RUNTIME_DIR", str(tmp_path / "rt"))
    a = budget_for_url("http://127.0.0.1:4444/metrics")
    b = budget_for_url("http://localhost:4444/health")
    assert a.limit == 2 and a.path == b.path and a.path.parent.parent == tmp_path / "rt"
    a.acquire()
    b.acquire()
    with pytest.raises(RequestBudgetExhausted):
        budget_for_url("http://[::1]:4444/").acquire()
    assert budget_for_url("http://127.0.0.1:4445/").try_acquire() == 0.0  # another gateway, another budget
    assert stat.S_IMODE(os.stat(tmp_path / "rt").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(a.path).st_mode) == 0o600
    with pytest.raises(ConfigError, match="positive whole number"):
        RequestBudget("h", 1, limit=0, folder=tmp_path)
    with pytest.raises(ConfigError, match="invalid value"):
        load_settings(env={"ZCNB_REQUEST_BUDGET": "many"})


def test_runtime_folder_must_be_private_and_owned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(ConfigError, match="writable by others"):
        runtime_dir(load_settings(runtime_dir=str(shared)))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a folder"):
        runtime_dir(load_settings(runtime_dir=str(link)))
    monkeypatch.delenv("ZCNB_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir(mode=0o700)
    assert runtime_dir(load_settings()) == tmp_path / "xdg" / "zcnb"


_COMPETE = textwrap.dedent("""
    import sys, time
    from zcnb.collect.budget import RequestBudget
    b = RequestBudget("127.0.0.1", 7, limit=int(sys.argv[2]), window_s=60, folder=sys.argv[1], caller="p" + sys.argv[3])
    while time.time() < float(sys.argv[4]):
        time.sleep(0.001)
    got = sum(b.try_acquire() == 0.0 for _ in range(40))
    print(got)
""")


def test_many_processes_at_once_never_exceed_the_budget(tmp_path: Path) -> None:
    start = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, "-c", _COMPETE, str(tmp_path), "50", str(i), str(start)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
             for i in range(4)]
    got = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(got) == 50  # 160 attempts, exactly the budget taken, across 4 processes
    b = RequestBudget("127.0.0.1", 7, limit=50, window_s=60, folder=tmp_path)
    hist = b.history()
    assert len(hist) == 50 and {e.caller for e in hist} <= {"p0", "p1", "p2", "p3"}
    assert [e.at for e in hist] == sorted(e.at for e in hist)  # appended in time order under the lock


_HOLD = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"1800000000.000000 T 12")  # a record cut short: the holder dies mid-write
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_holder_killed_mid_write_blocks_nobody_and_its_torn_record_is_dropped(tmp_path: Path) -> None:
    b = RequestBudget("127.0.0.1", 8, limit=5, window_s=60, folder=tmp_path, lock_wait_s=3)
    b.acquire()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(b.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        t0 = time.monotonic()
        assert b.acquire().used == 2
        assert time.monotonic() - t0 < 1.0
        assert os.path.getsize(b.path) == 2 * RECORD_SIZE and len(b.history()) == 2
    finally:
        holder.kill()
        holder.wait()


def test_a_stopped_holder_is_named_and_nothing_is_sent(tmp_path: Path) -> None:
    b = RequestBudget("127.0.0.1", 9, limit=5, window_s=60, folder=tmp_path, lock_wait_s=0.5)
    b.acquire()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(b.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGSTOP)
        with pytest.raises(RequestBudgetExhausted, match=rf"pid {holder.pid}.*holds the lock"):
            b.acquire()
    finally:
        holder.kill()
        holder.wait()
    assert b.acquire().used == 2  # and once it is gone, everything goes on


def test_rotation_keeps_the_window_and_the_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_mod, "_ROTATE_AT", 10 * RECORD_SIZE)
    clock = Clock()
    b = RequestBudget("127.0.0.1", 10, limit=5, window_s=10, folder=tmp_path, clock=clock)
    other = RequestBudget("127.0.0.1", 10, limit=5, window_s=10, folder=tmp_path, clock=clock)  # its own open file
    for i in range(14):
        assert (b if i % 2 else other).try_acquire() == 0.0
        clock.t += 3  # 4 records per 10 s window at most
    assert os.path.getsize(b.path) < 10 * RECORD_SIZE and b.path.with_name(b.path.name + ".1").exists()
    assert b.usage().used == other.usage().used == 3  # records 3, 6 and 9 s old: the window survived the move
    assert len(b.history()) >= 14


def test_metrics_client_never_sends_past_the_budget(tmp_path: Path) -> None:
    b = RequestBudget("127.0.0.1", 1, limit=3, window_s=60, folder=tmp_path)
    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep:
        b = RequestBudget("127.0.0.1", ep.port, limit=3, window_s=60, folder=tmp_path)
        client = MetricsClient(ep.url, token=Secret(TOKEN), budget=b, budget_wait_s=0, caller="test")
        client.fetch()  # no status line: httpx, then the socket: two requests, two slots
        assert len(ep.requests) == 2 and b.usage().used == 2
        client.fetch()  # the client now knows: one request
        with pytest.raises(RequestBudgetExhausted, match="not sent"):
            client.fetch()
        assert len(ep.requests) == 3
    assert {e.caller for e in b.history()} == {"test"}


def test_health_probe_is_throttled_not_sent(tmp_path: Path) -> None:
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        b = RequestBudget("127.0.0.1", ep.port, limit=1, window_s=60, folder=tmp_path)
        assert probe_health(ep.url + "/health", token=Secret(TOKEN), budget=b).healthy
        res = probe_health(ep.url + "/health", token=Secret(TOKEN), budget=b)
        assert res.state == "throttled" and res.attempts == 0 and "not sent" in res.detail
        assert "request budget" in res.advice
        assert len(ep.requests) == 1
        t0 = time.monotonic()
        res = wait_healthy(ep.url + "/health", token=Secret(TOKEN), timeout_s=0.5)
        assert res.healthy  # the default budget (the settings', 60) is another ledger than b's: here a fresh one
        assert time.monotonic() - t0 < 2


def test_health_command_with_a_tiny_budget_says_throttled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "60")  # --request-budget sets it for the process: undone after the test
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        args = ["health", "--port", str(ep.port), "--timeout", "0.5", "--request-budget", "1"]
        assert main(args) == 0
        assert main(args) == 1
        assert len(ep.requests) == 1
    out = capsys.readouterr().out
    assert "throttled" in out and "request budget" in out
    assert os.environ["ZCNB_REQUEST_BUDGET"] == "1"  # children (notebook kernels, zcnb) inherit the option


def test_sampler_scrapes_slow_down_to_the_budget_and_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collection_helpers import child

    from zcnb.collect.sampling import read_samples, sample

    monkeypatch.setenv("ZCNB_REQUEST_BUDGET", "8")
    monkeypatch.setenv("ZCNB_REQUEST_BUDGET_WINDOW_S", "2")
    with child("zcnb-budget-sampled") as c, FakeEndpoint(body=REAL_BODY.replace("zeptoclaw_requests_total 12",
                                                                                "process_resident_memory_bytes 1e6"),
                                                          token=TOKEN) as ep:
        summary = sample(tmp_path / "s.csv", pid=c.pid, url=ep.url, token=Secret(TOKEN), sources=["psutil", "metrics"],
                         interval_s=0.2, duration_s=4.0, metrics_interval_s=0.1, progress=False)
        n = len(ep.requests)
    # polling may use 8 - 2 (the reserve) per 2 s: ~6 + 6 (+ the first window's edge), not the 40 asked for
    assert 8 <= n <= 20
    note = next(x for x in summary.notes if "waited for the request budget" in x)
    assert "localhost:" in note and "8 per 2 s" in note and "polling at most 6" in note
    df = read_samples(tmp_path / "s.csv")
    assert any("waited for the request budget" in str(x) for x in df["note"])
    head = (tmp_path / "s.csv").read_text().splitlines()
    assert any(ln.startswith("# request_budget: localhost:") for ln in head)
    assert any(ln.startswith(f"# process: pid {c.pid}") and "given by --pid" in ln for ln in head)
