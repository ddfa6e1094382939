"""Result types of the leak analysis: thresholds, per-segment growth, the assessment."""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..units import format_bytes, format_duration

__all__ = ["DataNeeded", "LeakAssessment", "LeakThresholds", "SegmentGrowth"]

MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class LeakThresholds:
    """Tunable rules of :func:`zcnb.analysis.assess_leak` (defaults documented in docs/analysis.md)."""

    alpha: float = 0.05  # Mann-Kendall significance level; also sets the 1-alpha growth interval
    min_samples: int = 20
    min_duration_s: float = 60.0  # window = span + one sampling interval: 60 samples at 1 s make 60 s
    min_cycles: int = 3  # GC/free cycles to observe before trusting a sawtooth baseline
    # A leak must rise by this fraction of the baseline level over the window: short windows need more
    # (allocator arenas and caches move a few percent in minutes), a week less (30 % a week is a leak).
    short_rise_fraction: float = 0.05  # windows up to short_window_s
    long_rise_fraction: float = 0.02  # windows from long_window_s on (log-linear in between)
    short_window_s: float = 300.0
    long_window_s: float = 86400.0
    min_observed_growth_bytes: float = 512.0 * 1024  # growth seen in the window must exceed page/arena jitter
    step_share: float = 0.6  # >= 2 sharp rises making this share of the rise: a step leak
    bounded_min_delta_bic: float = 10.0  # "very strong" evidence (Kass & Raftery) for a bounded model over a line
    levelled_tail_ratio: float = 0.25  # bounded model's end slope / mean slope at or below: levelled off
    undecided_tail_ratio: float = 0.8  # between the two: decelerating but not levelled, inconclusive
    restart_fraction: float = 0.8  # recommended restarts keep memory under this fraction of the limit
    no_limit_restart_growth: float = 0.5  # no limit known: restart before the baseline grows by this fraction
    catastrophic_s: float = 3600.0  # time to limit (no limit: to double) under 1 h: roll back now
    high_s: float = 86400.0  # under a day: restart now, then diagnose
    moderate_s: float = 7 * 86400.0  # under a week: scheduled restarts + fix; beyond: low
    max_baseline_points: int = 2000  # decimation target: Theil-Sen is O(n^2) in baseline points

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataNeeded:
    """What more data an inconclusive assessment needs."""

    reason: str
    more_samples: int = 0
    more_duration_s: float = 0.0

    def __str__(self) -> str:
        return self.reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SegmentGrowth:
    """One run of the process between restarts."""

    index: int
    start: datetime
    end: datetime
    n_samples: int
    n_baseline: int
    growth_bytes_per_hour: float | None  # this segment alone (Theil-Sen), None if too few points
    growth_interval: tuple[float, float] | None
    fit_start_bytes: float  # reported-growth trend line (per-segment intercept) at start/end
    fit_end_bytes: float
    fit_points: tuple[tuple[datetime, float], ...] = ()  # trend polyline to draw (flat before a clear onset)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fit_points"] = [[t.isoformat(), v] for t, v in self.fit_points]
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat()
        d["growth_interval"] = list(self.growth_interval) if self.growth_interval else None
        return d


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class LeakAssessment:
    """Verdict on one memory series (see docs/CONTRACTS.md "Analysis")."""

    verdict: str  # leak | no_leak | inconclusive
    pattern: str  # linear | step | sawtooth-rising | sawtooth-flat | warm-up-plateau | flat | unknown
    growth_bytes_per_hour: float | None
    growth_interval: tuple[float, float] | None
    confidence: float
    p_value: float | None
    column: str
    n_samples: int
    duration_s: float
    start: datetime
    end: datetime
    segments: tuple[SegmentGrowth, ...]
    restarts: tuple[datetime, ...]
    limit_bytes: float | None
    limit_source: str | None
    time_to_limit_s: float | None
    time_to_limit_interval: tuple[float, float | None] | None  # (soonest, latest); latest None = never
    recommended_restart_interval_s: float | None
    severity: str  # catastrophic | high | moderate | low | none
    advice: str
    onset: datetime | None
    needed: DataNeeded | None
    notes: tuple[str, ...]
    kendall_tau: float | None = None
    cycle_period_s: float | None = None
    current_bytes: float | None = None  # fitted baseline at the end plus typical excursion above it
    thresholds: LeakThresholds = field(default_factory=LeakThresholds)

    @property
    def is_leak(self) -> bool:
        return self.verdict == "leak"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: timestamps ISO 8601, no NaN/inf (unbounded = None)."""
        tti = self.time_to_limit_interval
        return {
            "verdict": self.verdict,
            "pattern": self.pattern,
            "growth_bytes_per_hour": _finite(self.growth_bytes_per_hour),
            "growth_interval": [_finite(v) for v in self.growth_interval] if self.growth_interval else None,
            "confidence": self.confidence,
            "p_value": _finite(self.p_value),
            "kendall_tau": _finite(self.kendall_tau),
            "column": self.column,
            "n_samples": self.n_samples,
            "duration_s": self.duration_s,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "segments": [s.to_dict() for s in self.segments],
            "restarts": [r.isoformat() for r in self.restarts],
            "cycle_period_s": _finite(self.cycle_period_s),
            "current_bytes": _finite(self.current_bytes),
            "limit_bytes": _finite(self.limit_bytes),
            "limit_source": self.limit_source,
            "time_to_limit_s": _finite(self.time_to_limit_s),
            "time_to_limit_interval": [_finite(tti[0]), _finite(tti[1])] if tti else None,
            "recommended_restart_interval_s": _finite(self.recommended_restart_interval_s),
            "severity": self.severity,
            "advice": self.advice,
            "onset": _iso(self.onset),
            "needed": self.needed.to_dict() if self.needed else None,
            "notes": list(self.notes),
            "thresholds": self.thresholds.to_dict(),
        }

    def growth_text(self) -> str:
        """``+12.30 MiB/h (+10.10 MiB .. +14.00 MiB)``."""
        if self.growth_bytes_per_hour is None:
            return "-"
        text = format_bytes(self.growth_bytes_per_hour, unit="MiB", digits=2, signed=True) + "/h"
        if self.growth_interval:
            lo, hi = self.growth_interval
            text += (f" ({format_bytes(lo, unit='MiB', digits=2, signed=True)} .. "
                     f"{format_bytes(hi, unit='MiB', digits=2, signed=True)})")
        return text

    def time_to_limit_text(self) -> str:
        """``3.2 h (2.5 h .. 4.8 h)``, ``-``, or ``not projected (no limit known)`` for a leak without a limit."""
        if self.time_to_limit_s is None:
            return "not projected (no limit known)" if self.verdict == "leak" and self.limit_bytes is None else "-"
        text = format_duration(self.time_to_limit_s)
        if self.time_to_limit_interval:
            lo, hi = self.time_to_limit_interval
            text += f" ({format_duration(lo)} .. {format_duration(hi if hi is not None else math.inf)})"
        return text

    def rows(self) -> list[tuple[str, str]]:
        """The verdict table as (label, text) rows (HTML and CLI share it)."""
        limit = "none known" if self.limit_bytes is None else f"{format_bytes(self.limit_bytes)} ({self.limit_source})"
        p = "-" if self.p_value is None else f"{self.p_value:.2g}"
        rows = [
            ("verdict", f"{self.verdict} (confidence {self.confidence:.2f}, p={p})"),
            ("pattern", self.pattern),
            ("growth", self.growth_text()),
            ("current", format_bytes(self.current_bytes)),
            ("limit", limit),
            ("time to limit", self.time_to_limit_text()),
            ("restart every", format_duration(self.recommended_restart_interval_s)),
            ("severity", self.severity),
            ("advice", self.advice),
            ("onset", self.onset.isoformat() if self.onset else "-"),
            ("column", (f"{self.column}, {self.n_samples} samples over {format_duration(self.duration_s)}, "
                        f"{len(self.restarts) + 1} segment(s)")),
        ]
        if self.needed:
            rows.append(("needed", str(self.needed)))
        rows += [("note", n) for n in self.notes]
        return rows

    def _repr_html_(self) -> str:
        colour = {"leak": "#b00020", "no_leak": "#1b5e20", "inconclusive": "#8a6d00"}.get(self.verdict, "#000")
        body = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self.rows()
        )
        return (f"<div><b style='color:{colour}'>Leak assessment: {html.escape(self.verdict)}</b>"
                f"<table>{body}</table></div>")
