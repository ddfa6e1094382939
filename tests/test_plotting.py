"""plot_memory / save_figure: real matplotlib (Agg, no pyplot) on recorded and synthetic series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from zcnb.analysis import assess_leak
from zcnb.commands.analyze import load_samples
from zcnb.exceptions import AnalysisError
from zcnb.viz.memory import plot_memory, save_figure

MIB = 1024.0 * 1024.0
SERIES = Path(__file__).parent / "data" / "series"


def _labels(fig: Figure) -> list[str]:
    legend = fig.axes[0].get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def test_plot_with_assessment_marks_everything(tmp_path: Path) -> None:
    df = load_samples(SERIES / "sawtooth_rising.csv")
    a = assess_leak(df, limit_bytes=70 * MIB, limit_source="MemoryMax")
    fig = plot_memory(df, a)
    labels = _labels(fig)
    for expected in ("RSS (psutil)", "USS", "restart", "gap", "baseline", "trend", "limit (MemoryMax)", "onset"):
        assert expected in labels, labels
    ax = fig.axes[0]
    assert ax.get_ylabel() == "memory (MiB)" and "sawtooth-rising" in ax.get_title()
    limit_lines = [ln for ln in ax.get_lines() if ln.get_label() == "limit (MemoryMax)"]
    assert np.asarray(limit_lines[0].get_ydata())[0] == pytest.approx(70.0)
    rss = next(ln for ln in ax.get_lines() if ln.get_label() == "RSS (psutil)")
    assert 45 < np.nanmin(rss.get_ydata()) and np.nanmax(rss.get_ydata()) < 65  # MiB, not bytes
    path = save_figure(fig, tmp_path / "sub" / "m.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and (path.stat().st_mode & 0o777) == 0o600


def test_far_limit_is_text_not_a_line_and_sources_filter() -> None:
    df = load_samples(SERIES / "linear.csv")
    a = assess_leak(df, limit_bytes=64 * 1024**3)
    fig = plot_memory(df, a, sources=["uss_bytes"])
    labels = _labels(fig)
    assert "USS" in labels and "RSS (psutil)" not in labels and not any(x.startswith("limit") for x in labels)
    assert any("off scale" in t.get_text() for t in fig.axes[0].texts)


def test_plot_without_assessment_and_into_given_axes() -> None:
    df = load_samples(SERIES / "flat.csv")
    outer = Figure()
    ax = outer.add_subplot()
    fig = plot_memory(df, ax=ax)
    assert fig is outer and "trend" not in _labels(fig)


def test_big_series_is_decimated_keeping_extremes() -> None:
    n = 200_000
    t = np.arange(n, dtype=float)
    y = 50 * MIB + np.zeros(n)
    y[123_457] = 90 * MIB  # a single spike must survive decimation
    df = pd.DataFrame({"timestamp": pd.Timestamp("2026-11-28", tz="UTC") + pd.to_timedelta(t, unit="s"),
                       "rss_bytes": y, "event": ""})
    fig = plot_memory(df)
    line = fig.axes[0].get_lines()[0]
    ydata = np.asarray(line.get_ydata())
    assert len(ydata) <= 4100 and np.max(ydata) == pytest.approx(90.0)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(AnalysisError, match="nothing to plot"):
        plot_memory(pd.DataFrame())
    df = load_samples(SERIES / "flat.csv")
    with pytest.raises(AnalysisError, match="unknown source"):
        plot_memory(df, sources=["swap_bytes"])
