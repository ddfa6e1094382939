"""Turn a samples DataFrame into clean numpy arrays: one memory column, time, segments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import AnalysisError
from ..units import BYTES_MAX, EPOCH_MAX, EPOCH_MIN, epoch_seconds, time_range_text

__all__ = ["COLUMN_ORDER", "Prepared", "pick_column", "prepare"]

# Preference order when the caller does not pick a column (docs/CONTRACTS.md "Analysis").
COLUMN_ORDER = ("rss_bytes", "metrics_rss_bytes", "cgroup_bytes", "pss_bytes", "uss_bytes")

_HINT = "pass the DataFrame from zcnb.collect.sampling.read_samples (columns timestamp, rss_bytes, ..., event)"


@dataclass(frozen=True)
class Prepared:
    """Measured rows only (gaps and unmeasured rows removed), time in seconds since ``t0``."""

    column: str
    t0: pd.Timestamp
    t: np.ndarray  # float64 seconds since t0, non-decreasing
    y: np.ndarray  # float64 bytes
    seg: np.ndarray  # int64 segment id per row, 0..n_segments-1, non-decreasing
    restarts: tuple[pd.Timestamp, ...]
    n_gaps: int
    n_unmeasured: int

    @property
    def n_segments(self) -> int:
        return int(self.seg[-1]) + 1 if len(self.seg) else 0

    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) row ranges of each segment."""
        edges = np.flatnonzero(np.diff(self.seg)) + 1
        starts = np.concatenate(([0], edges))
        stops = np.concatenate((edges, [len(self.seg)]))
        return [(int(a), int(b)) for a, b in zip(starts, stops)]

    def timestamp(self, seconds: float) -> pd.Timestamp:
        return self.t0 + pd.Timedelta(seconds=float(seconds))


def _timestamps(df: pd.DataFrame) -> pd.DatetimeIndex:
    raw = df["timestamp"]
    try:
        if pd.api.types.is_datetime64_any_dtype(raw):
            ts = pd.DatetimeIndex(pd.to_datetime(raw, utc=True))
        else:
            ts = pd.DatetimeIndex(pd.to_datetime(raw, utc=True, format="ISO8601"))
    except (ValueError, TypeError, OverflowError, NotImplementedError, pd.errors.OutOfBoundsDatetime) as exc:
        raise AnalysisError(f"column 'timestamp' holds values that are not times ({type(exc).__name__}: {str(exc)[:120]})",
                            hint="use ISO 8601 timestamps with an offset, e.g. 2026-11-28T10:00:00+00:00; "
                                 + time_range_text()) from None
    missing = np.flatnonzero(ts.isna())
    if len(missing):
        raise AnalysisError(f"{len(missing)} row(s) have no timestamp (first at row {int(missing[0])})",
                            hint="drop or repair those rows; every sample needs a time", row=int(missing[0]))
    epoch = np.asarray(epoch_seconds(ts), dtype=float)
    outside = np.flatnonzero(~((epoch >= EPOCH_MIN) & (epoch < EPOCH_MAX)))
    if len(outside):
        raise AnalysisError(f"{len(outside)} timestamp(s) are out of range (first at row {int(outside[0])}: "
                            f"{ts[int(outside[0])].isoformat()})", hint=time_range_text(), row=int(outside[0]))
    return ts


def pick_column(df: pd.DataFrame, column: str | None, usable: np.ndarray | None = None) -> str:
    """The requested column, or the first of COLUMN_ORDER with data (in ``usable`` rows, default all)."""
    if usable is None:
        usable = np.ones(len(df), dtype=bool)
    if column is not None:
        if column not in df.columns:
            raise AnalysisError(f"column {column!r} is not in the samples",
                                hint=f"choose one of: {', '.join(c for c in df.columns if c.endswith('_bytes'))}",
                                column=column)
        return column
    for name in COLUMN_ORDER:
        if name in df.columns:
            values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if (~np.isnan(values[usable])).any():
                return name
    raise AnalysisError("no memory column has data (looked for " + ", ".join(COLUMN_ORDER) + ")",
                        hint="check the sampler's sources; every row may be a gap (see the note column)")


def prepare(df: object, column: str | None = None) -> Prepared:
    """Validate ``df`` and extract the series to analyse; raise AnalysisError on unusable input."""
    if not isinstance(df, pd.DataFrame):
        raise AnalysisError(f"expected a pandas DataFrame of samples, got {type(df).__name__}", hint=_HINT)
    if "timestamp" not in df.columns:
        raise AnalysisError("the samples have no 'timestamp' column", hint=_HINT)
    if len(df) == 0:
        raise AnalysisError("no samples: the DataFrame is empty", hint="sample for longer (zcnb sample) or check the file")
    ts = _timestamps(df)
    ns = ts.as_unit("ns").asi8
    back = np.flatnonzero(np.diff(ns) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise AnalysisError(
            f"timestamps go backwards at row {i} ({ts[i - 1].isoformat()} -> {ts[i].isoformat()})",
            hint="sort the samples by time (read_samples does) or fix the clock that wrote them", row=i)
    if "event" in df.columns:
        ev = df["event"]
        is_gap = ev.eq("gap").to_numpy(dtype=bool, na_value=False)
        is_restart = ev.eq("restart").to_numpy(dtype=bool, na_value=False).copy()
    else:
        is_gap = is_restart = np.zeros(len(df), dtype=bool)
    name = pick_column(df, column, ~is_gap)
    try:
        values = pd.to_numeric(df[name], errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise AnalysisError(f"column {name!r} holds non-numeric values ({exc})",
                            hint="memory columns must be byte counts; empty = not measured", column=name) from None
    if np.isinf(values).any():
        raise AnalysisError(f"column {name!r} holds infinite values", hint="repair the file", column=name)
    if (values < 0).any():
        raise AnalysisError(f"column {name!r} holds negative byte counts", hint="repair the file", column=name)
    if (values > BYTES_MAX).any():
        raise AnalysisError(f"column {name!r} holds values above 8 PiB (e.g. {float(values[values > BYTES_MAX][0]):.3g}): "
                            "not memory sizes", hint="repair the data: a real reading is far below 8 PiB", column=name)
    boundary = is_restart.copy()
    if "pid" in df.columns:
        pid = pd.to_numeric(df["pid"], errors="coerce")
        filled = pid.ffill()
        prev = filled.shift()
        boundary |= (pid.notna() & prev.notna() & (filled != prev)).to_numpy(dtype=bool)
    boundary[0] = False
    seg_all = np.cumsum(boundary)
    measured = ~is_gap & ~np.isnan(values)
    if not measured.any():
        raise AnalysisError(f"column {name!r} has no measured values", hint="pick another column or sample again",
                            column=name)
    if measured.sum() < 2:
        raise AnalysisError("only one measured sample: a trend needs many",
                            hint="sample for longer: at least 20 samples over a minute or more")
    seg = seg_all[measured]
    if len(seg):  # renumber 0, 1, 2, ... (non-decreasing ids; a segment may hold only gaps)
        seg = np.concatenate(([0], np.cumsum(np.diff(seg) != 0)))
    ns_m = ns[measured]
    t0 = ts[measured][0]
    restart_rows = np.flatnonzero(boundary)
    restarts = tuple(ts[i] for i in restart_rows if ns[i] > ns_m[0])
    return Prepared(
        column=name,
        t0=t0,
        t=(ns_m - ns_m[0]).astype(np.float64) / 1e9,
        y=values[measured],
        seg=seg.astype(np.int64),
        restarts=restarts,
        n_gaps=int(is_gap.sum()),
        n_unmeasured=int((~is_gap & np.isnan(values)).sum()),
    )
