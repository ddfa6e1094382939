"""Figures and a widget for stage 03: skill counts, memory-vs-activity correlation, log filter."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..logs.skills import canonical_skill, skill_mentions

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..analysis.correlate import Correlation
    from ..logs.message import LogEntry
    from ..logs.summary import LogSummary

__all__ = ["entries_frame", "filter_entries", "log_explorer", "plot_correlation", "plot_skills"]

def _figure(width: float, height: float) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")  # no pyplot: no global state, works headless
    return fig, fig.add_subplot()


def plot_skills(summary: LogSummary, *, top: int = 15) -> Figure:
    """Horizontal bar chart of skill invocations (most first), as counted by :func:`zcnb.logs.summarize_logs`."""
    fig, ax = _figure(7, 0.4 * max(min(len(summary.skills), top), 2) + 1.2)
    data = summary.skills.head(top).iloc[::-1]
    if len(data):
        ax.barh(data["skill"], data["count"], color="#4c72b0")
        for y, v in enumerate(data["count"]):
            ax.annotate(str(int(v)), (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no skill invocations in the log", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("invocations")
    ax.set_title(f"Skill invocations: {summary.unit or 'all units'}")
    return fig


def plot_correlation(corr: Correlation, *, top: int = 8) -> Figure:
    """Bytes retained per event (95% interval) and share of the growth, per activity."""
    fig, ax = _figure(8, 0.45 * max(min(len(corr.table), top), 2) + 1.5)
    if not len(corr.table):
        ax.text(0.5, 0.5, corr.statement, ha="center", va="center", wrap=True, transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    t = corr.table.head(top).iloc[::-1]
    kib = t["bytes_per_event"] / 1024
    err = [(t["bytes_per_event"] - t["low"]).clip(lower=0) / 1024, (t["high"] - t["bytes_per_event"]).clip(lower=0) / 1024]
    ax.barh(t["activity"], kib, xerr=err, color="#dd8452", capsize=3)
    for y, (v, share) in enumerate(zip(kib, t["share"])):
        ax.annotate(f"{share:.0%} of growth", (v, y), xytext=(4, 6), textcoords="offset points", fontsize=8)
    ax.set_xlabel("KiB retained per event (95% bootstrap interval)")
    ax.set_title(f"What explains the growth? R² {corr.r2:.2f}, {corr.n_buckets} buckets ({corr.evidence})")
    return fig


def entries_frame(entries: Iterable[LogEntry], *, limit: int = 200_000) -> pd.DataFrame:
    """Entries as a DataFrame (timestamp, pid, level, tag, skill, message), at most ``limit`` rows."""
    import pandas as pd

    rows = []
    for i, e in enumerate(entries):
        if i >= limit:
            break
        mentions = skill_mentions(e.message)
        skill = mentions[0][1] if mentions else None
        rows.append({"timestamp": e.timestamp, "pid": e.pid, "level": e.level, "tag": e.tag, "skill": skill,
                     "message": e.message})
    df = pd.DataFrame(rows, columns=["timestamp", "pid", "level", "tag", "skill", "message"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def filter_entries(df: pd.DataFrame, *, skill: str | None = None, level: str | None = None,
                   start: datetime | str | None = None, end: datetime | str | None = None) -> pd.DataFrame:
    """Rows of :func:`entries_frame` for one skill / level and a time window (inclusive)."""
    import pandas as pd

    mask = pd.Series(True, index=df.index)
    if skill:
        mask &= df["skill"] == canonical_skill(skill)
    if level:
        mask &= df["level"] == level
    if start is not None:
        mask &= df["timestamp"] >= _utc(start)
    if end is not None:
        mask &= df["timestamp"] <= _utc(end)
    return df[mask]


def _utc(value: Any) -> Any:
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def log_explorer(df: pd.DataFrame, *, rows: int = 25) -> Any:
    """ipywidgets filter by skill, level and time window over an :func:`entries_frame` table."""
    import ipywidgets as w
    import pandas as pd

    skills = ["(any)"] + sorted(s for s in df["skill"].dropna().unique())
    levels = ["(any)", "error", "warning", "info", "debug", "none"]
    times = sorted(df["timestamp"].dropna().dt.floor("1min").unique())
    labels = [pd.Timestamp(t).strftime("%H:%M") for t in times] or ["-"]
    skill_w = w.Dropdown(options=skills, description="skill")
    level_w = w.Dropdown(options=levels, description="level")
    time_w = w.SelectionRangeSlider(options=[(lab, i) for i, lab in enumerate(labels)],
                                    index=(0, len(labels) - 1), description="time", layout=w.Layout(width="60%"))
    out = w.Output()

    def refresh(*_: Any) -> None:
        lo, hi = time_w.value
        start = times[lo] if times else None
        end = (times[hi] + pd.Timedelta("1min") - pd.Timedelta("1ns")) if times else None
        sel = filter_entries(df, skill=None if skill_w.value == "(any)" else skill_w.value,
                             level=None if level_w.value == "(any)" else level_w.value, start=start, end=end)
        # The outputs are set as widget state, not captured with `with out:`: a capture makes nbclient (papermill,
        # `zcnb report`) answer on the kernel's shell channel while it waits there for the cell's reply, which
        # can stall the run until the cell timeout (jupyter/nbclient#312).
        head = sel.head(rows)
        out.outputs = (
            {"output_type": "stream", "name": "stdout", "text": f"{len(sel)} of {len(df)} lines\n"},
            {"output_type": "display_data", "metadata": {},
             "data": {"text/html": head.to_html(index=False), "text/plain": head.to_string(index=False)}},
        )

    for widget in (skill_w, level_w, time_w):
        widget.observe(refresh, names="value")
    refresh()
    return w.VBox([w.HBox([skill_w, level_w]), time_w, out])
