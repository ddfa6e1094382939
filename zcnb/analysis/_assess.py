"""assess_leak: verdict, pattern, growth, projection and severity for one memory series."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..units import format_bytes, format_duration
from ._model import DataNeeded, LeakAssessment, LeakThresholds, SegmentGrowth
from ._prepare import Prepared, prepare
from ._project import advice_for, project, resolve_limit, severity_for
from ._stats import Trend, cycle_period, hinge_onset, mad_sigma, pooled_theil_sen, step_jumps, troughs, window_minima

__all__ = ["assess_leak", "baseline"]

H = 3600.0


@dataclass(frozen=True)
class _Baseline:
    t: np.ndarray
    y: np.ndarray
    seg: np.ndarray
    period_s: float | None
    n_peaks: int
    width: int
    dt: float


def _baseline(p: Prepared, th: LeakThresholds) -> _Baseline:
    bounds = p.bounds()
    period, n_peaks = cycle_period(p.t, p.y, bounds)
    steps = np.diff(p.t)[np.diff(p.seg) == 0]
    steps = steps[steps > 0]
    dt = float(np.median(steps)) if steps.size else 1.0
    n = len(p.y)
    cyclic = period is not None and n_peaks >= th.min_cycles
    if cyclic and period is not None and float(p.t[-1]) / period <= th.max_baseline_points:
        # Few enough cycles: one baseline point per cycle (its trough) keeps short windows usable.
        bt, by, bs = troughs(p.t, p.y, bounds, period, dt)
        if len(bt) >= 6:
            return _Baseline(bt, by, bs, period, n_peaks, max(1, math.ceil(period / dt)), dt)
    if cyclic and period is not None:
        width = math.ceil(1.5 * period / dt)  # every window of 1.5 cycles holds a trough
    else:
        width = min(5, max(1, n // 20))  # lower envelope against upward spikes, keep power on short series
    width = max(width, math.ceil(n / th.max_baseline_points))
    bt, by, bs = window_minima(p.t, p.y, bounds, [width] * len(bounds))
    return _Baseline(bt, by, bs, period, n_peaks, width, dt)


def baseline(df: pd.DataFrame, *, column: str | None = None, thresholds: LeakThresholds | None = None) -> pd.Series:
    """The baseline points assess_leak fits (window minima of each segment), indexed by UTC time.

    ``series.attrs["segment"]`` holds the segment index of each point.
    """
    p = prepare(df, column)
    b = _baseline(p, thresholds or LeakThresholds())
    index = pd.DatetimeIndex(p.t0 + pd.to_timedelta(b.t, unit="s"), name="timestamp")
    series = pd.Series(b.y, index=index, name=p.column)
    series.attrs["segment"] = b.seg.tolist()
    return series


def _needed(p: Prepared, b: _Baseline, th: LeakThresholds) -> DataNeeded | None:
    n, duration = len(p.y), float(p.t[-1])
    reasons: list[str] = []
    more_n, more_s = 0, 0.0
    if n < th.min_samples:
        more_n = th.min_samples - n
        more_s = max(more_s, more_n * b.dt)
        reasons.append(f"{more_n} more samples (have {n}, need {th.min_samples})")
    if duration < th.min_duration_s:
        more_s = max(more_s, th.min_duration_s - duration)
        reasons.append(f"{format_duration(th.min_duration_s - duration)} more (have {format_duration(duration)}, "
                       f"need {format_duration(th.min_duration_s)})")
    if b.period_s is not None and b.n_peaks < th.min_cycles:
        extra = (th.min_cycles + 1) * b.period_s - duration
        if extra > 0:
            more_s = max(more_s, extra)
            reasons.append(f"{format_duration(extra)} more to see {th.min_cycles} GC/free cycles "
                           f"(period ~{format_duration(b.period_s)}, seen {b.n_peaks})")
    if not reasons and len(b.y) < 6:
        more_s = 6 * b.width * b.dt - duration
        reasons.append(f"{format_duration(max(more_s, b.dt))} more: only {len(b.y)} baseline points")
    if not reasons:
        return None
    return DataNeeded(reason="need " + "; ".join(reasons), more_samples=more_n, more_duration_s=max(more_s, 0.0))


@dataclass(frozen=True)
class _Fit:
    """The growth finally reported and the region of each segment its line is drawn over."""

    rate_h: float
    low_h: float
    high_h: float
    p_value: float
    region: np.ndarray  # bool mask over baseline points the line was fitted to
    onset_t: float | None = None  # start of growth (seconds since t0)
    flat_before: bool = False  # a clear change point: the line is flat before onset_t


def _segments(p: Prepared, b: _Baseline, fit: _Fit,
              seg_trends: list[Trend | None]) -> tuple[tuple[SegmentGrowth, ...], float, float]:
    """Per-segment growth and trend polylines; also (fitted baseline at the end, fitted level after restart)."""
    out = []
    slope = fit.rate_h / H
    end_level = start_level = float(np.median(b.y))
    for i, (a, z) in enumerate(p.bounds()):
        st = seg_trends[i]
        mine = b.seg == i
        used = mine & fit.region if (mine & fit.region).any() else mine
        ic = float(np.median(b.y[used] - slope * b.t[used]))
        t_first, t_end = float(p.t[a]), float(p.t[z - 1])
        t_from = t_first if fit.region.all() or fit.flat_before else max(t_first, float(b.t[used][0]))
        points = [(t_from, ic + slope * t_from), (t_end, ic + slope * t_end)]
        if fit.flat_before and fit.onset_t is not None and t_first < fit.onset_t <= t_end:
            pre = mine & (b.t < fit.onset_t)
            flat = float(np.median(b.y[pre])) if pre.any() else ic + slope * fit.onset_t
            points = [(t_first, flat), (fit.onset_t, flat), (t_end, ic + slope * t_end)]
        out.append(SegmentGrowth(
            index=i, start=p.timestamp(t_first), end=p.timestamp(t_end), n_samples=z - a, n_baseline=int(mine.sum()),
            growth_bytes_per_hour=st.slope * H if st else None,
            growth_interval=(st.low * H, st.high * H) if st else None,
            fit_start_bytes=points[0][1], fit_end_bytes=points[-1][1],
            fit_points=tuple((p.timestamp(t), float(v)) for t, v in points)))
        end_level = ic + slope * t_end
        start_level = points[0][1]
    return tuple(out), end_level, start_level


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _confidence(rate_h: float, low_h: float, high_h: float, threshold_h: float, leak: bool, p: float) -> float:
    """Leak: P(rate > threshold) capped by 1 - p; no leak: P(rate < threshold) (normal approximation)."""
    se = (high_h - low_h) / (2 * 1.96)
    if se <= 0:
        share = 1.0 if (rate_h >= threshold_h) == leak else 0.0
    else:
        share = _phi((rate_h - threshold_h) / se) if leak else _phi((threshold_h - rate_h) / se)
    return round(min(share, 1.0 - p) if leak else share, 4)


def _late_early(b: _Baseline, p: Prepared, th: LeakThresholds) -> tuple[Trend | None, Trend | None, np.ndarray]:
    """Trends of the last third and first two thirds of every segment (pooled across segments)."""
    late = np.zeros(len(b.t), dtype=bool)
    for i, (a, z) in enumerate(p.bounds()):
        mine = b.seg == i
        late |= mine & (b.t >= p.t[a] + (2.0 / 3.0) * (p.t[z - 1] - p.t[a]))
    if late.sum() < 6 or (~late).sum() < 6:
        return None, None, late
    return (pooled_theil_sen(b.t[late], b.y[late], b.seg[late], alpha=th.alpha),
            pooled_theil_sen(b.t[~late], b.y[~late], b.seg[~late], alpha=th.alpha), late)


def assess_leak(df: pd.DataFrame, *, column: str | None = None, limit_bytes: float | None = None,
                limit_source: str | None = None, available_bytes: float | None = None,
                thresholds: LeakThresholds | None = None, host_limit: bool = True) -> LeakAssessment:
    """Decide whether the memory baseline in ``df`` (a samples DataFrame) grows like a leak.

    With neither ``limit_bytes`` nor ``available_bytes``, the ceiling is current + this host's available
    memory; ``host_limit=False`` says "no limit known" instead (remote data): no time to limit is projected.
    See docs/analysis.md for the method and every threshold (``LeakThresholds``).
    """
    th = thresholds or LeakThresholds()
    resolve_limit(0.0, limit_bytes=limit_bytes, limit_source=limit_source,
                  available_bytes=available_bytes if available_bytes is not None else 0.0)  # validate early
    p = prepare(df, column)
    notes: list[str] = []
    if column is None:
        notes.append(f"column {p.column} used (first of rss, metrics_rss, cgroup, pss, uss with data)")
    if p.n_gaps:
        notes.append(f"{p.n_gaps} gap row(s) skipped")
    if p.n_unmeasured:
        notes.append(f"{p.n_unmeasured} row(s) without a {p.column} value skipped")
    if p.restarts:
        notes.append(f"{len(p.restarts)} restart(s): {p.n_segments} segments fitted together (own intercepts)")
    b = _baseline(p, th)
    if b.period_s is not None and b.n_peaks >= th.min_cycles:
        notes.append(f"GC/free cycles every ~{format_duration(b.period_s)}: baseline = troughs")
    common = {"column": p.column, "n_samples": len(p.y), "duration_s": float(p.t[-1]), "start": p.t0,
              "end": p.timestamp(p.t[-1]), "restarts": p.restarts, "cycle_period_s": b.period_s, "thresholds": th}
    needed = _needed(p, b, th)
    trend = None if needed else pooled_theil_sen(b.t, b.y, b.seg, alpha=th.alpha)
    if needed or trend is None:
        needed = needed or DataNeeded("need more distinct samples to fit a trend", 0, th.min_duration_s)
        return LeakAssessment(
            verdict="inconclusive", pattern="unknown", growth_bytes_per_hour=None, growth_interval=None,
            confidence=0.0, p_value=None, segments=(), limit_bytes=limit_bytes,
            limit_source=(limit_source or "given") if limit_bytes is not None else None, time_to_limit_s=None,
            time_to_limit_interval=None, recommended_restart_interval_s=None, severity="none",
            advice=f"Not enough data yet: {needed}.", onset=None, needed=needed, notes=tuple(notes), **common)
    known = limit_bytes is not None or available_bytes is not None or host_limit
    return _decide(p, b, trend, th, notes, common, limit_bytes, limit_source, available_bytes, limit_known=known)


def _classify(p: Prepared, b: _Baseline, trend: Trend, th: LeakThresholds, notes: list[str],
              seg_trends: list[Trend | None], threshold_h: float) -> tuple[str, str, _Fit]:
    """Verdict, pattern and the growth to report (see docs/analysis.md for the rules)."""
    bounds = p.bounds()
    everything = np.ones(len(b.t), dtype=bool)
    fit = _Fit(trend.slope * H, trend.low * H, trend.high * H, trend.p_value, everything)
    significant = trend.p_value < th.alpha and trend.slope > 0
    practical = fit.rate_h >= threshold_h and fit.rate_h * float(p.t[-1]) / H >= th.min_observed_growth_bytes
    cyclic = b.period_s is not None and b.n_peaks >= th.min_cycles
    if significant and not practical:
        notes.append(f"baseline grows {format_bytes(fit.rate_h)}/h: statistically significant but below the "
                     f"practical threshold {format_bytes(threshold_h)}/h")
    if significant and practical:
        jumps = step_jumps(b.t, b.y, b.seg)
        rise = trend.slope * sum(p.t[z - 1] - p.t[a] for a, z in bounds)
        stepped = 2 <= len(jumps) <= 5 and sum(s for _, s in jumps) >= 0.6 * rise
        late, early, late_mask = _late_early(b, p, th)
        if (not stepped and late is not None and early is not None and early.slope > 0
                and late.slope <= th.plateau_ratio * early.slope
                and (late.p_value >= th.alpha or late.slope * H < threshold_h)):
            notes.append(f"baseline grew {format_bytes(early.slope * H)}/h early, then levelled off "
                         f"(last third: {format_bytes(late.slope * H)}/h)")
            return "no_leak", "warm-up-plateau", _Fit(late.slope * H, late.low * H, late.high * H, late.p_value,
                                                      late_mask)
        if stepped:
            notes.append(f"{len(jumps)} steps up: " + ", ".join(
                f"+{format_bytes(s)} at {p.timestamp(t).isoformat()}" for t, s in jumps))
            return "leak", "step", _Fit(fit.rate_h, fit.low_h, fit.high_h, fit.p_value, everything, jumps[0][0])
        return "leak", "sawtooth-rising" if cyclic else "linear", _onset_fit(p, b, seg_trends, th, notes, fit)
    spread = float(np.quantile(b.y, 0.95) - np.quantile(b.y, 0.05)) / max(float(np.median(b.y)), 1.0)
    if trend.p_value < th.alpha and trend.slope < 0:
        notes.append(f"baseline shrinks ({format_bytes(fit.rate_h)}/h)")
    if fit.high_h > threshold_h and trend.p_value >= th.alpha:
        notes.append(f"a growth up to {format_bytes(fit.high_h)}/h cannot be ruled out yet: sample longer to be sure")
    if cyclic:
        return "no_leak", "sawtooth-flat", fit
    if trend.tau > 0:
        warm = _short_warmup(b, p, th, threshold_h)
        if warm is not None:
            notes.append(f"baseline rose {format_bytes(warm.rise)} in the first "
                         f"{format_duration(warm.plateau_t - float(p.t[0]))}, then stayed level "
                         f"({format_bytes(warm.fit.rate_h)}/h since)")
            return "no_leak", "warm-up-plateau", warm.fit
    return "no_leak", "flat" if (spread < 0.05 or not significant) else "unknown", fit


@dataclass(frozen=True)
class _Warmup:
    plateau_t: float  # when the rise ended (seconds since t0)
    rise: float  # bytes
    fit: _Fit  # the trend over the plateau


def _short_warmup(b: _Baseline, p: Prepared, th: LeakThresholds, threshold_h: float) -> _Warmup | None:
    """A rise that levels off early (a cache filling up) in the first segment that shows one.

    Theil-Sen's median slope is ~0 (and Mann-Kendall often not significant) because most pairs lie on the
    plateau, so the thirds-based check never runs. A linear-then-flat fit (the onset hinge on reversed
    time) finds where the rise ends; it counts when it explains the series (halves the SSE of a line), the
    rise is of practical size and > 8 robust sigmas of the plateau's jitter, and the plateau covers at
    least the last third with no practical trend.
    """
    for i in range(p.n_segments):
        mine = b.seg == i
        if mine.sum() < 10:
            continue
        t, y = b.t[mine], b.y[mine]
        rt = float(t[-1]) - t[::-1]
        tau_r, sse_h, sse_l = hinge_onset(rt, y[::-1])
        if not (tau_r > rt[0] and sse_h < 0.5 * sse_l):
            continue
        plateau_t = float(t[-1]) - tau_r
        flat = t >= plateau_t
        rise = float(np.median(y[flat]) - y[0])
        if flat.sum() < 6 or float(t[-1]) - plateau_t < (float(t[-1]) - float(t[0])) / 3 \
                or rise < max(th.min_observed_growth_bytes, 8.0 * mad_sigma(np.diff(y[flat]))):
            continue
        late = pooled_theil_sen(t[flat], y[flat], np.zeros(int(flat.sum()), dtype=np.int64), alpha=th.alpha)
        if late is None or (late.p_value < th.alpha and late.slope * H >= threshold_h):
            continue
        region = np.zeros(len(b.t), dtype=bool)
        region[np.flatnonzero(mine)[flat]] = True
        return _Warmup(plateau_t, rise, _Fit(late.slope * H, late.low * H, late.high * H, late.p_value, region))
    return None


def _decide(p: Prepared, b: _Baseline, trend: Trend, th: LeakThresholds, notes: list[str], common: dict[str, Any],
            limit_bytes: float | None, limit_source: str | None, available_bytes: float | None, *,
            limit_known: bool = True) -> LeakAssessment:
    bounds = p.bounds()
    seg_trends: list[Trend | None] = [trend] if len(bounds) == 1 else [
        pooled_theil_sen(b.t[b.seg == i], b.y[b.seg == i], np.zeros(int((b.seg == i).sum()), dtype=np.int64),
                         alpha=th.alpha) for i in range(len(bounds))]
    level0 = trend.intercepts[-1] + trend.slope * p.t[-1]
    threshold_h = th.practical_rate(level0)
    verdict, pattern, fit = _classify(p, b, trend, th, notes, seg_trends, threshold_h)
    segments, level, restart_level = _segments(p, b, fit, seg_trends)
    a_last, z_last = bounds[-1]
    slope = fit.rate_h / H
    resid = p.y[a_last:z_last] - (level - slope * (p.t[-1] - p.t[a_last:z_last]))
    excursion = max(float(np.quantile(resid, 0.95)), 0.0)  # GC peaks and noise ride above the baseline
    current = level + excursion
    limit: float | None = None
    source: str | None = None
    if limit_known:
        limit, source = resolve_limit(current, limit_bytes=limit_bytes, limit_source=limit_source,
                                      available_bytes=available_bytes)
    ttl = band = restart = None
    severity = "none"
    advice = f"No leak: the memory baseline is {pattern}; no action needed."
    onset = None
    if verdict == "leak":
        onset = p.timestamp(fit.onset_t if fit.onset_t is not None else float(b.t[fit.region][0]))
    if verdict == "leak" and limit is None:
        severity, advice = _without_limit(rate_h=fit.rate_h, level=level, th=th, notes=notes)
    elif verdict == "leak" and limit is not None:
        proj = project(rate_bps=slope, rate_low_bps=fit.low_h / H, rate_high_bps=fit.high_h / H,
                       current_bytes=current, restart_level_bytes=restart_level + excursion, limit=limit,
                       fraction=th.restart_fraction)
        ttl, band, restart = proj.time_to_limit_s, proj.interval, proj.restart_interval_s
        notes.extend(proj.notes)
        doubling = max(level, 1.0) / slope
        severity = severity_for(time_to_limit_s=ttl, doubling_s=doubling, th=th)
        advice = advice_for(severity, ttl_s=ttl, restart_s=restart, doubling_s=doubling)
    conf = _confidence(fit.rate_h, fit.low_h, fit.high_h, threshold_h, verdict == "leak", fit.p_value)
    return LeakAssessment(
        verdict=verdict, pattern=pattern, growth_bytes_per_hour=fit.rate_h, growth_interval=(fit.low_h, fit.high_h),
        confidence=conf, p_value=fit.p_value, segments=segments, limit_bytes=limit, limit_source=source,
        time_to_limit_s=ttl, time_to_limit_interval=band, recommended_restart_interval_s=restart,
        severity=severity, advice=advice, onset=onset, needed=None, notes=tuple(notes), kendall_tau=trend.tau,
        current_bytes=current, **common)


def _without_limit(*, rate_h: float, level: float, th: LeakThresholds, notes: list[str]) -> tuple[str, str]:
    """Severity and advice for a leak with no known ceiling: graded on the time for memory to double."""
    doubling_s = max(level, 1.0) / (rate_h / H)
    severity = severity_for(time_to_limit_s=doubling_s, doubling_s=doubling_s, th=th)
    notes.append("no memory limit known: time to limit and restart interval not projected; "
                 f"severity graded on the time for memory to double (~{format_duration(doubling_s)})")
    advice = (f"Leak of {format_bytes(rate_h)}/h (memory doubles in ~{format_duration(doubling_s)}); no memory limit is "
              "known, so the time to hit it cannot be projected: pass the limit (the unit's MemoryMax, "
              "e.g. --limit 2GiB) to get a time to limit and a restart interval.")
    return severity, advice


def _onset_fit(p: Prepared, b: _Baseline, seg_trends: list[Trend | None], th: LeakThresholds, notes: list[str],
               fit: _Fit) -> _Fit:
    """Onset by a flat-then-linear change point in the first growing segment; growth after it when clear."""
    for i, st in enumerate(seg_trends):
        mine = b.seg == i
        if st is None or mine.sum() < 10 or not (st.slope > 0 and st.p_value < th.alpha):
            continue
        tau, sse_h, sse_l = hinge_onset(b.t[mine], b.y[mine])
        if not (tau > float(b.t[mine][0]) and sse_h < 0.5 * sse_l):
            if i == 0:
                notes.append("growth already under way when recording began: onset is at or before the start")
            return _Fit(fit.rate_h, fit.low_h, fit.high_h, fit.p_value, fit.region, float(p.t[p.bounds()[i][0]]))
        after = (b.seg > i) | (mine & (b.t >= tau))
        post = pooled_theil_sen(b.t[after], b.y[after], b.seg[after], alpha=th.alpha) if after.sum() >= 6 else None
        notes.append(f"growth starts at {p.timestamp(tau).isoformat()} (change point); flat before")
        if post is None:
            return _Fit(fit.rate_h, fit.low_h, fit.high_h, fit.p_value, fit.region, tau, True)
        notes.append(f"growth since onset: {format_bytes(post.slope * H)}/h (whole series: {format_bytes(fit.rate_h)}/h)")
        return _Fit(post.slope * H, post.low * H, post.high * H, min(post.p_value, fit.p_value), after, tau, True)
    return fit
