"""Small-multiples figure of a fleet view (matplotlib Figure, no pyplot, no show)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..fleet.view import FleetView

__all__ = ["plot_fleet"]


def plot_fleet(view: FleetView, *, max_panels: int = 24, ncols: int = 4, max_points: int = 600) -> Figure:
    """Small multiples of each instance's memory, in ranked order (leaking first, red)."""
    from matplotlib.figure import Figure

    from ..units import format_bytes

    if view.data is None:
        raise ConfigError("this FleetView holds no data to plot", hint="build it with fleet_view(..., keep_data=True)")
    rows = view.rows[:max_panels]
    n = max(len(rows), 1)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.2 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    groups = dict(tuple(view.data.groupby(view.by, sort=False)))
    colors = {"leak": "#c0392b", "no_leak": "#1e8449"}
    for ax, r in zip(axes.flat, rows):
        sub = groups.get(r.instance)
        if sub is not None:
            s = sub[["timestamp", view.column]].dropna()
            stride = max(1, len(s) // max_points)  # downsample: a panel is ~300 px wide
            s = s.iloc[::stride]
            ax.plot(s["timestamp"], s[view.column] / 2**20, color=colors.get(r.verdict, "#b9770e"), lw=1)
        if view.limit_bytes:
            # Draw the limit only when it is near the data; far away it would flatten every curve.
            limit_mib = view.limit_bytes / 2**20
            if limit_mib <= ax.get_ylim()[1] * 1.5:
                ax.axhline(limit_mib, color="#555", ls="--", lw=0.8)
            else:
                ax.text(0.02, 0.92, f"limit {format_bytes(view.limit_bytes)}", transform=ax.transAxes, fontsize=6)
        ax.set_title(f"{r.instance}\n{r.verdict}, {format_bytes(r.growth_bytes_per_hour)}/h", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("MiB", fontsize=7)
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    shown = f" (top {len(rows)} of {len(view.rows)})" if len(view.rows) > len(rows) else ""
    fig.suptitle(f"Fleet memory by {view.by}{shown}: {view.summary()}", fontsize=9)
    fig.autofmt_xdate()
    return fig
