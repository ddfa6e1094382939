"""The evidence timeline shown: its entries as a table and as marks on the memory figure.

:func:`zcnb.report.timeline.build_timeline` gathers the entries from an incident folder.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Timeline", "TimelineEntry", "plot_timeline"]


@dataclass(frozen=True)
class TimelineEntry:
    time: datetime
    kind: str  # onset | detectable | detection | action | restart | recovery | oom-kill | alert | alert-resolved | collected
    what: str
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "kind": self.kind, "what": self.what, "evidence": self.evidence}


@dataclass(frozen=True)
class Timeline:
    entries: tuple[TimelineEntry, ...]

    def to_dict(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries]

    def _repr_html_(self) -> str:
        if not self.entries:
            return "<p>No timeline: no samples, verdict or actions in this incident folder.</p>"
        rows = "".join(
            f"<tr><td>{e.time:%Y-%m-%d %H:%M:%S} UTC</td><td>{html.escape(e.kind)}</td><td>{html.escape(e.what)}</td>"
            f"<td>{html.escape(e.evidence)}</td></tr>" for e in self.entries)
        return ("<table class='zcnb timeline'><thead><tr><th>time</th><th>event</th><th>what</th><th>evidence</th>"
                f"</tr></thead><tbody>{rows}</tbody></table>")


def plot_timeline(timeline: Timeline, samples: pd.DataFrame | None = None, *, column: str = "rss_bytes") -> Any:
    """Memory (if given) with the timeline's events marked and labelled."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    colors = {"onset": "tab:orange", "detectable": "tab:pink", "detection": "tab:red", "action": "tab:purple", "restart": "black",
              "recovery": "tab:green", "oom-kill": "darkred", "alert": "tab:red", "alert-resolved": "tab:green"}
    if samples is not None and column in samples and samples[column].notna().any():
        s = samples[samples["event"] != "gap"]
        ax.plot(s["timestamp"], s[column] / 2**20, color="0.6", lw=1, label=f"{column} (MiB)")
        ax.set_ylabel("MiB")
    shown = [e for e in timeline.entries if not (e.kind == "action" and "(dry run)" in e.what)]
    from matplotlib.dates import date2num

    for i, e in enumerate(shown):
        x = float(date2num(e.time))  # type: ignore[no-untyped-call]  # matplotlib.dates is unannotated
        ax.axvline(x, color=colors.get(e.kind, "tab:blue"), lw=1.5, ls="--")
        ax.annotate(e.kind, xy=(e.time, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                    fontsize=8, color=colors.get(e.kind, "tab:blue"), xytext=(-2, -4 - (i % 2) * 40),
                    textcoords="offset points")
    ax.set_title("Evidence timeline")
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
