"""Verdicts on real-process recordings (tests/data/recordings: small Python/C programs sampled by zcnb's
sampler at 1 Hz; labels in manifest.json), long synthetic series for the week case, and the paper cuts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zcnb.analysis import assess_leak
from zcnb.cli import main
from zcnb.collect.samples_csv import read_samples
from zcnb.units import format_duration

REC = Path(__file__).parent / "data" / "recordings"
MANIFEST = json.loads((REC / "manifest.json").read_text())
MIB = 1024.0 * 1024.0
HOUR = 3600.0


def _no_host_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The analyst's machine must never be asked for memory: psutil.virtual_memory fails if called."""
    import psutil

    def fail(*_: object) -> object:
        raise AssertionError("the analysis read this host's memory")

    monkeypatch.setattr(psutil, "virtual_memory", fail)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_recording_gets_the_runbook_class(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_host_memory(monkeypatch)
    spec = MANIFEST[name]
    df = read_samples(REC / f"{name}.csv")
    a = assess_leak(df)
    assert a.verdict in (spec["verdict"], *spec.get("accept", [])), (a.verdict, a.pattern, a.notes)
    recorded = df.attrs["memory_limit"]
    assert a.limit_bytes == recorded["bytes"] and a.limit_source == recorded["source"]
    if a.verdict == "leak":
        assert a.severity in spec["severity"], (a.severity, a.time_to_limit_s, a.notes)
        ttl = a.time_to_limit_s
        assert ttl is not None and a.recommended_restart_interval_s is not None
        # every advice sentence quotes the figures beside it
        assert format_duration(ttl) in a.advice
        if a.severity == "catastrophic":
            assert ttl < HOUR and "roll back" in a.advice
        else:
            assert ttl >= HOUR and "roll back" not in a.advice
        assert a.recommended_restart_interval_s > 0
    elif a.verdict == "inconclusive":
        assert a.needed is not None and a.needed.more_duration_s > 0 and "longer" in a.advice
    else:
        assert a.severity == "none" and a.time_to_limit_s is None


@pytest.mark.parametrize(("name", "pattern"), [
    ("py_sawflat", "sawtooth-flat"), ("py_warmup", "warm-up-plateau"),
    ("py_decel", "warm-up-plateau"), ("c_decel", "warm-up-plateau"), ("py_linear", "linear"),
    ("c_linear", "linear"), ("py_flat_60", "flat"),
])
def test_recording_pattern(name: str, pattern: str) -> None:
    assert assess_leak(read_samples(REC / f"{name}.csv")).pattern == pattern


def test_fast_leak_with_2_gib_limit_is_high_not_catastrophic() -> None:
    """~1 GiB/h towards a recorded 2 GiB MemoryMax: limit in ~2 h, so "restart now", not "roll back now"."""
    a = assess_leak(read_samples(REC / "py_fast_2g.csv"))
    assert a.limit_bytes == 2 * 1024**3 and "MemoryMax" in (a.limit_source or "")
    assert 0.7 * 1024 * MIB < (a.growth_bytes_per_hour or 0) < 1.4 * 1024 * MIB
    assert a.severity == "high" and 1 * HOUR < (a.time_to_limit_s or 0) < 3 * HOUR
    assert "restart the gateway now" in a.advice


def test_decelerating_cache_in_a_short_window_says_how_long_to_sample() -> None:
    a = assess_leak(read_samples(REC / "py_decel_short.csv"))  # tau 120 s, 90 s window
    assert a.verdict == "inconclusive" and a.needed is not None
    assert a.needed.more_duration_s >= 45 and format_duration(a.needed.more_duration_s) in a.advice


def test_steps_of_a_retaining_python_process_are_a_leak() -> None:
    """10 MiB kept every 30-60 s under ~4 MiB of churn: a leak, though the last step may come early."""
    for name in ("py_step", "py_step_2g"):
        a = assess_leak(read_samples(REC / f"{name}.csv"))
        assert a.verdict == "leak", a.notes
        assert 100 * MIB < (a.growth_bytes_per_hour or 0) < 2000 * MIB


def test_same_recording_same_answer_on_any_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_host_memory(monkeypatch)
    first = assess_leak(read_samples(REC / "py_linear.csv")).to_dict()
    second = assess_leak(read_samples(REC / "py_linear.csv")).to_dict()
    assert first == second and first["limit_source"].startswith("MemTotal of the target host")


def test_without_a_recorded_limit_it_is_unknown_never_this_host(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _no_host_memory(monkeypatch)
    text = (REC / "py_fast_2g.csv").read_text()
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(ln for ln in text.splitlines() if "memory_limit" not in ln) + "\n")
    a = assess_leak(read_samples(bare))
    assert a.verdict == "leak" and a.limit_bytes is None and a.time_to_limit_s is None
    assert "no memory limit is known" in a.advice and dict(a.rows())["limit"] == "none known"
    given = assess_leak(read_samples(bare), limit_bytes=2 * 1024**3, limit_source="--limit")
    assert given.severity == "high" and given.limit_source == "--limit"


def _frame(t: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.Timestamp("2026-11-20T00:00:00Z") + pd.to_timedelta(t, unit="s"),
                         "pid": pd.array(np.full(len(t), 4242), dtype="Int64"), "rss_bytes": y,
                         "event": [""] * len(t)})


@pytest.mark.slow
def test_gradual_week_is_a_low_severity_leak_with_a_restart_interval() -> None:
    """The runbook's "leak gradual over days": +30 % in a week at 1 Hz (176 KiB/h on 100 MB)."""
    n = 7 * 86400
    t = np.arange(n, dtype=float)
    y = 100e6 + 30e6 * t / t[-1] + np.random.default_rng(18).normal(0, 0.4 * MIB, n)
    a = assess_leak(_frame(t, y))
    assert a.verdict == "leak" and a.severity == "low", a.notes
    assert (a.growth_bytes_per_hour or 0) == pytest.approx(30e6 / (7 * 24), rel=0.05)
    assert a.recommended_restart_interval_s is not None and "routine restarts every" in a.advice
    week_2g = assess_leak(_frame(t, y), limit_bytes=2 * 1024**3, limit_source="MemoryMax")
    assert week_2g.severity == "low" and (week_2g.time_to_limit_s or 0) > 7 * 86400
    assert format_duration(week_2g.time_to_limit_s) in week_2g.advice


def test_relative_growth_in_a_minute_is_not_a_leak() -> None:
    """0.3 % in a minute (a 100 MB process growing 300 KB) is page/arena jitter, not a leak."""
    t = np.arange(60, dtype=float)
    y = 100e6 + 300e3 * t / 59 + np.random.default_rng(1).normal(0, 20e3, 60)
    a = assess_leak(_frame(t, y))
    assert a.verdict == "no_leak" and a.duration_s == 60.0


def test_sixty_samples_at_one_second_reach_the_default_window() -> None:
    """`zcnb sample --duration 60 --interval 1` writes 60 samples: that is the 60 s window the defaults ask for."""
    a = assess_leak(read_samples(REC / "py_flat_60.csv"))
    assert a.verdict == "no_leak" and a.duration_s == pytest.approx(60.0, abs=0.5)
    b = assess_leak(read_samples(REC / "py_fast_60.csv"))
    assert b.verdict == "leak"


def test_segment_count_agrees_with_restarts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = np.arange(0, 30, 1.0)
    df = _frame(t, np.full(30, 50 * MIB))
    df.loc[15:, "pid"] = 4343
    df.loc[15, "event"] = "restart"
    df.loc[22:, "pid"] = 4444
    df.loc[22, "event"] = "restart"
    a = assess_leak(df)
    assert a.verdict == "inconclusive"
    rows = dict(a.rows())
    assert "3 segment(s)" in rows["column"] and any("2 restart(s): 3 segments" in n for n in a.notes)
    csv = tmp_path / "s.csv"
    csv.write_text((REC / "py_flat_60.csv").read_text())
    assert main(["analyze", str(csv), "--no-png"]) == 0
    out = capsys.readouterr().out
    assert "1 segment(s)" in out and "0 segment(s)" not in out and "MemTotal of the target host" in out
