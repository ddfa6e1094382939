"""The pure verdict decision (zcnb.analysis.verdict) and the target's memory limit (zcnb.collect.memlimit):
decision rules on exact features, the severity table, limit detection and its trip through the samples header."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from zcnb.analysis import LeakThresholds, assess_leak
from zcnb.analysis.verdict import LeakFeatures, decide_verdict, min_relative_rise, severity_for_time
from zcnb.collect.memlimit import MemoryLimit, detect_limit, limit_from_header, unit_memory_max
from zcnb.collect.process import ProcessQuery
from zcnb.collect.samples_csv import read_samples
from zcnb.collect.sampling import Sampler

MIB = 1024.0 * 1024.0
H = 3600.0
DAY = 86400.0
WEEK = 7 * DAY


def feats(rate_h: float, level: float, duration: float, limit: float | None = None, **kw: object) -> LeakFeatures:
    s = rate_h / H
    base: dict[str, object] = {"slope_bps": s, "slope_low_bps": 0.9 * s, "slope_high_bps": 1.1 * s, "p_value": 1e-6,
                               "level_bytes": level, "current_bytes": level, "duration_s": duration,
                               "limit_bytes": limit}
    base.update(kw)
    return LeakFeatures(**base)  # type: ignore[arg-type]


def test_threshold_scales_with_level_and_window() -> None:
    th = LeakThresholds()
    assert min_relative_rise(60, th) == th.short_rise_fraction and min_relative_rise(WEEK, th) == th.long_rise_fraction
    assert th.long_rise_fraction < min_relative_rise(H, th) < th.short_rise_fraction
    # 30 % in a week on 100 MB: a leak, low (doubles in ~3 weeks, no limit known)
    week = decide_verdict(feats(30e6 / (7 * 24), 100e6, WEEK))
    assert (week.verdict, week.severity) == ("leak", "low") and week.time_to_limit_s is None
    # 0.3 % in a minute: the same relative rise per unit of time is 10,000 times faster, but not a leak
    minute = decide_verdict(feats(0.003 * 100e6 * 60, 100e6, 60))
    assert minute.verdict == "no_leak" and "below" in minute.reason
    # but a small rise right next to the limit counts: limit within a day
    near = decide_verdict(feats(0.003 * 100e6 * 60, 100e6, 60, limit=110e6))
    assert near.verdict == "leak" and near.severity in ("catastrophic", "high")


@pytest.mark.parametrize(("ttl_h", "severity"), [(0.5, "catastrophic"), (1.9, "high"), (23, "high"),
                                                 (25, "moderate"), (6 * 24, "moderate"), (8 * 24, "low")])
def test_severity_table_is_the_time_to_the_limit(ttl_h: float, severity: str) -> None:
    rate_h = 1024 * MIB  # fast growth; only the time to the limit decides
    limit = 200 * MIB + rate_h * ttl_h
    d = decide_verdict(feats(rate_h, 200 * MIB, 180, limit=limit))
    assert d.verdict == "leak" and d.severity == severity
    assert d.time_to_limit_s == pytest.approx(ttl_h * H)
    assert severity_for_time(ttl_h * H, LeakThresholds()) == severity


def test_no_limit_grades_on_doubling_time() -> None:
    assert decide_verdict(feats(200 * MIB * 6, 200 * MIB, 300)).severity == "catastrophic"  # doubles in 10 min
    assert decide_verdict(feats(200 * MIB / 10, 200 * MIB, 3 * H)).severity == "high"  # doubles in 10 h
    assert decide_verdict(feats(200 * MIB / 48, 200 * MIB, 12 * H)).severity == "moderate"  # 2 d


def test_bounded_growth_levelled_is_no_leak_and_undecided_is_inconclusive() -> None:
    base = feats(600 * MIB, 100 * MIB, 180, limit=100 * 1024 * MIB, bounded_delta_bic=50.0, bounded_tau_s=20.0)
    assert decide_verdict(replace(base, bounded_tail_ratio=0.02)).pattern == "warm-up-plateau"
    und = decide_verdict(replace(base, bounded_tail_ratio=0.6, bounded_tau_s=120.0))
    assert und.verdict == "inconclusive" and und.more_duration_s == pytest.approx(3 * 120 - 180)
    # weak evidence for a bend: a leak
    assert decide_verdict(replace(base, bounded_tail_ratio=0.02, bounded_delta_bic=3.0)).verdict == "leak"
    # a bend with a line on top that matters (warm-up over a leak): a leak
    persist = replace(base, bounded_tail_ratio=0.02, persist_delta_bic=40.0, persist_slope_bps=600 * MIB / H)
    assert decide_verdict(persist).verdict == "leak"
    # catastrophic growth is never held back as inconclusive
    fast = replace(base, bounded_tail_ratio=0.6, limit_bytes=120 * MIB)
    assert decide_verdict(fast).verdict == "leak" and decide_verdict(fast).severity == "catastrophic"


def test_steps_and_noise() -> None:
    steps = decide_verdict(feats(40 * MIB * 20, 60 * MIB, 180, step_episodes=4, step_share=0.9))
    assert (steps.verdict, steps.pattern) == ("leak", "step")
    flat = decide_verdict(feats(0.0, 60 * MIB, 180, p_value=0.6))
    assert (flat.verdict, flat.pattern) == ("no_leak", "flat")
    shrink = decide_verdict(feats(-5 * MIB, 60 * MIB, 3600, p_value=1e-4))
    assert (shrink.verdict, shrink.pattern) == ("no_leak", "unknown")
    # a significant fall far below what a rise would need (a few KiB/h on a level baseline) is flat
    dip = decide_verdict(feats(-64 * 1024, 60 * MIB, 3600, p_value=1e-4))
    assert (dip.verdict, dip.pattern, dip.reason) == ("no_leak", "flat", "baseline falls by less than what counts")
    # rising, but the interval's low end is far below what counts: not a leak (small) / inconclusive (large)
    wobbly = feats(3 * MIB * 20, 60 * MIB, 180, slope_low_bps=0.0)
    assert decide_verdict(wobbly).verdict == "no_leak"
    assert decide_verdict(replace(wobbly, slope_bps=20 * MIB * 20 / H)).verdict == "inconclusive"


def test_detect_limit_order(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2048000 kB\nMemFree: 1 kB\n")
    got = detect_limit(7, unit="gw.service", memory_max=lambda u: 2 << 30, cgroup_limit=lambda p: 1 << 30,
                       meminfo=str(meminfo))
    assert got == MemoryLimit(2 << 30, "MemoryMax of gw.service (systemctl show)")
    got = detect_limit(7, unit="gw.service", memory_max=lambda u: None, cgroup_limit=lambda p: 1 << 30,
                       meminfo=str(meminfo))
    assert got.bytes == 1 << 30 and "cgroup" in got.source
    got = detect_limit(7, memory_max=lambda u: None, cgroup_limit=lambda p: None, meminfo=str(meminfo))
    assert got.bytes == 2048000 * 1024 and got.source.startswith("MemTotal of the target host")
    remote = detect_limit(None, local=False, meminfo=str(meminfo))
    assert remote.bytes is None and remote.source.startswith("unknown")
    assert detect_limit(7, cgroup_limit=lambda p: None, meminfo=str(tmp_path / "none")).bytes is None


def test_unit_memory_max_parses_systemctl() -> None:
    def run(out: str, rc: int = 0):  # type: ignore[no-untyped-def]
        return lambda *a, **k: subprocess.CompletedProcess(a, rc, out, "")

    assert unit_memory_max("gw.service", systemctl="/bin/true", run=run("2147483648\n")) == 2 << 30
    assert unit_memory_max("gw.service", systemctl="/bin/true", run=run("infinity\n")) is None
    assert unit_memory_max("gw.service", systemctl="/bin/true", run=run("", 1)) is None


def test_header_round_trip() -> None:
    line = MemoryLimit(2 << 30, "MemoryMax of gw.service   (systemctl show)").header_line()
    assert line == "# memory_limit_bytes: 2147483648   memory_limit_source: MemoryMax of gw.service (systemctl show)"
    rec = limit_from_header({"memory_limit_bytes": "2147483648", "memory_limit_source": "MemoryMax of gw"})
    assert rec is not None and rec.bytes == 2 << 30 and rec.source == "MemoryMax of gw (recorded)"
    unknown = limit_from_header({"memory_limit_bytes": "unknown", "memory_limit_source": "unknown: remote"})
    assert unknown is not None and unknown.bytes is None
    assert limit_from_header({}) is None


def test_sampler_records_the_target_limit_and_replay_uses_it(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A real process sampled by the real sampler; the replay never reads this host's memory."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "s.csv"
        Sampler(out, query=ProcessQuery(pid=proc.pid), sources=("psutil",), interval_s=0.2, duration_s=1.0,
                progress=False).run()
        expected = detect_limit(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    text = out.read_text()
    assert expected.header_line() in text
    df = read_samples(out)
    assert df.attrs["memory_limit"]["bytes"] == expected.bytes

    import psutil

    def fail(*_: object) -> object:
        raise AssertionError("this host's memory was read")

    monkeypatch.setattr(psutil, "virtual_memory", fail)
    a = assess_leak(df, thresholds=LeakThresholds(min_samples=3, min_duration_s=0.5))
    assert a.limit_bytes == expected.bytes and (a.limit_source or "").endswith("(recorded)")
    given = Sampler(tmp_path / "g.csv", query=ProcessQuery(pid=1), sources=("psutil",), interval_s=0.2,
                    duration_s=0.2, progress=False, memory_limit=MemoryLimit(None, "unknown: test"))
    t0 = time.monotonic()
    given.run()
    assert time.monotonic() - t0 < 30
    assert "memory_limit_bytes: unknown   memory_limit_source: unknown: test" in (tmp_path / "g.csv").read_text()


@pytest.mark.parametrize("late_ms", [0, 1, 300])
def test_sixty_samples_a_second_apart_are_decided_despite_timer_jitter(late_ms: int) -> None:
    """`sample --duration 60 --interval 1` on a real process: the first tick can be late by a few ms, so the
    span is 58.99x s; the window (span + one interval) is still the 60 s the default thresholds ask for."""
    import numpy as np
    import pandas as pd

    t = pd.Timestamp("2026-12-05T08:33:36.344Z") + pd.to_timedelta(np.arange(60, dtype=float), unit="s")
    t = t.delete(0).insert(0, t[0] + pd.Timedelta(milliseconds=late_ms))  # the first tick came late
    y = 9_000_000 + 40_000 * np.arange(60.0)  # 40 KB/s: a clear leak
    df = pd.DataFrame({"timestamp": t, "rss_bytes": y})
    a = assess_leak(df)
    assert a.needed is None and a.verdict == "leak", (a.verdict, a.needed)
