"""assess_leak: verdict, pattern, growth, projection and severity for one memory series."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..units import format_bytes, format_duration
from ._model import DataNeeded, LeakAssessment, LeakThresholds, SegmentGrowth
from ._prepare import Prepared, prepare
from ._project import advice_for, project, resolve_limit
from ._stats import (
    Trend,
    bounded_fit,
    cycle_period,
    hinge_onset,
    mad_sigma,
    pooled_theil_sen,
    step_episodes,
    troughs,
    window_minima,
)
from .verdict import LeakFeatures, decide_verdict

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
    startup_ramp: float = 0.0  # bytes of a start-up ramp left out of the baseline (_skip_startup)


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


def _skip_startup(b: _Baseline) -> tuple[_Baseline, float]:
    """Drop a start-up ramp: a sharp rise in the first two steps of a segment's baseline (a process that has
    just started loads its code and arenas before memory settles). Returns (baseline, bytes skipped)."""
    keep = np.ones(len(b.t), dtype=bool)
    skipped = 0.0
    for i in np.unique(b.seg):
        idx = np.flatnonzero(b.seg == i)
        if len(idx) < 12:
            continue
        y = b.y[idx]
        d = np.diff(y)
        threshold = max(8.0 * mad_sigma(d), 0.02 * float(np.median(y)))
        sharp = d[:3] - float(np.median(d)) > threshold
        nxt = y[2:12]
        # or a start far below the level that follows (a noisy series hides the jump among its steps)
        low = y[:2] < float(np.median(nxt)) - max(8.0 * mad_sigma(nxt), 0.1 * float(np.median(nxt)))
        if not sharp[:2].any() and not low.any():
            continue
        last = max(int(np.flatnonzero(sharp)[-1]) if sharp[:2].any() else -1,
                   int(np.flatnonzero(low)[-1]) if low.any() else -1)
        keep[idx[: last + 1]] = False
        skipped += float(y[last + 1] - y[0])
    if keep.all():
        return b, 0.0
    return _Baseline(b.t[keep], b.y[keep], b.seg[keep], b.period_s, b.n_peaks, b.width, b.dt, skipped), skipped


def _gradual_start(p: Prepared, b: _Baseline) -> bool:
    """Whether the first segment's start-up rise came in several raw steps (a warm-up: a cache filling) rather
    than one jump (the process's own start: the interpreter or binary loading)."""
    if not len(b.t):
        return False
    a, z = p.bounds()[0]
    head = p.y[a:z][p.t[a:z] <= b.t[0]]
    if len(head) < 3:
        return False
    rise = float(head.max() - head[0])
    return rise > 0 and float(np.diff(head).max()) < 0.5 * rise


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


def _needed(p: Prepared, b: _Baseline, th: LeakThresholds, duration: float) -> DataNeeded | None:
    n = len(p.y)
    reasons: list[str] = []
    more_n, more_s = 0, 0.0
    if n < th.min_samples:
        more_n = th.min_samples - n
        more_s = max(more_s, more_n * b.dt)
        reasons.append(f"{more_n} more samples (have {n}, need {th.min_samples})")
    # Timer jitter: 60 samples taken "every 1 s" can span 58.999 s; within half an interval (at most 1 % of the
    # window) the window counts as long enough, so `sample --duration 60 --interval 1` is always decided.
    if duration < th.min_duration_s - min(0.5 * b.dt, 0.01 * th.min_duration_s):
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


def _duration(p: Prepared, dt: float) -> float:
    """The window: span of the samples plus one sampling interval (each sample stands for its interval),
    so 60 samples at 1 s make the 60 s the default thresholds ask for."""
    return float(p.t[-1] - p.t[0]) + dt


def _limit(df: pd.DataFrame, limit_bytes: float | None, limit_source: str | None,
           available_bytes: float | None) -> tuple[float | None, str | None, bool]:
    """(limit, source, relative-to-current) from the arguments, else the limit recorded with the samples.

    ``df.attrs['memory_limit']`` (set by read_samples from the samples header) holds what the sampler found
    on the target; without it the limit is unknown. This host's memory is never used: the limit belongs to
    the target, and the same recording must give the same answer on any machine.
    """
    if limit_bytes is not None:
        return float(limit_bytes), limit_source or "given", False
    if available_bytes is not None:
        return float(available_bytes), limit_source or "current + available memory (given)", True
    rec = df.attrs.get("memory_limit") if isinstance(getattr(df, "attrs", None), dict) else None
    if isinstance(rec, dict):
        value, source = rec.get("bytes"), str(rec.get("source") or "samples header")
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            return float(value), source, False
        return None, source, False
    return None, None, False


def assess_leak(df: pd.DataFrame, *, column: str | None = None, limit_bytes: float | None = None,
                limit_source: str | None = None, available_bytes: float | None = None,
                thresholds: LeakThresholds | None = None, host_limit: bool = False) -> LeakAssessment:
    """Decide whether the memory baseline in ``df`` (a samples DataFrame) grows like a leak.

    The limit is ``limit_bytes`` (e.g. the unit's MemoryMax), else current + ``available_bytes``, else the
    one the sampler recorded in the samples header (``df.attrs['memory_limit']``), else unknown: then no
    time to limit is projected and severity is graded on the time for memory to double. ``host_limit`` is
    accepted for compatibility and ignored: the analyst's machine says nothing about the target's ceiling.
    See docs/analysis.md for the method and every threshold (``LeakThresholds``).
    """
    del host_limit
    th = thresholds or LeakThresholds()
    resolve_limit(0.0, limit_bytes=limit_bytes, limit_source=limit_source,
                  available_bytes=available_bytes if available_bytes is not None else 0.0)  # validate early
    limit, source, relative = _limit(df, limit_bytes, limit_source, available_bytes)
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
    b, ramp = _skip_startup(b)
    if ramp > 0 and not _gradual_start(p, b):
        b = replace(b, startup_ramp=0.0)  # one jump at exec (a process starting), not a cache filling up
    if ramp > 0:
        notes.append(f"start-up ramp (+{format_bytes(ramp)} in the first baseline points of a segment) "
                     "left out of the baseline")
    if b.period_s is not None and b.n_peaks >= th.min_cycles:
        notes.append(f"GC/free cycles every ~{format_duration(b.period_s)}: baseline = troughs")
    duration = _duration(p, b.dt)
    common = {"column": p.column, "n_samples": len(p.y), "duration_s": duration, "start": p.t0,
              "end": p.timestamp(p.t[-1]), "restarts": p.restarts, "cycle_period_s": b.period_s, "thresholds": th}
    needed = _needed(p, b, th, duration)
    trend = None if needed else pooled_theil_sen(b.t, b.y, b.seg, alpha=th.alpha)
    if needed or trend is None:
        needed = needed or DataNeeded("need more distinct samples to fit a trend", 0, th.min_duration_s)
        return _inconclusive(p, b, needed, notes, common, limit if not relative else None,
                             source if not relative else None, f"Not enough data yet: {needed}.")
    return _decide(p, b, trend, th, notes, common, limit, source, relative, duration)


def _inconclusive(p: Prepared, b: _Baseline, needed: DataNeeded, notes: list[str], common: dict[str, Any],
                  limit: float | None, source: str | None, advice: str, trend: Trend | None = None,
                  p_value: float | None = None) -> LeakAssessment:
    slope = trend.slope if trend is not None else 0.0
    fit = _Fit(slope * H, slope * H, slope * H, 1.0, np.ones(len(b.t), dtype=bool))
    have = set(np.unique(b.seg).tolist())
    segments = _segments(p, b, fit, [None] * p.n_segments)[0] if have == set(range(p.n_segments)) else ()
    return LeakAssessment(
        verdict="inconclusive", pattern="unknown", growth_bytes_per_hour=None, growth_interval=None,
        confidence=0.0, p_value=p_value, segments=segments, limit_bytes=limit, limit_source=source,
        time_to_limit_s=None, time_to_limit_interval=None, recommended_restart_interval_s=None, severity="none",
        advice=advice, onset=None, needed=needed, notes=tuple(notes), **common)


def _bounded_region(b: _Baseline) -> np.ndarray:
    """The baseline points the curvature test runs on: the last segment, or the longest if the last is short."""
    counts = np.bincount(b.seg) if len(b.seg) else np.zeros(1, dtype=np.int64)
    last = int(b.seg[-1]) if len(b.seg) else 0
    pick = last if counts[last] >= 8 else int(np.argmax(counts))
    return np.asarray(b.seg == pick, dtype=bool)


def _features(p: Prepared, b: _Baseline, fit: _Fit, level: float, current: float, duration: float,
              limit: float | None, th: LeakThresholds, notes: list[str]) -> LeakFeatures:
    """The decision's inputs for this series (see zcnb.analysis.verdict.LeakFeatures)."""
    region = _bounded_region(b)
    bnd = bounded_fit(b.t[region], b.y[region])
    episodes: list[tuple[float, float]] = []
    step_total = 0.0
    for i in range(p.n_segments):
        mine = b.seg == i
        ep, tot = step_episodes(b.t[mine], b.y[mine])
        episodes += ep
        step_total += tot
    rise = fit.rate_h / H * sum(float(p.t[z - 1] - p.t[a]) for a, z in p.bounds())
    if bnd is not None and bnd.step_delta_bic >= 2.0 and len(bnd.step_ups) >= 2 and len(bnd.step_ups) > len(episodes):
        # level shifts on the baseline beat a line and a bounded model: retained steps under noise
        episodes = list(bnd.step_ups)
        step_total = sum(size for _, size in episodes)
    if len(episodes) >= 2:
        notes.append(f"{len(episodes)} sharp rises of the baseline: " + ", ".join(
            f"+{format_bytes(s)} at {p.timestamp(t).isoformat()}" for t, s in episodes[:8]))
    if bnd is not None and bnd.delta_bic >= th.bounded_min_delta_bic:
        what = (f"time constant ~{format_duration(bnd.tau_s)}" if bnd.model == "saturating"
                else f"rise ends ~{format_duration(bnd.tau_s)} in")
        notes.append(f"a bounded model ({bnd.model}, {what}) beats a straight line by BIC {bnd.delta_bic:.0f}; "
                     f"its growth at the end is {bnd.tail_ratio:.0%} of its mean"
                     + (f"; a line on top of it fits better still (BIC {bnd.persist_delta_bic:.0f}, "
                        f"{format_bytes(bnd.persist_slope * H)}/h)" if bnd.persist_delta_bic >= th.bounded_min_delta_bic
                        else ""))
    return LeakFeatures(
        slope_bps=fit.rate_h / H, slope_low_bps=fit.low_h / H, slope_high_bps=fit.high_h / H, p_value=fit.p_value,
        level_bytes=level, current_bytes=current, duration_s=duration, limit_bytes=limit,
        bounded_delta_bic=bnd.delta_bic if bnd else None, bounded_tail_ratio=bnd.tail_ratio if bnd else None,
        bounded_tau_s=bnd.tau_s if bnd else None, persist_delta_bic=bnd.persist_delta_bic if bnd else None,
        persist_slope_bps=bnd.persist_slope if bnd else None, bounded_rise_bytes=bnd.rise if bnd else None,
        step_episodes=len(episodes), startup_ramp_bytes=b.startup_ramp,
        step_share=step_total / rise if rise > 0 else 0.0,
        cyclic=b.period_s is not None and b.n_peaks >= th.min_cycles)


def _late_fit(p: Prepared, b: _Baseline, th: LeakThresholds) -> _Fit | None:
    """Growth over the last third of every segment (the plateau of a warm-up)."""
    late = np.zeros(len(b.t), dtype=bool)
    for i, (a, z) in enumerate(p.bounds()):
        late |= (b.seg == i) & (b.t >= p.t[a] + (2.0 / 3.0) * (p.t[z - 1] - p.t[a]))
    if late.sum() < 4:
        return None
    tr = pooled_theil_sen(b.t[late], b.y[late], b.seg[late], alpha=th.alpha)
    if tr is None:
        return None
    return _Fit(tr.slope * H, tr.low * H, tr.high * H, tr.p_value, late)


def _decide(p: Prepared, b: _Baseline, trend: Trend, th: LeakThresholds, notes: list[str], common: dict[str, Any],
            limit_in: float | None, source_in: str | None, relative: bool, duration: float) -> LeakAssessment:
    bounds = p.bounds()
    seg_trends: list[Trend | None] = [trend] if len(bounds) == 1 else [
        pooled_theil_sen(b.t[b.seg == i], b.y[b.seg == i], np.zeros(int((b.seg == i).sum()), dtype=np.int64),
                         alpha=th.alpha) for i in range(len(bounds))]
    everything = np.ones(len(b.t), dtype=bool)
    fit = _Fit(trend.slope * H, trend.low * H, trend.high * H, trend.p_value, everything)
    onset_notes: list[str] = []
    if trend.p_value < th.alpha and trend.slope > 0:
        fit = _onset_fit(p, b, seg_trends, th, onset_notes, fit)
    segments, level, restart_level = _segments(p, b, fit, seg_trends)
    a_last, z_last = bounds[-1]
    slope = fit.rate_h / H
    resid = p.y[a_last:z_last] - (level - slope * (p.t[-1] - p.t[a_last:z_last]))
    excursion = max(float(np.quantile(resid, 0.95)), 0.0)  # GC peaks and noise ride above the baseline
    current = level + excursion
    limit, source = (current + limit_in, source_in) if relative and limit_in is not None else (limit_in, source_in)
    feats = _features(p, b, fit, level, current, duration, limit, th, notes)
    dec = decide_verdict(feats, th)
    threshold_h = dec.threshold_rise_bytes / duration * H
    if dec.verdict == "inconclusive":
        more = dec.more_duration_s or th.min_duration_s
        needed = DataNeeded(f"need ~{format_duration(more)} more: {dec.reason}", 0, more)
        notes.append(dec.reason)
        return _inconclusive(p, b, needed, notes, common, limit, source,
                             f"Cannot tell a bounded cache from a leak yet: sample ~{format_duration(more)} longer "
                             "and analyse again.", trend, fit.p_value)
    if dec.verdict == "no_leak":
        if dec.pattern == "warm-up-plateau":
            late = _late_fit(p, b, th)
            if late is not None:
                notes.append(f"baseline levelled off: {format_bytes(late.rate_h)}/h over the last third")
                fit = late
        elif "below" in dec.reason:
            notes.append(dec.reason)
        elif dec.reason == "baseline shrinks":
            notes.append(f"baseline shrinks ({format_bytes(fit.rate_h)}/h)")
        if fit.high_h > threshold_h and fit.p_value >= th.alpha:
            notes.append(f"a growth up to {format_bytes(fit.high_h)}/h cannot be ruled out yet: sample longer to be sure")
        if dec.pattern == "warm-up-plateau":
            segments = _segments(p, b, fit, seg_trends)[0]
        conf = _confidence(fit.rate_h, fit.low_h, fit.high_h, threshold_h, False, fit.p_value)
        return LeakAssessment(
            verdict="no_leak", pattern=dec.pattern, growth_bytes_per_hour=fit.rate_h,
            growth_interval=(fit.low_h, fit.high_h), confidence=conf, p_value=fit.p_value, segments=segments,
            limit_bytes=limit, limit_source=source, time_to_limit_s=None, time_to_limit_interval=None,
            recommended_restart_interval_s=None, severity="none",
            advice=f"No leak: the memory baseline is {_PATTERN_TEXT.get(dec.pattern, dec.pattern)}; no action needed.",
            onset=None, needed=None, notes=tuple(notes), kendall_tau=trend.tau, current_bytes=current, **common)
    notes.extend(onset_notes)
    onset = p.timestamp(fit.onset_t if fit.onset_t is not None else float(b.t[fit.region][0]))
    ttl = band = restart = None
    if limit is not None:
        proj = project(rate_bps=slope, rate_low_bps=fit.low_h / H, rate_high_bps=fit.high_h / H,
                       current_bytes=current, restart_level_bytes=restart_level + excursion, limit=limit,
                       fraction=th.restart_fraction)
        ttl, band, restart = proj.time_to_limit_s, proj.interval, proj.restart_interval_s
        notes.extend(proj.notes)
    else:
        restart = th.no_limit_restart_growth * max(restart_level + excursion, 1.0) / max(fit.high_h / H, slope)
        notes.append("no memory limit known (none recorded with the samples, none given): time to limit not "
                     f"projected; severity graded on the time for memory to double (~{format_duration(dec.doubling_s)})")
    advice = advice_for(dec.severity, ttl_s=ttl, restart_s=restart, doubling_s=dec.doubling_s,
                        rate_h=fit.rate_h, limit=limit)
    conf = _confidence(fit.rate_h, fit.low_h, fit.high_h, threshold_h, True, fit.p_value)
    return LeakAssessment(
        verdict="leak", pattern=dec.pattern, growth_bytes_per_hour=fit.rate_h, growth_interval=(fit.low_h, fit.high_h),
        confidence=conf, p_value=fit.p_value, segments=segments, limit_bytes=limit, limit_source=source,
        time_to_limit_s=ttl, time_to_limit_interval=band, recommended_restart_interval_s=restart,
        severity=dec.severity, advice=advice, onset=onset, needed=None, notes=tuple(notes), kendall_tau=trend.tau,
        current_bytes=current, **common)


_PATTERN_TEXT = {"flat": "flat", "sawtooth-flat": "a flat sawtooth (GC/free cycles)",
                 "warm-up-plateau": "a warm-up that levelled off (bounded cache)", "unknown": "not rising"}


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
