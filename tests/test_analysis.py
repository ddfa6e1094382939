"""assess_leak on recorded fixtures and exact synthetic series; the ``zcnb analyze`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from zcnb.analysis import LeakThresholds, assess_leak, baseline
from zcnb.analysis._stats import pooled_theil_sen
from zcnb.cli import main
from zcnb.commands.analyze import load_samples
from zcnb.exceptions import AnalysisError

MIB = 1024.0 * 1024.0
SERIES = Path(__file__).parent / "data" / "series"
T = TypeVar("T")
COLS = ["timestamp", "pid", "source", "rss_bytes", "vms_bytes", "uss_bytes", "pss_bytes", "cgroup_bytes",
        "metrics_rss_bytes", "metrics_vms_bytes", "event", "note"]


def known(value: T | None) -> T:
    """The value, asserting the assessment filled it in."""
    assert value is not None
    return value


def frame(t: np.ndarray, y: np.ndarray, *, pid: np.ndarray | None = None, events: list[str] | None = None,
          column: str = "rss_bytes") -> pd.DataFrame:
    """A samples DataFrame in the read_samples layout (docs/CONTRACTS.md)."""
    n = len(t)
    df = pd.DataFrame({c: np.nan for c in COLS}, index=range(n))
    df["timestamp"] = pd.Timestamp("2026-11-28T10:00:00Z") + pd.to_timedelta(t, unit="s")
    df["pid"] = pd.array(pid if pid is not None else np.full(n, 1234), dtype="Int64")
    df["source"] = "psutil"
    df[column] = np.asarray(y, dtype=float)
    df["event"] = events if events is not None else [""] * n
    df["note"] = ""
    return df[COLS]


@pytest.mark.parametrize(("name", "verdict", "pattern"), [
    ("linear", "leak", "linear"),
    ("sawtooth_rising", "leak", "sawtooth-rising"),
    ("step", "leak", "step"),
    ("sawtooth_flat", "no_leak", "sawtooth-flat"),
    ("warmup_plateau", "no_leak", "warm-up-plateau"),
    ("flat", "no_leak", "flat"),
])
def test_recorded_series_verdict_and_pattern(name: str, verdict: str, pattern: str) -> None:
    a = assess_leak(load_samples(SERIES / f"{name}.csv"), available_bytes=2 * 1024**3)
    assert (a.verdict, a.pattern) == (verdict, pattern), a.notes
    assert a.column == "rss_bytes" and any("gap" in n for n in a.notes)
    if verdict == "leak":
        assert a.severity in {"moderate", "low", "high"} and a.time_to_limit_s and a.onset is not None
        assert a.recommended_restart_interval_s and a.recommended_restart_interval_s < a.time_to_limit_s
    else:
        assert a.severity == "none" and a.time_to_limit_s is None and a.onset is None


def test_recorded_leak_rates_match_generation() -> None:
    lin = assess_leak(load_samples(SERIES / "linear.csv"), available_bytes=1024**3)
    lo, hi = known(lin.growth_interval)
    assert lo <= 15 * MIB <= hi  # generated at 15 MiB/h
    saw = assess_leak(load_samples(SERIES / "sawtooth_rising.csv"), available_bytes=1024**3)
    assert len(saw.segments) == 2 and len(saw.restarts) == 1
    assert 10 * MIB < known(saw.growth_bytes_per_hour) < 14 * MIB  # 12 MiB/h baseline, not the 6 MiB GC peaks


def test_restarts_are_segments_fitted_together() -> None:
    t = np.arange(0, 4 * 1800, 10.0)
    seg = (t // 1800).astype(int)
    y = 100 * MIB + 40 * MIB * (t - seg * 1800) / 3600 + np.random.default_rng(3).normal(0, 0.1 * MIB, len(t))
    events = ["restart" if i and seg[i] != seg[i - 1] else "" for i in range(len(t))]
    a = assess_leak(frame(t, y, pid=1000 + seg, events=events), limit_bytes=4 * 1024**3)
    assert len(a.segments) == 4 and len(a.restarts) == 3
    assert a.growth_bytes_per_hour == pytest.approx(40 * MIB, rel=0.03)
    for s in a.segments:
        assert s.growth_bytes_per_hour == pytest.approx(40 * MIB, rel=0.05)
        assert s.fit_end_bytes > s.fit_start_bytes
    # one fit through everything sees sawtooth-like resets and badly underestimates the rate
    assert known(pooled_theil_sen(t, y, np.zeros(len(t), dtype=np.int64))).slope * 3600 < 0.5 * 40 * MIB
    # a pid change alone (no restart event) also starts a segment
    b = assess_leak(frame(t, y, pid=1000 + seg), limit_bytes=4 * 1024**3)
    assert len(b.segments) == 4 and b.growth_bytes_per_hour == pytest.approx(a.growth_bytes_per_hour)


def test_time_to_limit_math_on_exact_line() -> None:
    t = np.arange(0, 7200, 10.0)
    y = 100 * MIB + 10 * MIB * t / 3600  # exact: 100 -> 120 MiB
    a = assess_leak(frame(t, y), limit_bytes=200 * MIB, limit_source="MemoryMax")
    assert a.verdict == "leak" and a.pattern == "linear"
    assert a.growth_bytes_per_hour == pytest.approx(10 * MIB, rel=1e-6)
    assert a.limit_source == "MemoryMax" and a.limit_bytes == 200 * MIB
    end = 100 * MIB + 10 * MIB * t[-1] / 3600
    assert a.time_to_limit_s == pytest.approx((200 * MIB - end) / (10 * MIB) * 3600, rel=1e-6)
    lo, hi = known(a.time_to_limit_interval)
    assert lo == pytest.approx(a.time_to_limit_s, rel=1e-6) and hi == pytest.approx(a.time_to_limit_s, rel=1e-6)
    # restarts keep memory under 0.8 * 200 MiB starting from 100 MiB: 60 MiB at 10 MiB/h = 6 h
    assert a.recommended_restart_interval_s == pytest.approx(6 * 3600, rel=1e-6)
    assert a.severity == "high" and "restart the gateway now" in a.advice


def test_time_to_limit_band_comes_from_growth_interval() -> None:
    t = np.arange(0, 3600, 5.0)
    y = 200 * MIB + 50 * MIB * t / 3600 + np.random.default_rng(5).normal(0, 2 * MIB, len(t))
    a = assess_leak(frame(t, y), limit_bytes=2 * 1024**3)
    lo_rate, hi_rate = known(a.growth_interval)
    soonest, latest = known(a.time_to_limit_interval)
    ttl = known(a.time_to_limit_s)
    assert lo_rate < known(a.growth_bytes_per_hour) < hi_rate
    assert soonest < ttl < known(latest)
    headroom = known(a.limit_bytes) - known(a.current_bytes)
    assert soonest == pytest.approx(headroom / hi_rate * 3600) and latest == pytest.approx(headroom / lo_rate * 3600)
    assert known(a.recommended_restart_interval_s) < ttl


def test_onset_by_change_point() -> None:
    t = np.arange(0, 4 * 3600, 5.0)
    onset = 5400.0
    y = 80 * MIB + np.where(t > onset, (t - onset) * 25 * MIB / 3600, 0) + \
        np.random.default_rng(7).normal(0, 0.3 * MIB, len(t))
    a = assess_leak(frame(t, y), limit_bytes=8 * 1024**3)
    assert a.verdict == "leak" and a.onset is not None
    found = (a.onset - pd.Timestamp("2026-11-28T10:00:00Z")).total_seconds()
    assert abs(found - onset) < 0.03 * t[-1]
    assert a.growth_bytes_per_hour == pytest.approx(25 * MIB, rel=0.05)  # the rate since onset
    assert any("change point" in n for n in a.notes)
    assert a.segments[0].fit_points[0][1] == pytest.approx(80 * MIB, rel=0.02)  # flat before the onset


def test_catastrophic_fast_leak_says_roll_back() -> None:
    t = np.arange(0, 120, 1.0)
    y = 50 * MIB + 1 * MIB * t + np.random.default_rng(1).normal(0, 0.2 * MIB, len(t))
    a = assess_leak(frame(t, y), available_bytes=512 * MIB)
    assert a.verdict == "leak" and a.severity == "catastrophic" and known(a.time_to_limit_s) < 3600
    assert "roll back" in a.advice and known(a.limit_source).startswith("current + available")
    assert a.limit_bytes == pytest.approx(known(a.current_bytes) + 512 * MIB)
    # Same growth, limit ~1.1 h away: the runbook's "within minutes" does not hold, so high, not catastrophic.
    b = assess_leak(frame(t, y), available_bytes=4 * 1024**3)
    assert b.severity == "high" and 3600 < known(b.time_to_limit_s) < 86400 and "roll back" not in b.advice


def test_no_limit_known_projects_nothing_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """host_limit=False: no time to limit, no restart interval, and the text says no limit is known.

    psutil.virtual_memory is replaced by a function that fails, to prove this host's memory is never read.
    """
    import psutil

    def no_host(*_: object) -> object:
        raise AssertionError("host memory must not be read when host_limit=False")

    monkeypatch.setattr(psutil, "virtual_memory", no_host)
    t = np.arange(0, 7200, 10.0)
    y = 100 * MIB + 10 * MIB * t / 3600  # doubles (from ~120 MiB) in ~12 h
    th = LeakThresholds(catastrophic_s=3600.0, high_s=86400.0, moderate_s=7 * 86400.0,
                        short_rise_fraction=0.001, long_rise_fraction=0.001)  # pinned: thresholds may be retuned
    a = assess_leak(frame(t, y), host_limit=False, thresholds=th)
    assert a.verdict == "leak" and a.growth_bytes_per_hour == pytest.approx(10 * MIB, rel=1e-6)
    assert a.limit_bytes is None and a.limit_source is None
    assert a.time_to_limit_s is None and a.time_to_limit_interval is None
    # no limit: restart before the baseline grows by half its post-restart level (100 MiB -> 5 h at 10 MiB/h)
    assert a.recommended_restart_interval_s == pytest.approx(0.5 * 100 * MIB / (10 * MIB) * 3600, rel=0.01)
    assert a.severity == "high"  # doubling in ~12 h, under high_s: not "none", not "low" as a 1e18 ceiling gave
    assert "no memory limit is known" in a.advice and "12.0 h" in a.advice
    slow = assess_leak(frame(t, 100 * MIB + 0.5 * MIB * t / 3600), host_limit=False, thresholds=th)
    assert slow.verdict == "leak" and slow.severity == "low"  # doubling in ~8 d, over moderate_s
    assert any(n.startswith("no memory limit known") for n in a.notes)
    assert dict(a.rows())["restart every"] == "5.0 h"
    rows = dict(a.rows())
    assert rows["limit"] == "none known" and rows["time to limit"] == "not projected (no limit known)"
    d = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert d["limit_bytes"] is None and d["time_to_limit_s"] is None and "none known" in a._repr_html_()
    # A fast leak is still catastrophic on doubling time alone.
    fast = assess_leak(frame(np.arange(0, 120, 1.0), 50 * MIB + MIB * np.arange(0, 120, 1.0)), host_limit=False)
    assert fast.severity == "catastrophic" and fast.time_to_limit_s is None
    # No leak: nothing to project either, and the limit still reads "none known".
    flat = assess_leak(frame(t, np.full(len(t), 100 * MIB)), host_limit=False)
    assert flat.verdict == "no_leak" and flat.limit_bytes is None and dict(flat.rows())["limit"] == "none known"


def test_no_host_limit_still_uses_a_given_limit_or_available_memory() -> None:
    t = np.arange(0, 7200, 10.0)
    y = 100 * MIB + 10 * MIB * t / 3600
    given = assess_leak(frame(t, y), limit_bytes=200 * MIB, host_limit=False)
    assert given.limit_bytes == 200 * MIB and given.time_to_limit_s == pytest.approx(8 * 3600, rel=1e-3)
    avail = assess_leak(frame(t, y), available_bytes=80 * MIB, host_limit=False)
    assert avail.limit_bytes == pytest.approx(known(avail.current_bytes) + 80 * MIB)
    assert known(avail.time_to_limit_s) == pytest.approx(8 * 3600, rel=1e-3)
    # Nothing given and nothing recorded: the limit is unknown (never this host's memory), whatever host_limit says.
    for flag in (True, False):
        host = assess_leak(frame(t, y), host_limit=flag)
        assert host.limit_bytes is None and host.time_to_limit_s is None


def test_small_but_significant_growth_is_not_a_leak() -> None:
    t = np.arange(0, 6 * 3600, 10.0)
    y = 500 * MIB + 0.2 * MIB * t / 3600 + np.random.default_rng(2).normal(0, 0.01 * MIB, len(t))
    a = assess_leak(frame(t, y), available_bytes=1024**3)
    assert known(a.p_value) < 0.05 and a.verdict == "no_leak"
    assert any("below the" in n and "counts for a window this long" in n for n in a.notes)
    strict = assess_leak(frame(t, y), available_bytes=1024**3,
                         thresholds=LeakThresholds(short_rise_fraction=0.001, long_rise_fraction=0.001))
    assert strict.verdict == "leak"


def test_short_series_is_inconclusive_with_needed() -> None:
    t = np.arange(0, 12, 1.0)
    a = assess_leak(frame(t, 50 * MIB + 1e5 * t), limit_bytes=1024**3)
    assert a.verdict == "inconclusive" and a.severity == "none" and a.needed is not None
    assert a.needed.more_samples == 8 and a.needed.more_duration_s >= 48
    assert "more samples" in str(a.needed) and "Not enough data" in a.advice
    json.dumps(a.to_dict(), allow_nan=False)


def test_twenty_samples_suffice_when_they_span_a_minute() -> None:
    t = np.arange(0, 100, 5.0)
    a = assess_leak(frame(t, 50 * MIB + 0.5 * MIB * t), limit_bytes=1024**3)
    assert a.n_samples == 20 and a.verdict == "leak"


@pytest.mark.parametrize(("make", "match"), [
    (lambda: frame(np.arange(0.0), np.arange(0.0)), "empty"),
    (lambda: frame(np.arange(1.0), np.ones(1) * MIB), "one measured sample"),
    (lambda: frame(np.arange(30.0), np.full(30, np.nan)), "no memory column has data"),
    (lambda: frame(np.array([0, 1, 2, 1, 4.0] * 6), np.ones(30) * MIB), "backwards"),
    (lambda: frame(np.arange(30.0), np.full(30, np.inf)), "infinite"),
    (lambda: frame(np.arange(30.0), -np.ones(30)), "negative"),
    (lambda: frame(np.arange(30.0), np.ones(30)).drop(columns="timestamp"), "timestamp"),
    (lambda: frame(np.arange(30.0), np.ones(30)).assign(timestamp="not a time"), "not times"),
    (lambda: [1, 2, 3], "DataFrame"),
])
def test_bad_input_raises_analysis_error(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(AnalysisError, match=match) as info:
        assess_leak(make())
    assert info.value.hint  # says what to do


def test_unknown_column_and_bad_limit() -> None:
    df = frame(np.arange(60.0), np.full(60, 50 * MIB))
    with pytest.raises(AnalysisError, match="not in the samples"):
        assess_leak(df, column="nope_bytes")
    with pytest.raises(AnalysisError, match="limit_bytes"):
        assess_leak(df, limit_bytes=-1)


def test_column_fallback_and_nan_rows() -> None:
    t = np.arange(0, 600, 5.0)
    y = 60 * MIB + 30 * MIB * t / 3600
    df = frame(t, y, column="metrics_rss_bytes")
    df.loc[5:9, "metrics_rss_bytes"] = np.nan
    a = assess_leak(df, limit_bytes=1024**3)
    assert a.column == "metrics_rss_bytes" and a.n_samples == len(t) - 5
    assert any("metrics_rss_bytes used" in n for n in a.notes) and any("without" in n for n in a.notes)


def test_pooled_theil_sen_matches_scipy_on_one_segment() -> None:
    from scipy.stats import theilslopes

    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 1000, 300))
    y = 3.0 * t + rng.normal(0, 50, 300)
    y[::7] = y[::7].round(-2)  # ties in y
    ours = known(pooled_theil_sen(t, y, np.zeros(300, dtype=np.int64)))
    ref = theilslopes(y, t, 0.95)
    assert ours.slope == pytest.approx(ref.slope)
    assert (ours.low, ours.high) == pytest.approx((ref.low_slope, ref.high_slope))
    assert ours.p_value < 1e-10 and 0.5 < ours.tau <= 1


def test_to_dict_is_json_safe_and_html_has_the_table() -> None:
    a = assess_leak(load_samples(SERIES / "sawtooth_rising.csv"), limit_bytes=512 * MIB, limit_source="MemoryMax")
    d = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert d["verdict"] == "leak" and d["start"].startswith("2026-11-28T10:00:00")
    assert len(d["segments"]) == 2 and d["restarts"][0].startswith("2026-11-28T10:35")
    html = a._repr_html_()
    for text in ("leak", "sawtooth-rising", "MiB/h", "MemoryMax", a.severity, "rss_bytes", "time to limit"):
        assert text in html


def test_baseline_helper_returns_troughs() -> None:
    df = load_samples(SERIES / "sawtooth_flat.csv")
    base = baseline(df)
    raw = df["rss_bytes"].dropna()
    assert 20 < len(base) < 80 and base.index.tz is not None
    assert base.median() < raw.quantile(0.2)  # troughs, not the GC peaks


@pytest.mark.slow
def test_week_at_one_hz_runs() -> None:
    n = 604_800
    t = np.arange(n, dtype=float)
    y = 64 * MIB + 2 * MIB * t / 3600 + 6 * MIB * ((t % 60) / 60) + np.random.default_rng(0).normal(0, 0.1 * MIB, n)
    a = assess_leak(frame(t, y), limit_bytes=4 * 1024**3)
    assert a.verdict == "leak" and a.pattern == "sawtooth-rising" and a.n_samples == n
    assert a.growth_bytes_per_hour == pytest.approx(2 * MIB, rel=0.02)


@pytest.mark.parametrize(("name", "code"), [("linear", 1), ("flat", 0)])
def test_cli_exit_codes_png_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                     code: int) -> None:
    csv = tmp_path / f"{name}.csv"
    csv.write_bytes((SERIES / f"{name}.csv").read_bytes())
    out = tmp_path / "a.json"
    assert main(["analyze", str(csv), "--limit", "1GiB", "--json", str(out)]) == code
    text = capsys.readouterr().out
    assert "verdict" in text and "time to limit" in text
    png = Path(str(csv) + ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (png.stat().st_mode & 0o777) == 0o600
    assert json.loads(out.read_text())["limit_source"] == "--limit"


def test_cli_inconclusive_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "short.csv"
    csv.write_text("timestamp,rss_bytes\n" + "".join(
        f"2026-11-28T10:00:{i:02d}+00:00,{50_000_000 + i}\n" for i in range(10)))
    assert main(["analyze", str(csv), "--no-png"]) == 3
    assert "needed" in capsys.readouterr().out
    assert main(["analyze", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["analyze", str(csv), "--limit", "lots"]) == 2


@pytest.mark.slow
def test_cli_subprocess_end_to_end(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    csv.write_bytes((SERIES / "sawtooth_rising.csv").read_bytes())
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "zcnb", "analyze", str(csv), "--png", str(tmp_path / "f.png")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "sawtooth-rising" in proc.stdout and (tmp_path / "f.png").exists()
    assert "MiB/h" in proc.stdout
