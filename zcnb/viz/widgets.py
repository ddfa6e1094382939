"""ipywidgets explorer for memory samples: pick a time window and a source, re-assess, redraw.

Works without a browser: the plot is put into the Output widget's ``outputs`` as a PNG, the verdict
into an HTML widget, so tests (and papermill) can drive it by setting widget values.
"""

from __future__ import annotations

import base64
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..analysis import COLUMN_ORDER, LeakAssessment, assess_leak
from ..exceptions import AnalysisError, ZcnbError

__all__ = ["MemoryExplorer", "memory_explorer"]

_MAX_STOPS = 300  # slider positions: enough resolution, cheap to sync to the browser


class MemoryExplorer(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no stubs: VBox is Any
    """Range slider over time + source dropdown; each change re-runs assess_leak on the window."""

    def __init__(self, df: pd.DataFrame, assessment: LeakAssessment | None = None, *,
                 limit_bytes: float | None = None, available_bytes: float | None = None) -> None:
        if not isinstance(df, pd.DataFrame) or "timestamp" not in df.columns or len(df) < 2:
            raise AnalysisError("the explorer needs a samples DataFrame with at least two rows",
                                hint="pass the DataFrame from zcnb.collect.sampling.read_samples")
        self.df = df
        self.limit_bytes = limit_bytes
        self.available_bytes = available_bytes
        self.assessment: LeakAssessment | None = assessment
        self.error: str | None = None
        self._times = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True))
        sources = [c for c in COLUMN_ORDER if c in df.columns and df[c].notna().any()]
        if not sources:
            raise AnalysisError("no memory column has data", hint="check the sampler's sources")
        step = max(1, len(df) // _MAX_STOPS)
        stops = list(range(0, len(df), step)) + ([len(df) - 1] if (len(df) - 1) % step else [])
        options = [(self._times[i].strftime("%m-%d %H:%M:%S"), i) for i in stops]
        self.window = widgets.SelectionRangeSlider(
            options=options, index=(0, len(options) - 1), description="window", continuous_update=False,
            layout=widgets.Layout(width="95%"))
        first = assessment.column if assessment is not None and assessment.column in sources else sources[0]
        self.source = widgets.Dropdown(options=sources, value=first, description="source")
        self.verdict = widgets.HTML()
        self.plot = widgets.Output()
        super().__init__([widgets.HBox([self.source]), self.window, self.verdict, self.plot])
        self.window.observe(self._changed, names="value")
        self.source.observe(self._changed, names="value")
        self.refresh(reassess=assessment is None)

    def selection(self) -> pd.DataFrame:
        """Rows of the current time window."""
        lo, hi = self.window.value
        return self.df.iloc[lo : hi + 1]

    def _changed(self, change: dict[str, Any]) -> None:
        self.refresh(reassess=True)

    def refresh(self, *, reassess: bool = True) -> None:
        """Re-assess the window (unless told not to) and redraw verdict and plot."""
        from .memory import plot_memory

        window = self.selection()
        self.error = None
        if reassess:
            try:
                self.assessment = assess_leak(window, column=self.source.value, limit_bytes=self.limit_bytes,
                                              available_bytes=self.available_bytes)
            except ZcnbError as exc:  # a window with no usable data: say so, keep the explorer alive
                self.assessment, self.error = None, str(exc)
        a = self.assessment
        self.verdict.value = a._repr_html_() if a is not None else f"<b>cannot assess this window</b>: {self.error}"
        try:
            fig = plot_memory(window, a, sources=[self.source.value])
        except ZcnbError as exc:
            self.plot.outputs = ({"output_type": "stream", "name": "stderr", "text": f"{exc}\n"},)
            return
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        # Setting outputs directly (not `with self.plot:`) works with and without a kernel.
        self.plot.outputs = ({"output_type": "display_data", "metadata": {},
                              "data": {"image/png": png, "text/plain": "<memory plot>"}},)


def memory_explorer(df: pd.DataFrame, assessment: LeakAssessment | None = None, *,
                    limit_bytes: float | None = None, available_bytes: float | None = None) -> MemoryExplorer:
    """Interactive explorer of ``df``: time window slider, source selector, live verdict and plot."""
    return MemoryExplorer(df, assessment, limit_bytes=limit_bytes, available_bytes=available_bytes)
