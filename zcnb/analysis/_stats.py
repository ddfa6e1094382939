"""Statistics on the memory baseline: cycles, window minima, seasonal Theil-Sen / Mann-Kendall, change point.

All pure numpy (plus scipy.signal.find_peaks); O(n) in samples, O(m^2) only in baseline points m,
which decimation keeps to a few thousand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Trend", "cycle_period", "hinge_onset", "mad_sigma", "order_statistics", "pooled_theil_sen", "step_jumps",
           "window_minima"]

_Z975 = 1.959963984540054  # standard normal quantile for a two-sided 95 % interval


def mad_sigma(x: np.ndarray) -> float:
    """Robust standard deviation (1.4826 x median absolute deviation)."""
    if x.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def order_statistics(a: np.ndarray, ranks: list[int] | set[int]) -> np.ndarray:
    """The values of rank ``ranks`` (0 = smallest) along the last axis of ``a``, which is reordered in place.

    Exact, like ``np.partition(a, ranks)[..., ranks]``, but as one single-rank partition per rank, each on
    the slice that still holds it (largest gaps first): numpy's single-rank partition uses its SIMD
    selection, while a partition at several ranks at once takes the generic path, ~5x slower on a
    million slopes. Returns the values in the order of ``sorted(set(ranks))``.
    """
    ks = sorted({int(k) for k in ranks})
    n = a.shape[-1]
    if ks and not 0 <= ks[0] <= ks[-1] < n:
        raise ValueError(f"ranks {ks} outside 0..{n - 1}")
    todo = [(ks, 0, n)]
    while todo:
        part, lo, hi = todo.pop()
        if not part:
            continue
        mid = part[len(part) // 2]
        a[..., lo:hi].partition(mid - lo, axis=-1)
        todo.append(([k for k in part if k < mid], lo, mid))
        todo.append(([k for k in part if k > mid], mid + 1, hi))
    return a[..., ks]


def _block_means(t: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    k = len(y) // size
    if size <= 1 or k < 2:
        return t, y
    return t[: k * size].reshape(k, size).mean(axis=1), y[: k * size].reshape(k, size).mean(axis=1)


def cycle_period(t: np.ndarray, y: np.ndarray, bounds: list[tuple[int, int]], *,
                 max_points: int = 4000) -> tuple[float | None, int]:
    """Median spacing (s) of GC/free cycle peaks and how many peaks, via scipy.signal.find_peaks.

    A peak counts when its prominence exceeds 10 noise sigmas (MAD of first differences) and 1 % of
    the level, so noise and page-level jitter are not cycles. Long segments are block-averaged to
    ``max_points`` first (cycles shorter than a block are then covered by any baseline window anyway).
    """
    from scipy.signal import find_peaks

    spacings: list[np.ndarray] = []
    n_peaks = 0
    total = max(len(y), 1)
    for a, b in bounds:
        if b - a < 8:
            continue
        budget = max(64, int(max_points * (b - a) / total))
        # Long segments: raw chunks (start, middle, end) catch short cycles that block means would
        # average away; block means of the whole segment catch cycles longer than a chunk.
        views = [(t[a:b], y[a:b])] if b - a <= budget else [
            (t[c : c + budget], y[c : c + budget]) for c in (a, (a + b - budget) // 2, b - budget)
        ] + [_block_means(t[a:b], y[a:b], math.ceil((b - a) / budget))]
        for td, yd in views:
            sigma = mad_sigma(np.diff(yd)) / math.sqrt(2.0)
            prominence = max(10.0 * sigma, 0.01 * float(np.median(yd)), 1.0)
            peaks, _ = find_peaks(yd, prominence=prominence)
            if len(peaks) >= 2:
                gaps = np.diff(td[peaks])
                spacings.append(gaps)
                # a chunk sees only part of the segment: count cycles over the whole segment instead
                n_peaks += len(peaks) if len(views) == 1 else int((t[b - 1] - t[a]) / float(np.median(gaps)))
                break
    if not spacings:
        return None, n_peaks
    return float(np.median(np.concatenate(spacings))), n_peaks


def window_minima(t: np.ndarray, y: np.ndarray, bounds: list[tuple[int, int]],
                  widths: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline points: the minimum of each run of ``widths[i]`` samples in segment i.

    A trailing partial window is dropped (it may hold no trough and would bias the end upwards)
    unless it is the segment's only window. Returns (times, values, segment index).
    """
    out_t, out_y, out_s = [], [], []
    for i, ((a, b), w) in enumerate(zip(bounds, widths)):
        n = b - a
        w = max(1, min(w, n))
        k = n // w  # >= 1 because w <= n
        idx = np.arange(k) * w + np.argmin(y[a : a + k * w].reshape(k, w), axis=1)
        out_t.append(t[a + idx])
        out_y.append(y[a + idx])
        out_s.append(np.full(len(idx), i, dtype=np.int64))
    return np.concatenate(out_t), np.concatenate(out_y), np.concatenate(out_s)


@dataclass(frozen=True)
class Trend:
    """Seasonal (per-segment) Theil-Sen slope with Sen's interval and the seasonal Mann-Kendall test."""

    slope: float  # units of y per unit of t
    low: float
    high: float
    intercepts: tuple[float, ...]  # per segment, scipy's convention median(y) - slope * median(t)
    s: float  # Mann-Kendall S summed over segments
    var_s: float
    p_value: float  # two-sided
    tau: float  # Kendall tau-a over within-segment pairs
    n_pairs: int


def _tie_term(v: np.ndarray) -> float:
    _, counts = np.unique(v, return_counts=True)
    k = counts[counts > 1].astype(np.float64)
    return float(np.sum(k * (k - 1) * (2 * k + 5)))


_PAIR_BLOCK_CELLS = 1 << 18  # pairs formed per numpy step: bounded scratch memory (~10 MiB), few Python steps


def _pair_slopes(ts: np.ndarray, ys: np.ndarray, out: list[np.ndarray]) -> float:
    """Append the slopes ``(y_j - y_i) / (t_j - t_i)`` of every pair i < j with t_j > t_i to ``out`` (in blocks
    of rows, so scratch memory stays bounded while each numpy step handles many pairs); returns the sum of the
    signs of their ``y_j - y_i`` (Mann-Kendall's S).

    With strictly increasing times (the usual baseline) every pair i < j counts: a block of rows splits into
    the rectangle right of the block, formed with no mask, and the small triangle inside it.
    """
    n = len(ts)
    rows = max(1, _PAIR_BLOCK_CELLS // n)
    increasing = n < 2 or bool(np.all(ts[1:] > ts[:-1]))
    s = 0
    for r0 in range(0, n - 1, rows):
        r1 = min(n - 1, r0 + rows)
        # The triangle (or, with repeated times, the whole block): pairs r0 <= i < r1, i < j, t_j > t_i.
        hi = r1 if increasing else n
        dx = ts[None, r0 + 1 : hi] - ts[r0:r1, None]  # column c is j = r0 + 1 + c
        dy = ys[None, r0 + 1 : hi] - ys[r0:r1, None]
        keep = np.arange(r0 + 1, hi)[None, :] > np.arange(r0, r1)[:, None]  # j > i
        keep &= dx > 0
        parts = [dy[keep] / dx[keep]]
        if increasing and r1 < n:  # the rectangle j >= r1 > i: every pair counts
            dy = ys[None, r1:] - ys[r0:r1, None]
            dx = ts[None, r1:] - ts[r0:r1, None]
            np.divide(dy, dx, out=dy)
            parts.append(dy.ravel())
        for p in parts:  # t_j > t_i: the slope has the sign of y_j - y_i
            s += int(np.count_nonzero(p > 0)) - int(np.count_nonzero(p < 0))
            out.append(p)
    return float(s)


def pooled_theil_sen(t: np.ndarray, y: np.ndarray, seg: np.ndarray, *, alpha: float = 0.05) -> Trend | None:
    """Theil-Sen over within-segment pairs only (Hirsch's seasonal Kendall slope, segments as seasons).

    With one segment this equals ``scipy.stats.theilslopes(y, t, 1 - alpha)`` (same interval ranks,
    Sen 1968 eq. 2.6 with tie corrections); variances of S add across segments. None if no pair.
    """
    slopes: list[np.ndarray] = []
    s_total = 0.0
    var_total = 0.0
    n_ids = int(seg.max()) + 1 if len(seg) else 0
    bounds = np.searchsorted(seg, np.arange(n_ids + 1))
    medians: list[tuple[float, float]] = []
    for i in range(n_ids):
        ts, ys = t[bounds[i] : bounds[i + 1]], y[bounds[i] : bounds[i + 1]]
        n = len(ts)
        medians.append((float(np.median(ts)) if n else 0.0, float(np.median(ys)) if n else 0.0))
        if n < 2:
            continue
        s_total += _pair_slopes(ts, ys, slopes)
        var_total += (n * (n - 1) * (2 * n + 5) - _tie_term(ts) - _tie_term(ys)) / 18.0
    if not slopes:
        return None
    all_slopes = np.concatenate(slopes)
    nt = len(all_slopes)
    if nt == 0:
        return None
    z = _Z975 if alpha == 0.05 else _norm_ppf(1 - alpha / 2)
    sigma = math.sqrt(max(var_total, 0.0))
    ru = min(round((nt + z * sigma) / 2.0), nt - 1)
    rl = max(round((nt - z * sigma) / 2.0) - 1, 0)
    # One partition gives the interval ranks and the median (np.median's own definition: the middle element,
    # or the mean of the two middle ones), instead of a second pass over millions of slopes.
    mids = {nt // 2} if nt % 2 else {nt // 2 - 1, nt // 2}
    ks = sorted({rl, ru} | mids)
    vals = dict(zip(ks, order_statistics(all_slopes, ks).tolist(), strict=True))  # all_slopes is scratch
    median = vals[nt // 2] if nt % 2 else (vals[nt // 2 - 1] + vals[nt // 2]) / 2.0
    low, high = vals[rl], vals[ru]
    if var_total > 0 and s_total != 0:
        zs = (s_total - math.copysign(1.0, s_total)) / sigma
        p = math.erfc(abs(zs) / math.sqrt(2.0))
    else:
        p = 1.0
    intercepts = tuple(my - median * mt for mt, my in medians)
    return Trend(slope=median, low=low, high=high, intercepts=intercepts, s=s_total, var_s=var_total,
                 p_value=min(1.0, p), tau=s_total / nt, n_pairs=nt)


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def _suffix_sum(v: np.ndarray) -> np.ndarray:
    """out[k] = sum(v[k:])."""
    return np.cumsum(v[::-1])[::-1]


def hinge_onset(t: np.ndarray, y: np.ndarray, *, min_after: int = 3) -> tuple[float, float, float]:
    """Change point of a flat-then-linear fit ``y = c + b * max(0, t - tau)`` minimising SSE.

    Every baseline time is tried as ``tau`` in O(m) with suffix sums (tau = t[0] is the plain line).
    Returns (tau, sse_hinge, sse_line).
    """
    m = len(t)
    tt = (t - t[0]) / 3600.0  # hours and MiB keep the sums well inside float64 precision
    yy = (y - y.mean()) / (1024.0 * 1024.0)
    s1, s_t, s_tt, s_y, s_ty = (_suffix_sum(v) for v in (np.ones(m), tt, tt * tt, yy, tt * yy))
    n_cand = max(1, m - min_after)
    tau = tt[:n_cand]
    cnt, st, stt, sy, sty = s1[:n_cand], s_t[:n_cand], s_tt[:n_cand], s_y[:n_cand], s_ty[:n_cand]
    sx = st - cnt * tau
    sxx = stt - 2 * tau * st + cnt * tau * tau
    sxy = sty - tau * sy
    total_y = yy.sum()
    cxx = sxx - sx * sx / m
    cxy = sxy - sx * total_y / m
    syy = float(np.sum((yy - yy.mean()) ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = np.where(cxx > 1e-12, syy - cxy * cxy / cxx, syy)
    best = int(np.argmin(sse))
    return float(t[best]), float(sse[best]), float(sse[0])


def step_jumps(bt: np.ndarray, by: np.ndarray, bseg: np.ndarray) -> list[tuple[float, float]]:
    """Upward baseline jumps far beyond the typical point-to-point change: (time, size) pairs.

    A jump exceeds the median step by more than 8 robust sigmas and 2 % of the level.
    """
    same = bseg[1:] == bseg[:-1]
    d = np.diff(by)[same]
    if d.size < 4:
        return []
    times = bt[1:][same]
    excess = d - np.median(d)
    threshold = max(8.0 * mad_sigma(d), 0.02 * float(np.median(by)))
    hits = np.flatnonzero(excess > threshold)
    return [(float(times[i]), float(d[i])) for i in hits]


def troughs(t: np.ndarray, y: np.ndarray, bounds: list[tuple[int, int]],
            period_s: float, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline points = the trough of each GC/free cycle (scipy.signal.find_peaks on -y).

    ``distance`` (half a period) keeps one trough per cycle; ``wlen`` (3 periods) bounds the
    prominence scan so long rising series stay O(n).
    """
    from scipy.signal import find_peaks

    per = max(1, int(period_s / dt))
    out_t, out_y, out_s = [], [], []
    for i, (a, b) in enumerate(bounds):
        ys = y[a:b]
        if len(ys) < 3:
            continue
        sigma = mad_sigma(np.diff(ys)) / math.sqrt(2.0)
        prominence = max(10.0 * sigma, 0.01 * float(np.median(ys)), 1.0)
        idx, _ = find_peaks(-ys, prominence=prominence, distance=max(1, per // 2), wlen=3 * per + 1)
        out_t.append(t[a + idx])
        out_y.append(ys[idx])
        out_s.append(np.full(len(idx), i, dtype=np.int64))
    if not out_t:
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
    return np.concatenate(out_t), np.concatenate(out_y), np.concatenate(out_s)


@dataclass(frozen=True)
class Bounded:
    """Line vs the best bounded model on one baseline series (see :func:`bounded_fit`)."""

    delta_bic: float  # BIC(line) - BIC(bounded): > 0 favours the bounded model
    tail_ratio: float  # bounded model's slope at the end / its mean slope over the window
    tau_s: float  # time constant (exponential) or the time the rise ends (rise-then-flat)
    model: str  # "saturating" | "rise-then-flat"
    persist_delta_bic: float = 0.0  # BIC(bounded) - BIC(saturating + line): > 0 = growth goes on after the bend
    persist_slope: float = 0.0  # the line's slope in saturating + line (units of y per unit of t)
    step_delta_bic: float = 0.0  # min(BIC(line), BIC(bounded)) - BIC(staircase): > 0 favours level shifts
    step_ups: tuple[tuple[float, float], ...] = ()  # (time, size) of the staircase's upward shifts
    rise: float = 0.0  # the bounded model's rise over the window (units of y)


def _line_sse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSE of least-squares y = a + b*x for each column of ``x`` (shape m x k)."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    sxx = (xc * xc).sum(axis=0)
    sxy = (xc * yc[:, None]).sum(axis=0)
    syy = float((yc * yc).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sxx > 1e-18, syy - sxy * sxy / sxx, syy)


def bounded_fit(t: np.ndarray, y: np.ndarray) -> Bounded | None:
    """Does a bounded model beat a straight line? A model comparison by BIC on the baseline.

    Models (least squares): line ``a + b t`` (2 parameters); saturating ``a + b (1 - exp(-t / tau))`` and
    rise-then-flat ``a + b min(t, h)`` (3 parameters each, tau / h on a grid). BIC = m ln(SSE/m) + k ln m.
    The tail ratio says how far the bounded model has levelled off: its slope at the end of the window
    over its mean slope (exponential: (T/tau) e^(-T/tau) / (1 - e^(-T/tau)); rise-then-flat: 0 when the
    flat part covers at least a quarter of the window, else 1). None with fewer than 8 points.
    """
    m = len(t)
    if m < 8:
        return None
    tt = (t - t[0]).astype(np.float64)
    span = float(tt[-1])
    if span <= 0:
        return None
    yy = (y - float(np.median(y))) / max(float(np.std(y)), 1.0)  # scale-free SSEs
    sse_line = float(_line_sse(tt[:, None], yy)[0])
    taus = np.geomspace(span / 60.0, 5.0 * span, 72)
    xs = 1.0 - np.exp(-tt[:, None] / taus[None, :])
    sse_exp = _line_sse(xs, yy)
    hs = np.quantile(tt, np.linspace(0.05, 0.95, 37))
    xh = np.minimum(tt[:, None], hs[None, :])
    sse_h = _line_sse(xh, yy)
    floor = 1e-12 * max(sse_line, 1e-300)

    def bic(sse: float, k: int) -> float:
        return m * math.log(max(sse, floor) / m) + k * math.log(m)

    i_e, i_h = int(np.argmin(sse_exp)), int(np.argmin(sse_h))
    b_line, b_exp, b_h = bic(sse_line, 2), bic(float(sse_exp[i_e]), 3), bic(float(sse_h[i_h]), 3)
    scale = max(float(np.std(y)), 1.0)
    sse_st, cuts = _staircase(yy)
    levels = [float(np.mean(part)) for part in np.split(yy, cuts)]
    ups = tuple((float(t[c]), (b - a) * scale) for c, a, b in zip(cuts, levels, levels[1:]) if b > a)
    b_step = bic(sse_st, 2 * len(cuts) + 1)
    sse_both, c_both = _sat_line_sse(tt, yy, taus)
    b_both = bic(sse_both, 4)
    slope_both = c_both * max(float(np.std(y)), 1.0) / span
    if b_exp <= b_h:
        tau = float(taus[i_e])
        r = span / tau
        ratio = r * math.exp(-r) / -math.expm1(-r)
        return Bounded(b_line - b_exp, ratio, tau, "saturating", b_exp - b_both, slope_both,
                       min(b_line, b_exp) - b_step, ups, _rise(xs[:, i_e], yy) * scale)
    h = float(hs[i_h])
    return Bounded(b_line - b_h, 0.0 if span - h >= 0.25 * span else 1.0, h, "rise-then-flat", b_h - b_both,
                   slope_both, min(b_line, b_h) - b_step, ups, _rise(xh[:, i_h], yy) * scale)


def _rise(x: np.ndarray, y: np.ndarray) -> float:
    """Rise of the least-squares ``a + b x`` from the first to the last point."""
    xc = x - x.mean()
    sxx = float((xc * xc).sum())
    slope = float((xc * (y - y.mean())).sum()) / sxx if sxx > 0 else 0.0
    return slope * float(x[-1] - x[0])


def _staircase(y: np.ndarray, *, min_len: int = 3, max_shifts: int = 8) -> tuple[float, list[int]]:
    """Piecewise-constant fit by binary segmentation: (SSE, sorted cut indices).

    A split is kept when it lowers the SSE by more than 3 ln(m) noise variances (noise from the MAD of
    first differences), so noise alone rarely adds a level.
    """
    m = len(y)
    sigma2 = (mad_sigma(np.diff(y)) / math.sqrt(2.0)) ** 2
    pen = 3.0 * math.log(max(m, 2)) * max(sigma2, 1e-12)
    cuts: list[int] = []
    for _ in range(max_shifts):
        best_gain, best_cut = 0.0, -1
        for a, b in zip([0, *cuts], [*cuts, m]):
            seg = y[a:b]
            n = len(seg)
            if n < 2 * min_len:
                continue
            cs = np.cumsum(seg)
            k = np.arange(min_len, n - min_len + 1)
            left = cs[k - 1]
            right = cs[-1] - left
            gain = left**2 / k + right**2 / (n - k) - cs[-1] ** 2 / n
            i = int(np.argmax(gain))
            if gain[i] > best_gain:
                best_gain, best_cut = float(gain[i]), a + int(k[i])
        if best_gain <= pen:
            break
        cuts = sorted([*cuts, best_cut])
    sse = float(sum(np.sum((part - part.mean()) ** 2) for part in np.split(y, cuts)))
    return sse, cuts


def _sat_line_sse(tt: np.ndarray, yy: np.ndarray, taus: np.ndarray) -> tuple[float, float]:
    """Smallest SSE of ``a + b (1 - exp(-t / tau)) + c t / T`` over the tau grid (a warm-up on top of a leak),
    and its c."""
    # All taus in one pass: the line part (1, t / T) is projected out of y and of every warm-up column, then each
    # column's least squares is closed-form (the Frisch-Waugh-Lovell theorem); a column with (almost) nothing left
    # after the projection is collinear with the line, a rank-deficient fit, and is skipped.
    tn = tt / max(float(tt[-1]), 1e-9)
    tc = tn - tn.mean()
    stt = float(tc @ tc)
    if stt <= 0:
        return float(np.sum((yy - yy.mean()) ** 2)), 0.0
    x = -np.expm1(-tt[:, None] / taus[None, :])  # (points, taus)
    x_slope = (tc @ x) / stt  # each column's slope on t / T
    xr = x - x.mean(axis=0) - tc[:, None] * x_slope  # residual of each column after the line
    y_slope = float(tc @ yy) / stt
    yr = yy - yy.mean() - tc * y_slope
    sxx = np.einsum("ij,ij->j", xr, xr)
    sxy = yr @ xr
    ok = sxx > 1e-10 * np.einsum("ij,ij->j", x - x.mean(axis=0), x - x.mean(axis=0))
    if not ok.any():
        return float(np.sum((yy - yy.mean()) ** 2)), 0.0
    b = np.where(ok, sxy / np.where(ok, sxx, 1.0), 0.0)
    sse = np.where(ok, float(yr @ yr) - b * sxy, np.inf)
    k = int(np.argmin(sse))
    return max(float(sse[k]), 0.0), y_slope - float(b[k]) * float(x_slope[k])


def step_episodes(bt: np.ndarray, by: np.ndarray, *, min_gap: int = 2,
                  max_len: int = 3) -> tuple[list[tuple[float, float]], float]:
    """Sharp rises of the baseline separated by flat stretches: ([(time, size)], total size).

    A jump is a point-to-point rise beyond 8 robust sigmas of the changes and 2 % of the level (as
    :func:`step_jumps`). Jumps closer than ``min_gap`` points form one episode; an episode longer than
    ``max_len`` points is a ramp (a cache filling up), not a step, and is not counted.
    """
    d = np.diff(by)
    if d.size < 4:
        return [], 0.0
    threshold = max(8.0 * mad_sigma(d), 0.02 * float(np.median(by)))
    hits = np.flatnonzero(d - np.median(d) > threshold)
    episodes: list[tuple[float, float]] = []
    total = 0.0
    i = 0
    while i < len(hits):
        j = i
        while j + 1 < len(hits) and hits[j + 1] - hits[j] <= min_gap:
            j += 1
        first, last = int(hits[i]), int(hits[j])
        if last - first + 1 <= max_len:
            size = float(by[last + 1] - by[first])
            episodes.append((float(bt[first + 1]), size))
            total += size
        i = j + 1
    return episodes, total
