"""One vectorised pass over a whole fleet: trough baselines and robust trends for every instance at once.

The fleet's samples are laid out as one 2-D array (instances x the common time grid). numpy then
computes, for all instances together:

- the **trough baseline**: the minimum of each window of ``width`` grid slots (a window spans at least
  the expected GC cycle, so it holds a trough; the time of the minimum is kept);
- the **robust trend** of that baseline: Theil-Sen slope with Sen's 95 % interval and the Mann-Kendall
  p-value (pairs at every offset, computed on the 2-D array of baselines);
- the **cycle amplitude**: the median range of the detrended samples within a window, against the
  sample-to-sample noise (a GC sawtooth rides far above its troughs; a plain noisy line does not).

The verdict is not re-implemented here: each instance's baseline (a few hundred points instead of
thousands) goes to :func:`zcnb.analysis.assess_leak`, the package's decision logic. Instances where a
coarser baseline could change that decision take the full per-instance path on their raw samples:
restarts or events, an irregular grid, GC cycles (their pattern comes from the raw cycles; cheap there,
as assess_leak fits one trough per cycle), too few windows, and growth whose interval comes near the
practical threshold. docs/fleet.md lists the rules; tests/test_fleet_vector.py checks the verdicts
against the per-instance path on a mixed fleet.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis import LeakThresholds, order_statistics
from ..analysis.verdict import min_relative_rise

__all__ = ["TARGET_POINTS", "FleetBaselines", "fleet_baselines", "theil_sen_rows", "window_minima_rows"]

TARGET_POINTS = 300  # baseline points per instance handed to assess_leak (Theil-Sen is O(points^2))
_MIN_WINDOWS = 60  # fewer baseline windows than this: the raw samples are cheap enough, take them
_Z975 = 1.959963984540054


@dataclass(frozen=True)
class FleetBaselines:
    """Per-instance result of the vectorised pass (arrays aligned with ``instances``)."""

    instances: tuple[str, ...]
    width: int  # grid slots per baseline window (1 = no reduction)
    step_s: float  # the common grid step
    n_samples: np.ndarray  # measured samples per instance
    slope: np.ndarray  # bytes per second (Theil-Sen of the baseline), NaN when not computed
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray
    level: np.ndarray  # median of the baseline
    cycle_ratio: np.ndarray  # median within-window range of detrended samples / noise sigma
    route: tuple[str, ...]  # "baseline" or why the instance takes the raw per-instance path
    baselines: dict[str, pd.DataFrame]  # instance -> (timestamp, column) baseline frame, for "baseline" routes
    rows: dict[str, np.ndarray]  # instance -> positions of its rows in the input frame, for the raw routes
    plain: np.ndarray  # bool per instance: no events and no pid, so timestamp + value carry all its data
    last: np.ndarray  # last measured value per instance (NaN if none)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.route:
            out[r] = out.get(r, 0) + 1
        return out


def window_minima_rows(t: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row minimum of each run of ``width`` columns (NaN = missing) and the time of that minimum.

    ``t`` and ``y`` are (rows, slots); a trailing partial window is dropped unless it is the only one.
    Windows with no value give NaN in both outputs.
    """
    n_rows, n_slots = y.shape
    width = max(1, min(width, n_slots))
    k = n_slots // width
    yw = y[:, : k * width].reshape(n_rows, k, width)
    tw = t[:, : k * width].reshape(n_rows, k, width)
    empty = np.isnan(yw).all(axis=2)
    filled = np.where(np.isnan(yw), np.inf, yw)
    arg = np.argmin(filled, axis=2)
    bt = np.take_along_axis(tw, arg[..., None], axis=2)[..., 0]
    by = np.take_along_axis(yw, arg[..., None], axis=2)[..., 0]
    bt[empty] = np.nan
    by[empty] = np.nan
    return bt, by


def theil_sen_rows(t: np.ndarray, y: np.ndarray, *, alpha: float = 0.05,
                   block_rows: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Theil-Sen slope, Sen's ``1 - alpha`` interval and the Mann-Kendall p-value of every row at once.

    ``t``, ``y``: (rows, m) with NaN where a row has no point. Pairs are formed at every offset over the
    whole block of rows (numpy, no per-row Python loop); rows are processed in blocks to bound memory.
    Ties are not corrected for in the variance of S (baseline times are distinct; equal byte counts in
    a baseline are rare and only make the test slightly conservative).
    """
    n_rows, m = y.shape
    slope = np.full(n_rows, np.nan)
    low, high, pval = slope.copy(), slope.copy(), slope.copy()
    if m < 2:
        return slope, low, high, pval
    z = _Z975 if alpha == 0.05 else float(__import__("scipy.stats", fromlist=["norm"]).norm.ppf(1 - alpha / 2))
    for r0 in range(0, n_rows, block_rows):
        tb, yb = t[r0 : r0 + block_rows], y[r0 : r0 + block_rows]
        parts, signs = [], np.zeros(len(yb))
        clean = not (np.isnan(tb).any() or np.isnan(yb).any())
        for k in range(1, m):
            dx = tb[:, k:] - tb[:, :-k]
            dy = yb[:, k:] - yb[:, :-k]
            if clean and (dx > 0).all():  # the usual case: no missing window, no repeated time
                parts.append(dy / dx)
                signs += np.sign(dy).sum(axis=1)
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                s = dy / dx
            s[~(dx > 0)] = np.nan
            parts.append(s)
            signs += np.nansum(np.sign(np.where(dx > 0, dy, np.nan)), axis=1)
        slopes = np.concatenate(parts, axis=1)
        valid = ~np.isnan(slopes)
        nt = valid.sum(axis=1)
        n_pts = (~np.isnan(yb)).sum(axis=1).astype(np.float64)
        var_s = n_pts * (n_pts - 1) * (2 * n_pts + 5) / 18.0
        sigma = np.sqrt(var_s)
        slopes = np.where(valid, slopes, np.inf)  # missing pairs sort last
        ru = np.minimum(np.round((nt + z * sigma) / 2.0), nt - 1).astype(np.int64)
        rl = np.maximum(np.round((nt - z * sigma) / 2.0) - 1, 0).astype(np.int64)
        # Rows with the same number of pairs share their ranks: one partition for the whole group.
        for n in np.unique(nt):
            rows = np.flatnonzero(nt == n)
            if n == 0:
                continue
            lo_k, hi_k = int(rl[rows[0]]), int(ru[rows[0]])
            kth = sorted({lo_k, hi_k, (int(n) - 1) // 2, int(n) // 2})
            # Every row of the block: select in place, no copy.
            scratch = slopes if len(rows) == len(slopes) else slopes[rows]
            part = dict(zip(kth, np.moveaxis(order_statistics(scratch, kth), -1, 0), strict=True))
            slope[r0 + rows] = 0.5 * (part[(int(n) - 1) // 2] + part[int(n) // 2])
            low[r0 + rows], high[r0 + rows] = part[lo_k], part[hi_k]
        s_tot = signs
        with np.errstate(invalid="ignore", divide="ignore"):
            zs = (s_tot - np.sign(s_tot)) / sigma
            p = np.array([math.erfc(abs(v) / math.sqrt(2.0)) if math.isfinite(v) else 1.0 for v in zs])
        p[(var_s <= 0) | (s_tot == 0)] = 1.0
        pval[r0 : r0 + len(yb)] = np.where(nt > 0, np.minimum(p, 1.0), np.nan)
    return slope, low, high, pval


def _group_codes(labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(labels, sort=True)``, fast when every label's rows are contiguous (one series after
    another, as a range query returns them): the runs are found with one comparison of neighbours instead
    of hashing a million strings. Any other layout (interleaved rows, missing labels, mixed types) is
    factorized as usual."""
    values = labels.to_numpy(dtype=object)
    if len(values) > 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                change = values[1:] != values[:-1]
        except TypeError:  # pd.NA compares to NA, which has no truth value
            change = None
        if isinstance(change, np.ndarray) and change.dtype == bool:
            starts = np.concatenate(([0], np.flatnonzero(change) + 1))
            run_labels = values[starts]
            try:
                if not pd.isna(run_labels).any() and len(set(run_labels)) == len(run_labels):
                    rank = np.argsort(run_labels, kind="stable")
                    code_of_run = np.empty(len(run_labels), dtype=np.intp)
                    code_of_run[rank] = np.arange(len(run_labels))
                    lengths = np.diff(np.append(starts, len(values)))
                    return np.repeat(code_of_run, lengths), run_labels[rank]
            except TypeError:  # labels that do not sort together (e.g. numbers and strings)
                pass
    codes, uniques = pd.factorize(labels, sort=True)
    return codes, np.asarray(uniques, dtype=object)


def _has_text(values: np.ndarray) -> np.ndarray:
    """Per cell: a value that is neither missing nor empty ("", or a number 0): an event marker. Truthiness
    first, so only the few marked cells are looked at again (assess_leak itself acts on "gap" and
    "restart" only; any other marker just sends the instance to the raw path)."""
    try:
        marked = values.astype(bool)  # "" and None are False; NaN is True and is looked at below
    except (TypeError, ValueError):  # pd.NA has no truth value: look at the present cells only
        present = ~np.asarray(pd.isna(values), dtype=bool)
        marked = np.zeros(len(values), dtype=bool)
        marked[present] = values[present].astype(bool)
    idx = np.flatnonzero(marked)
    marked[idx] = [v is not None and not pd.isna(v) and v != "" for v in values[idx].tolist()]
    return marked


def _row_median(a: np.ndarray, *, keepdims: bool = False) -> np.ndarray:
    """``np.nanmedian(a, axis=1)``; without NaN as one vectorised median (nanmedian walks long rows one by one)."""
    if np.isnan(a).any() or a.shape[1] == 0:
        return np.asarray(np.nanmedian(a, axis=1, keepdims=keepdims))
    n = a.shape[1]
    mid = order_statistics(a.copy(), {(n - 1) // 2, n // 2})
    med = np.asarray(mid.mean(axis=1))  # odd n: the same middle value twice
    return med[:, None] if keepdims else med


def _near_boundary(slope: float, level: float, last: float, limit_bytes: float | None,
                   th: LeakThresholds) -> bool:
    """Whether the rough time to the limit (or to double) falls within 15 % of a severity boundary.

    With a limit, the doubling time only decides "catastrophic"; without one it grades every class.
    """
    bounds = (th.catastrophic_s, th.high_s, th.moderate_s)
    rough = [(max(level, 1.0) / slope, bounds if limit_bytes is None else bounds[:1])]
    if limit_bytes is not None:
        rough.append((max(limit_bytes - (last if math.isfinite(last) else level), 0.0) / slope, bounds))
    return any(b / 1.15 < r < b * 1.15 for r, bs in rough for b in bs)


def _grid(ts: np.ndarray, codes: np.ndarray, starts: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Common step, slot index per sample, per-instance "on the grid, one sample per slot", and each instance's
    origin (the time of its slot 0). Each instance keeps its own phase on the common step: raw scrapes of a fleet
    come at each target's own offset within the interval (Prometheus spreads them), and one grid for all would put
    every instance but the first off it."""
    n_inst = len(starts) - 1
    same = codes[1:] == codes[:-1]
    d = np.diff(ts)[same]
    d = d[d > 0]
    step = float(np.median(d)) if d.size else 1.0
    t_min = float(ts.min())
    first = np.full(n_inst, t_min)
    nonempty = starts[1:] > starts[:-1]
    first[nonempty] = ts[starts[:-1][nonempty]]  # samples are in time order per instance
    origin = first - np.rint((first - t_min) / step) * step  # within half a step of t_min
    pos = (ts - origin[codes]) / step
    slot = np.rint(pos).astype(np.int64)
    off = np.abs(pos - slot) > 0.05
    dup = np.zeros(len(ts), dtype=bool)
    dup[1:] = same & (slot[1:] == slot[:-1])
    bad = np.bincount(codes, weights=(off | dup).astype(np.float64), minlength=n_inst) > 0
    return step, slot, ~bad, origin  # slot >= 0: an instance's samples come at or after its first


def fleet_baselines(df: pd.DataFrame, *, by: str, column: str, window_s: float | None = None,
                    target_points: int = TARGET_POINTS, limit_bytes: float | None = None,
                    thresholds: LeakThresholds | None = None) -> FleetBaselines:
    """The vectorised pass over ``df`` (samples with a ``by`` column): baselines, trends and routes.

    ``window_s``: the baseline window; at least the expected GC cycle (each window must hold a trough).
    Default: the span over ``target_points`` windows (5 min for a day), never under one grid step.
    """
    th = thresholds or LeakThresholds()
    codes, uniques = _group_codes(df[by])
    keys = [str(k) for k in uniques]
    n_inst = len(keys)
    ts = pd.DatetimeIndex(df["timestamp"]).as_unit("ns").asi8.astype(np.float64) / 1e9
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # Samples usually arrive grouped per instance in time order (one series after another): then the
    # stable order is the identity and the O(n log n) sort is skipped.
    dc = np.diff(codes)
    in_order = bool((dc >= 0).all() and (np.diff(ts)[dc == 0] >= 0).all())
    order = np.arange(len(codes)) if in_order else np.lexsort((ts, codes))

    def take(a: np.ndarray) -> np.ndarray:
        return a if in_order else a[order]

    codes, ts, values = take(codes), take(ts), take(values)
    starts = np.searchsorted(codes, np.arange(n_inst + 1))
    raw_reason = np.full(n_inst, "", dtype=object)
    plain = np.ones(n_inst, dtype=bool)  # no events, no pid: timestamp and value are all assess_leak reads
    # Restarts and events (gaps, restart markers, several pids) change segments: the raw path handles them.
    if "event" in df.columns:
        ev = take(_has_text(df["event"].to_numpy(dtype=object)))
        raw_reason[np.bincount(codes, weights=ev, minlength=n_inst) > 0] = "events or restarts"
        plain &= raw_reason == ""
    if "pid" in df.columns:
        pid = take(pd.to_numeric(df["pid"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
        has = ~np.isnan(pid)
        changes = np.zeros(len(pid), dtype=bool)
        changes[1:] = has[1:] & has[:-1] & (pid[1:] != pid[:-1]) & (codes[1:] == codes[:-1])
        raw_reason[(np.bincount(codes, weights=changes, minlength=n_inst) > 0) & (raw_reason == "")] = "restarts"
        plain &= np.bincount(codes, weights=has, minlength=n_inst) == 0
    measured = ~np.isnan(values)
    n_samples = np.bincount(codes, weights=measured, minlength=n_inst).astype(np.int64)
    last = np.full(n_inst, np.nan)
    pos_m = np.flatnonzero(measured)
    last[codes[pos_m]] = values[pos_m]  # later positions overwrite: the last measured value per instance
    step, slot, on_grid, origin = _grid(ts, codes, starts)
    raw_reason[~on_grid & (raw_reason == "")] = "irregular time grid"
    n_slots = int(slot.max()) + 1
    width = max(1, math.ceil(n_slots / max(target_points, 2)))
    if window_s is not None:
        width = max(width, math.ceil(window_s / step))
    # The 2-D layout: instances x slots, NaN where an instance has no sample.
    grid_y = np.full((n_inst, n_slots), np.nan)
    ok = measured & on_grid[codes]
    grid_y[codes[ok], slot[ok]] = values[ok]
    grid_t = origin[:, None] + np.arange(n_slots) * step  # each instance on its own phase
    bt, by_ = window_minima_rows(grid_t, grid_y, width)
    n_windows = (~np.isnan(by_)).sum(axis=1)
    # The trend only routes instances (its margins are 2x), so ~150 of the windows are enough: 4x fewer pairs.
    stride = max(1, math.ceil(bt.shape[1] / 150))
    slope, low, high, pval = theil_sen_rows(bt[:, ::stride], by_[:, ::stride], alpha=th.alpha)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows/windows (missing scrapes) give NaN
        level = np.nanmedian(np.where(np.isnan(by_), np.nan, by_), axis=1)
        # Noise: robust sigma of sample-to-sample differences; cycles: range of detrended samples per window.
        diffs = np.diff(grid_y, axis=1)
        noise = 1.4826 * _row_median(np.abs(diffs - _row_median(diffs, keepdims=True))) / math.sqrt(2)
        k = n_slots // width
        detr = (grid_y - np.nan_to_num(slope)[:, None] * grid_t)[:, : k * width].reshape(n_inst, k, width)
        spread = np.nanmax(detr, axis=2) - np.nanmin(detr, axis=2)
        amp = np.nanmedian(spread, axis=1)
        cycle_ratio = amp / np.maximum(noise, 1.0)
        # Curvature: how far the baseline strays from its own straight line, as the largest median residual
        # over 20 consecutive chunks. A warm-up that levels off (or a cache filling up) bends the baseline;
        # the bounded-model test that names it needs the raw series, so such instances take the raw path.
        intercept = np.nanmedian(by_ - np.nan_to_num(slope)[:, None] * bt, axis=1)
        resid = by_ - (intercept[:, None] + np.nan_to_num(slope)[:, None] * bt)
        n_chunks = min(20, max(1, resid.shape[1] // 5))
        usable = (resid.shape[1] // n_chunks) * n_chunks
        bend = np.nanmax(np.abs(np.nanmedian(resid[:, :usable].reshape(n_inst, n_chunks, -1), axis=2)), axis=1)
    route = []
    frames: dict[str, pd.DataFrame] = {}
    rows: dict[str, np.ndarray] = {}
    # The verdict's own rule (zcnb.analysis.verdict): over a window this long the baseline must rise by
    # min_relative_rise of its level (and at least min_observed_growth_bytes); as a rate per second.
    # First and last measured slot per instance: rows are grouped per instance (``starts``), so one
    # reduceat per bound instead of an unbuffered ufunc.at over every sample.
    first_slot = np.full(n_inst, n_slots, dtype=np.int64)
    last_slot = np.zeros(n_inst, dtype=np.int64)
    nonempty = starts[1:] > starts[:-1]
    if nonempty.any():
        at = starts[:-1][nonempty]
        first_slot[nonempty] = np.minimum.reduceat(np.where(measured, slot, n_slots), at)
        last_slot[nonempty] = np.maximum.reduceat(np.where(measured, slot, 0), at)
    span_s = np.maximum(last_slot - first_slot + 1, 1) * step
    thr = np.array([max(min_relative_rise(float(d), th) * (float(v) if math.isfinite(v) else 0.0),
                        th.min_observed_growth_bytes) / float(d) for v, d in zip(level, span_s, strict=True)])
    for i, key in enumerate(keys):
        reason = str(raw_reason[i])
        if not reason and width == 1:
            reason = "short series (no reduction)"
        if not reason and n_windows[i] < _MIN_WINDOWS:
            reason = "too few baseline windows"
        if not reason and not math.isfinite(slope[i]):
            reason = "no trend"
        if not reason and cycle_ratio[i] > 10.0 and amp[i] > 0.01 * level[i]:
            reason = "GC cycles"
        if not reason and not (high[i] < 0.5 * thr[i] or (low[i] > 2.0 * thr[i] and pval[i] < 1e-3)):
            reason = "growth near the threshold"
        if not reason and bend[i] > max(thr[i] * span_s[i], 3.0 * noise[i]):
            reason = "curved baseline (warm-up or bounded growth)"
        if not reason and slope[i] > 0 and _near_boundary(slope[i], level[i], last[i], limit_bytes, th):
            # The baseline sits below the raw peaks, so its time to limit is a little longer: near a
            # severity boundary that could change the severity.
            reason = "time to limit near a severity boundary"
        if reason:
            route.append(reason)
            rows[key] = order[starts[i] : starts[i + 1]]
            continue
        route.append("baseline")
        keep = ~np.isnan(by_[i])
        stamps = pd.to_datetime(np.round(bt[i, keep] * 1000).astype(np.int64), unit="ms", utc=True)
        frames[key] = pd.DataFrame({"timestamp": stamps, column: by_[i, keep]})
    return FleetBaselines(instances=tuple(keys), width=width, step_s=step, n_samples=n_samples,
                          slope=slope, low=low, high=high, p_value=pval, level=level, cycle_ratio=cycle_ratio,
                          route=tuple(route), baselines=frames, rows=rows, last=last, plain=plain)
