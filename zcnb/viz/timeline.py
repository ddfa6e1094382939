"""The evidence timeline shown: its entries as a numbered table and as numbered marks on the memory figure.

:func:`zcnb.report.timeline.build_timeline` gathers the entries from an incident folder. The figure labels
each event with its number in the table (``3 restart``); labels that would collide are moved to another
row above the plot, so none overlaps another. :func:`label_boxes` returns the labels' bounding boxes as
drawn, which the report saves next to the PNG (``figures/timeline_labels.json``) and the tests check.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["KIND_LABELS", "Timeline", "TimelineEntry", "label_boxes", "plot_timeline"]

KIND_LABELS = {
    "onset": "leak onset", "detectable": "leak detectable", "verdict": "verdict recorded", "detection": "verdict recorded",
    "action": "action", "restart": "restart", "recovery": "recovery", "oom-kill": "OOM kill", "crash": "crash",
    "alert": "alert", "alert-resolved": "alert-resolved", "collected": "collected",  # the receiver's own kinds
}
_COLORS = {"onset": "tab:orange", "detectable": "tab:pink", "verdict": "tab:red", "detection": "tab:red",
           "action": "tab:purple", "restart": "black", "recovery": "tab:green", "oom-kill": "darkred",
           "crash": "darkred", "alert": "tab:red", "alert-resolved": "tab:green"}
_LABEL_GID = "zcnb-timeline-label"
_ROW_PT = 13.0  # vertical distance between label rows (font 8 pt: rows never touch)
_GAP_PX = 6.0  # minimum horizontal gap between two labels in one row


@dataclass(frozen=True)
class TimelineEntry:
    time: datetime
    kind: str  # onset | detectable | verdict | action | restart | recovery | oom-kill | crash | alert | alert-resolved | collected
    what: str
    evidence: str

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "kind": self.kind, "what": self.what, "evidence": self.evidence}


@dataclass(frozen=True)
class Timeline:
    """Executed events only, in time order; the numbers shown are positions in ``entries`` (1-based)."""

    entries: tuple[TimelineEntry, ...]

    def to_dict(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries]

    def _repr_html_(self) -> str:
        from ..units import format_time

        if not self.entries:
            return "<p class='zcnb-nodata'>No timeline: no samples, verdict or executed actions in this incident.</p>"
        rows = "".join(
            f"<tr><td class='num'>{i}</td><td class='time'>{html.escape(format_time(e.time))}</td>"
            f"<td>{html.escape(e.label)}</td><td class='long'>{html.escape(e.what)}</td><td class='long'>"
            f"{html.escape(e.evidence)}</td></tr>" for i, e in enumerate(self.entries, 1))
        return ("<table class='zcnb timeline'><thead><tr><th>#</th><th>time</th><th>event</th><th>what</th>"
                f"<th>evidence</th></tr></thead><tbody>{rows}</tbody></table>")


def plot_timeline(timeline: Timeline, samples: pd.DataFrame | None = None, *, column: str = "rss_bytes",
                  dpi: int = 110) -> Figure:
    """Memory (if given) with each timeline entry as a vertical line and a numbered label above the plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.figure import Figure

    entries = timeline.entries
    fig = Figure(figsize=(11, 3.4), dpi=dpi)
    FigureCanvasAgg(fig)  # a renderer to measure the labels with
    ax = fig.add_subplot(1, 1, 1)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.8)
    if samples is not None and column in samples and samples[column].notna().any():
        s = samples[samples["event"] != "gap"]
        ax.plot(s["timestamp"], s[column] / 2**20, color="0.55", lw=1, label=f"{column} (MiB)")
        ax.set_ylabel("MiB")
    xs = [float(date2num(e.time)) for e in entries]  # type: ignore[no-untyped-call]  # matplotlib.dates is unannotated
    line_x: Any = ax.lines[0].get_xdata(orig=False) if ax.lines else None
    data = (float(line_x[0]), float(line_x[-1])) if line_x is not None and len(line_x) else ()
    xs, notes = _clamp(xs, (data[0], data[1]) if data else None)
    for x, e in zip(xs, entries, strict=True):
        ax.axvline(x, color=_COLORS.get(e.kind, "tab:blue"), lw=1.3, ls="--")
    if xs:
        lo, hi = min([*xs, *data]), max([*xs, *data])
        pad = max((hi - lo) * 0.02, 1 / 86400)
        ax.set_xlim(lo - pad, hi + pad)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)
    rows = _place_labels(fig, ax, entries, xs, notes)
    _fit_height(fig, rows)
    ax.set_title("Evidence timeline (numbers as in the table below)", fontsize=10, pad=8 + rows * _ROW_PT)
    for tick in ax.get_xticklabels():
        tick.set_rotation(20)
        tick.set_horizontalalignment("right")
    return fig


def _clamp(xs: list[float], data_range: tuple[float, float] | None) -> tuple[list[float], list[str]]:
    """Events far outside the samples' time range (a verdict recorded an hour later) are drawn at the plot's
    edge with their time in the label, so the memory curve keeps its width."""
    from matplotlib.dates import num2date

    if data_range is None:
        return xs, ["" for _ in xs]
    lo, hi = data_range
    slack = max((hi - lo) * 0.15, 5 / 86400)
    out, notes = [], []
    for x in xs:
        far = x > hi + slack or x < lo - slack
        out.append((hi + slack / 3 if x > hi else lo - slack / 3) if far else x)
        notes.append(f" (at {num2date(x):%H:%M:%S})" if far else "")  # type: ignore[no-untyped-call]
    return out, notes


def _place_labels(fig: Figure, ax: Any, entries: tuple[TimelineEntry, ...], xs: list[float], notes: list[str]) -> int:
    """Put label ``i`` above the axes at its event's x, in the lowest row where it overlaps no other label.

    Rows are offset in points from the axes' top edge, so the row assignment (made on widths measured with
    the figure's renderer) stays valid when the figure height is adjusted afterwards. Returns the row count.
    """
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # the Agg canvas attached above
    order = sorted(range(len(entries)), key=lambda i: xs[i])
    taken: list[list[tuple[float, float]]] = []
    for i in order:
        e = entries[i]
        text = ax.annotate(f"{i + 1} {e.label}{notes[i]}", xy=(xs[i], 1.0), xycoords=("data", "axes fraction"),
                           xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize=8,
                           color=_COLORS.get(e.kind, "tab:blue"), annotation_clip=False, gid=_LABEL_GID,
                           bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})
        box = text.get_window_extent(renderer)
        width_px = fig.get_figwidth() * fig.dpi
        if box.x1 > width_px - 4 or box.x0 < 4:  # near an edge: the label extends inwards from its line
            text.set_horizontalalignment("right" if box.x1 > width_px - 4 else "left")
            box = text.get_window_extent(renderer)
        span = (box.x0 - _GAP_PX / 2, box.x1 + _GAP_PX / 2)
        row = next((r for r, spans in enumerate(taken) if all(span[1] <= a or span[0] >= b for a, b in spans)),
                   len(taken))
        if row == len(taken):
            taken.append([])
        taken[row].append(span)
        text.xyann = (0, 4 + row * _ROW_PT)
    return len(taken)


def _fit_height(fig: Figure, rows: int) -> None:
    """Grow the figure so the label rows and the title fit above the axes (the axes keep their height)."""
    extra_in = (rows * _ROW_PT + 30) / 72.0
    base_in = 2.6  # axes + x labels
    fig.set_size_inches(fig.get_figwidth(), base_in + extra_in)
    h = fig.get_figheight()
    fig.subplots_adjust(bottom=0.75 / h, top=1 - extra_in / h)


def label_boxes(fig: Figure) -> list[dict[str, Any]]:
    """The numbered labels as drawn: ``{"text", "x0", "y0", "x1", "y1"}`` in figure pixels (figure dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()  # type: ignore[no-untyped-call]  # the Agg canvas is unannotated
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]
    out = []
    for ax in fig.axes:
        for t in ax.texts:
            if t.get_gid() == _LABEL_GID:
                b = t.get_window_extent(renderer)
                out.append({"text": t.get_text(), "x0": float(b.x0), "y0": float(b.y0), "x1": float(b.x1),
                            "y1": float(b.y1)})
    return out
