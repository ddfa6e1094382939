"""Matplotlib figures of memory samples; draws what :mod:`zcnb.analysis` computed, computes nothing itself.

Headless-safe: figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI backend).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import AnalysisError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..analysis import LeakAssessment

__all__ = ["SCALE_RATIO", "SOURCE_COLUMNS", "plot_memory", "save_figure", "scale_groups"]

SOURCE_COLUMNS = {
    "rss_bytes": "RSS (psutil)",
    "uss_bytes": "USS",
    "pss_bytes": "PSS",
    "metrics_rss_bytes": "RSS (/metrics)",
    "cgroup_bytes": "cgroup",
}
_MIB = 1024.0 * 1024.0
SCALE_RATIO = 5.0  # sources whose medians differ more than this get separate panels
_MAX_POINTS = 4000  # per source; min/max envelope keeps spikes visible when decimating


def _envelope(ts: Any, ys: Any) -> tuple[Any, Any]:
    """Decimate to at most ~_MAX_POINTS keeping each bucket's min and max (so peaks and troughs stay)."""
    import numpy as np

    n = len(ys)
    size = int(np.ceil(n / (_MAX_POINTS / 2)))
    if size <= 1:
        return ts, ys
    k = n // size
    yb = ys[: k * size].reshape(k, size)
    tb = ts[: k * size].reshape(k, size)
    lo, hi = yb.argmin(axis=1), yb.argmax(axis=1)
    first = np.minimum(lo, hi)
    second = np.maximum(lo, hi)
    rows = np.arange(k)
    t_out = np.column_stack((tb[rows, first], tb[rows, second])).ravel()
    y_out = np.column_stack((yb[rows, first], yb[rows, second])).ravel()
    return t_out, y_out


def _gap_spans(df: pd.DataFrame) -> list[tuple[Any, Any]]:
    """(start, end) of each run of gap rows, ending at the next measured row."""
    if "event" not in df.columns:
        return []
    gap = df["event"].fillna("").astype(str).to_numpy() == "gap"
    times = df["timestamp"].to_numpy()
    spans, i, n = [], 0, len(gap)
    while i < n:
        if gap[i]:
            j = i
            while j < n and gap[j]:
                j += 1
            spans.append((times[i], times[j] if j < n else times[j - 1]))
            i = j
        else:
            i += 1
    return spans


def plot_memory(df: pd.DataFrame, assessment: LeakAssessment | None = None, *,
                sources: Sequence[str] | None = None, ax: Axes | None = None) -> Figure:
    """Memory over time (MiB) per source, restarts, gaps, baseline, trend, limit and onset.

    ``sources`` are sample columns (default: every column of SOURCE_COLUMNS with data). Sources whose scales
    differ by more than :data:`SCALE_RATIO` (a container-wide cgroup of 600 MiB beside a 20 MiB process)
    get their own panel with its own y axis, so the small one is not flattened to a line at the bottom.
    Pass ``ax`` to draw into an existing axes (one panel); the figure returned is the one that holds it.
    """
    import pandas as pd
    from matplotlib.figure import Figure

    if not isinstance(df, pd.DataFrame) or "timestamp" not in df.columns or len(df) == 0:
        raise AnalysisError("nothing to plot: expected a non-empty samples DataFrame with a timestamp column",
                            hint="pass the DataFrame from zcnb.collect.sampling.read_samples")
    if sources is None:
        sources = [c for c in SOURCE_COLUMNS if c in df.columns and df[c].notna().any()]
    unknown = [s for s in sources if s not in df.columns]
    if unknown:
        raise AnalysisError(f"unknown source column(s): {', '.join(unknown)}",
                            hint=f"choose from: {', '.join(c for c in SOURCE_COLUMNS if c in df.columns)}")
    times = pd.to_datetime(df["timestamp"], utc=True).dt.tz_convert(None).to_numpy()  # naive UTC, labelled UTC
    groups = scale_groups(df, sources) if ax is None else [list(sources)]
    if ax is None:
        fig = Figure(figsize=(10, 4.5 if len(groups) == 1 else 2.0 + 2.4 * len(groups)), layout="constrained")
        axes = list(fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0])
    else:
        root = ax.get_figure(root=True)  # the top Figure even when ax sits in a SubFigure
        if root is None:
            raise AnalysisError("the axes passed as ax belong to no figure", hint="create it with fig.add_subplot()")
        fig, axes = root, [ax]
    fitted = assessment.column if assessment is not None else None
    for panel, cols in zip(axes, groups, strict=True):
        _draw_panel(panel, df, times, cols, assessment if fitted in cols or len(groups) == 1 else None)
    title = "Memory over time"
    if assessment is not None:
        title += f": {assessment.verdict}, {assessment.pattern}, {assessment.growth_text()}"
    if len(groups) > 1:
        title += " (sources on separate scales)"
    axes[0].set_title(title, fontsize=10)
    axes[-1].set_xlabel("time (UTC)")
    return fig



def scale_groups(df: pd.DataFrame, sources: Sequence[str]) -> list[list[str]]:
    """Sources grouped so that within a group the typical (median) values differ by at most SCALE_RATIO x."""
    import pandas as pd

    med = {c: float(pd.to_numeric(df[c], errors="coerce").median()) for c in sources}
    ordered = sorted(sources, key=lambda c: -med[c] if med[c] == med[c] else 0.0)
    groups: list[list[str]] = []
    for c in ordered:
        m = med[c]
        if groups and (m != m or m <= 0 or med[groups[-1][0]] / m <= SCALE_RATIO):
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups


def _draw_panel(ax: Axes, df: pd.DataFrame, times: Any, cols: Sequence[str], assessment: LeakAssessment | None) -> None:
    import numpy as np
    import pandas as pd

    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        ok = ~np.isnan(values)
        t_env, y_env = _envelope(times[ok], values[ok] / _MIB)
        ax.plot(t_env, y_env, lw=0.9, label=SOURCE_COLUMNS.get(col, col))
    events = df["event"].fillna("").astype(str).to_numpy() if "event" in df.columns else np.array([])
    for i, t in enumerate(times[events == "restart"] if len(events) else []):
        ax.axvline(t, color="tab:purple", ls="--", lw=1, label="restart" if i == 0 else None)
    for i, (a, b) in enumerate(_gap_spans(df.assign(timestamp=times))):
        ax.axvspan(a, b, color="0.85", alpha=0.6, lw=0, label="gap" if i == 0 else None)
    if assessment is not None:
        _draw_assessment(ax, df, assessment, times)
    ax.set_ylabel("memory (MiB)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _draw_assessment(ax: Axes, df: pd.DataFrame, a: LeakAssessment, times: Any) -> None:
    import numpy as np
    import pandas as pd

    from ..analysis import baseline
    from ..exceptions import ZcnbError

    try:
        base = baseline(df, column=a.column, thresholds=a.thresholds)
    except ZcnbError:
        base = None
    if base is not None and len(base):
        bt = base.index.tz_convert(None).to_numpy()
        ax.plot(bt, base.to_numpy() / _MIB, ".", ms=3, color="black", alpha=0.6, label="baseline")
    for i, seg in enumerate(a.segments):
        if seg.fit_points:
            xs = [pd.Timestamp(t).tz_convert(None) for t, _ in seg.fit_points]
            ax.plot(xs, [v / _MIB for _, v in seg.fit_points], color="tab:red", lw=1.6,
                    label="trend" if i == 0 else None)
    top = float(np.nanmax(ax.get_ylim()))
    if a.limit_bytes is not None:
        limit = a.limit_bytes / _MIB
        if limit <= 1.5 * top:
            ax.axhline(limit, color="tab:red", ls=":", lw=1.2, label=f"limit ({a.limit_source})")
        else:  # far above the data: a line there would flatten the curve; say it in text instead
            ax.annotate(f"limit {limit:,.0f} MiB ({a.limit_source}) off scale", xy=(0.99, 0.98),
                        xycoords="axes fraction", ha="right", va="top", fontsize=8, color="tab:red")
    if a.onset is not None:
        ax.axvline(pd.Timestamp(a.onset).tz_convert(None), color="darkgreen", lw=1.4, ls="-.", label="onset")


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (mode 0600, atomic) and return the path."""
    from ..files import write_private

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return write_private(path, buf.getvalue())
