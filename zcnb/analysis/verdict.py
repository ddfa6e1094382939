"""The verdict as a pure decision on computed features: leak / no_leak / inconclusive, and severity.

:func:`decide_verdict` knows nothing about samples: it takes a :class:`LeakFeatures` (the trend of the
trough baseline, its level, the window, the limit, and the results of the curvature and step tests) and
returns a :class:`VerdictDecision`. ``assess_leak`` computes the features for one series; a vectorised
fleet pass can compute them for many instances at once and get the same verdicts by calling this
function. Rules and the severity table: docs/analysis.md "Verdict".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..units import format_bytes
from ._model import LeakThresholds

__all__ = ["LeakFeatures", "VerdictDecision", "decide_verdict", "min_relative_rise", "severity_for_time"]

H = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class LeakFeatures:
    """What the decision needs, all computed on the trough baseline (bytes, seconds).

    ``slope_*`` bytes/s (Theil-Sen and its 1 - alpha interval); ``p_value`` of the Mann-Kendall test;
    ``level_bytes`` the fitted baseline at the end; ``current_bytes`` that plus the typical excursion above
    it (GC peaks); ``duration_s`` the window (span + one sampling interval); ``limit_bytes`` the target's
    recorded limit or None when unknown. Curvature (None = not tested): ``bounded_delta_bic`` = BIC(line) -
    BIC(best bounded model: saturating exponential or rise-then-flat), > 0 favours bounded;
    ``bounded_tail_ratio`` = the bounded model's slope at the end / its mean slope over the window;
    ``bounded_tau_s`` its time constant; ``persist_delta_bic`` = BIC(bounded) - BIC(saturating + line), > 0
    when growth goes on after the bend (a warm-up on top of a leak), ``persist_slope_bps`` that line's slope; ``bounded_rise_bytes`` the bounded model's rise over the window. Steps: ``step_episodes`` sharp rises separated by flat stretches,
    ``step_share`` the fraction of the rise they make. ``cyclic``: a GC/free sawtooth was found.
    """

    slope_bps: float
    slope_low_bps: float
    slope_high_bps: float
    p_value: float
    level_bytes: float
    current_bytes: float
    duration_s: float
    limit_bytes: float | None = None
    bounded_delta_bic: float | None = None
    bounded_tail_ratio: float | None = None
    bounded_tau_s: float | None = None
    persist_delta_bic: float | None = None
    persist_slope_bps: float | None = None
    bounded_rise_bytes: float | None = None
    step_episodes: int = 0
    step_share: float = 0.0
    cyclic: bool = False
    startup_ramp_bytes: float = 0.0  # a start-up rise left out of the baseline (the cache filling, then level)

    @property
    def rise_bytes(self) -> float:
        """Baseline growth over the window at the fitted slope."""
        return self.slope_bps * self.duration_s


@dataclass(frozen=True)
class VerdictDecision:
    """The decision and the figures it rests on (all consistent with each other)."""

    verdict: str  # leak | no_leak | inconclusive
    pattern: str  # linear | step | sawtooth-rising | sawtooth-flat | warm-up-plateau | flat | unknown
    severity: str  # catastrophic | high | moderate | low | none
    reason: str
    time_to_limit_s: float | None = None  # leak with a known limit
    doubling_s: float | None = None  # leak: time for the baseline to double at the slope
    more_duration_s: float | None = None  # inconclusive: how much longer to sample
    threshold_rise_bytes: float = 0.0  # smallest rise over this window that counts


def min_relative_rise(duration_s: float, th: LeakThresholds) -> float:
    """Smallest baseline rise, as a fraction of the level, that counts as a leak over a window this long.

    ``short_rise_fraction`` for windows up to ``short_window_s``, falling log-linearly to
    ``long_rise_fraction`` at ``long_window_s`` and beyond: a short window needs a larger relative rise
    (allocator arenas and caches move a few percent in minutes), a long one a smaller (30 % in a week is a leak).
    """
    lo_t, hi_t = th.short_window_s, th.long_window_s
    if duration_s <= lo_t:
        return th.short_rise_fraction
    if duration_s >= hi_t:
        return th.long_rise_fraction
    x = math.log(duration_s / lo_t) / math.log(hi_t / lo_t)
    return th.short_rise_fraction + x * (th.long_rise_fraction - th.short_rise_fraction)


def severity_for_time(seconds: float, th: LeakThresholds) -> str:
    """The runbook's "When to Escalate" classes from a time to the limit (or, no limit known, to double)."""
    if seconds < th.catastrophic_s:
        return "catastrophic"
    if seconds < th.high_s:
        return "high"
    if seconds < th.moderate_s:
        return "moderate"
    return "low"


def _clock(f: LeakFeatures) -> tuple[float | None, float, float]:
    """(time to limit or None, doubling time, the clock severity is graded on)."""
    slope = max(f.slope_bps, 1e-12)
    doubling = max(f.level_bytes, 1.0) / slope
    if f.limit_bytes is None:
        return None, doubling, doubling
    ttl = max(f.limit_bytes - f.current_bytes, 0.0) / slope
    return ttl, doubling, ttl


def decide_verdict(f: LeakFeatures, th: LeakThresholds | None = None) -> VerdictDecision:
    """Leak, no leak or inconclusive from the features (rules in docs/analysis.md "Verdict")."""
    th = th or LeakThresholds()
    frac = min_relative_rise(f.duration_s, th)
    need = max(frac * max(f.level_bytes, 0.0), th.min_observed_growth_bytes)
    flat_pattern = "sawtooth-flat" if f.cyclic else "flat"
    bounded = (f.bounded_delta_bic is not None and f.bounded_delta_bic >= th.bounded_min_delta_bic
               and f.bounded_tail_ratio is not None
               and not (f.persist_delta_bic is not None and f.persist_delta_bic >= th.bounded_min_delta_bic
                        and (f.persist_slope_bps or 0.0) * f.duration_s >= need))
    levelled = bounded and f.bounded_tail_ratio is not None and f.bounded_tail_ratio <= th.levelled_tail_ratio
    rising = f.p_value < th.alpha and f.slope_bps > 0
    warmed = levelled and not f.cyclic and (f.bounded_rise_bytes is None or f.bounded_rise_bytes >= need)
    # A rise at the start, left out of the baseline, then a level baseline: the warm-up has already levelled off.
    ramped = not f.cyclic and f.startup_ramp_bytes >= need
    if not rising and warmed:
        return VerdictDecision("no_leak", "warm-up-plateau", "none", "growth levelled off early (a bounded model "
                               "beats a line)", threshold_rise_bytes=need)
    if not rising:
        # A shrink counts by the same measure as a rise: a significant fall smaller than the rise that would
        # count is a level baseline (its sign is then down to which troughs the baseline happened to keep).
        shrinking = f.p_value < th.alpha and f.slope_bps < 0 and -f.slope_bps * f.duration_s >= need
        small_fall = f.p_value < th.alpha and f.slope_bps < 0 and not shrinking
        why = ("baseline shrinks" if shrinking else "baseline falls by less than what counts" if small_fall
               else "no significant baseline trend")
        if ramped and not shrinking:
            return VerdictDecision("no_leak", "warm-up-plateau", "none",
                                   f"a start-up rise of {format_bytes(f.startup_ramp_bytes)}, then {why}",
                                   threshold_rise_bytes=need)
        return VerdictDecision("no_leak", "unknown" if shrinking and not f.cyclic else flat_pattern, "none", why,
                               threshold_rise_bytes=need)
    ttl, doubling, clock = _clock(f)
    near_limit = ttl is not None and ttl < th.high_s  # limit within a day: material whatever the level
    if f.rise_bytes < need and not near_limit:
        return VerdictDecision(
            "no_leak", "warm-up-plateau" if warmed or ramped else flat_pattern, "none",
            f"baseline rises {100 * f.rise_bytes / max(f.level_bytes, 1.0):.2g} % over the window: below the "
            f"{100 * frac:.2g} % that counts for a window this long", threshold_rise_bytes=need)
    if f.slope_low_bps * f.duration_s < 0.5 * need and not near_limit and not levelled:
        if f.rise_bytes >= 3.0 * need:
            return VerdictDecision("inconclusive", "unknown", "none",
                                   "the baseline rises, but too unevenly to rule out noise in this window",
                                   more_duration_s=max(f.duration_s, th.min_duration_s), threshold_rise_bytes=need)
        return VerdictDecision(
            "no_leak", flat_pattern, "none",
            f"baseline rises {100 * f.rise_bytes / max(f.level_bytes, 1.0):.2g} % over the window, but the lower end "
            f"of its interval is below the {100 * frac:.2g} % that counts for a window this long",
            threshold_rise_bytes=need)
    severity = severity_for_time(clock, th)
    if f.step_episodes >= 2 and f.step_share >= th.step_share:
        return VerdictDecision("leak", "step", severity, f"{f.step_episodes} retained steps", ttl, doubling,
                               threshold_rise_bytes=need)
    if bounded and f.bounded_tail_ratio is not None:
        if levelled:
            return VerdictDecision("no_leak", "warm-up-plateau", "none",
                                   "growth levels off (a bounded model beats a line)", threshold_rise_bytes=need)
        if f.bounded_tail_ratio <= th.undecided_tail_ratio and severity != "catastrophic":
            tau = f.bounded_tau_s if f.bounded_tau_s and math.isfinite(f.bounded_tau_s) else f.duration_s
            more = max(3.0 * tau - f.duration_s, 0.5 * f.duration_s, th.min_duration_s)
            return VerdictDecision("inconclusive", "unknown", "none",
                                   "growth decelerates but has not levelled off: a bounded cache and a leak are "
                                   "not yet told apart", more_duration_s=more, threshold_rise_bytes=need)
    pattern = "sawtooth-rising" if f.cyclic else "linear"
    return VerdictDecision("leak", pattern, severity, "baseline grows", ttl, doubling, threshold_rise_bytes=need)
