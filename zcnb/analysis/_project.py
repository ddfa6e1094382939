"""From a growth rate to decisions: the limit, time to reach it, restart interval, severity, advice."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import AnalysisError
from ..units import format_bytes, format_duration

__all__ = ["Projection", "advice_for", "project", "resolve_limit"]


def resolve_limit(current_bytes: float, *, limit_bytes: float | None, limit_source: str | None,
                  available_bytes: float | None) -> tuple[float | None, str | None]:
    """The memory ceiling from explicit arguments: a limit (e.g. the unit's MemoryMax), else current + available
    memory; (None, None) when neither is given. Never this host's memory (the limit belongs to the target)."""
    if limit_bytes is not None:
        if not (isinstance(limit_bytes, (int, float)) and math.isfinite(limit_bytes) and limit_bytes > 0):
            raise AnalysisError(f"limit_bytes must be a positive number of bytes, got {limit_bytes!r}",
                                hint="pass e.g. 2 * 1024**3 for 2 GiB (the unit's MemoryMax), or None")
        return float(limit_bytes), limit_source or "given"
    if available_bytes is not None:
        if not (isinstance(available_bytes, (int, float)) and math.isfinite(available_bytes) and available_bytes >= 0):
            raise AnalysisError(f"available_bytes must be a non-negative number, got {available_bytes!r}",
                                hint="pass the target host's available memory in bytes, or None")
        return current_bytes + float(available_bytes), limit_source or "current + available memory (given)"
    return None, None


@dataclass(frozen=True)
class Projection:
    time_to_limit_s: float
    interval: tuple[float, float | None]
    restart_interval_s: float | None
    notes: tuple[str, ...]


def project(*, rate_bps: float, rate_low_bps: float, rate_high_bps: float, current_bytes: float,
            restart_level_bytes: float, limit: float, fraction: float) -> Projection:
    """Time to ``limit`` at ``rate_bps`` (with a band from the rate interval) and a restart interval.

    The restart interval keeps memory under ``fraction * limit`` starting from the post-restart level
    ``restart_level_bytes``, using the *upper* rate bound so the schedule is safe.
    """
    notes: list[str] = []
    headroom = limit - current_bytes
    if headroom <= 0:
        ttl = 0.0
        band: tuple[float, float | None] = (0.0, 0.0)
        notes.append(f"memory ({format_bytes(current_bytes)}) is already at or above the limit ({format_bytes(limit)})")
    else:
        ttl = headroom / rate_bps
        soonest = headroom / rate_high_bps if rate_high_bps > 0 else ttl
        latest = headroom / rate_low_bps if rate_low_bps > 0 else None  # interval reaches 0: maybe never
        band = (soonest, latest)
    target = fraction * limit - restart_level_bytes
    upper = max(rate_high_bps, rate_bps)
    if target <= 0:
        restart = 0.0
        notes.append(f"right after a restart memory is already above {fraction:.0%} of the limit: "
                     "restarts cannot keep it under; roll back or raise the limit")
    else:
        restart = target / upper
    return Projection(ttl, band, restart, tuple(notes))


_QUARTER_S = 90 * 86400.0  # the runbook's "quarterly maintenance": no point scheduling rarer restarts


def advice_for(severity: str, *, ttl_s: float | None, restart_s: float | None, doubling_s: float | None = None,
               rate_h: float | None = None, limit: float | None = None) -> str:
    """One actionable sentence per severity (runbook Steps 2-3, When to Escalate, Rollback), quoting the same
    figures the verdict table shows: the time to the limit when one is known, else the time to double."""
    if limit is not None and ttl_s is not None:
        clock = f"the limit ({format_bytes(limit)}) is reached in ~{format_duration(ttl_s)}"
        short = f"limit in ~{format_duration(ttl_s)}"
    else:
        clock = f"memory doubles in ~{format_duration(doubling_s)}; no memory limit is known"
        short = f"memory doubles in ~{format_duration(doubling_s)}, no limit known"
    every = "-"
    if restart_s is not None:
        every = (format_duration(restart_s) if restart_s <= _QUARTER_S
                 else f"{format_duration(_QUARTER_S)} (quarterly maintenance; the leak allows longer)")
    rate = f"{format_bytes(rate_h)}/h" if rate_h is not None else "growth"
    if severity == "catastrophic":
        return (f"Leak within minutes ({rate}: {clock}): roll back to the previous version now; "
                "restart the gateway meanwhile to buy time.")
    if severity == "high":
        return (f"Fast leak ({rate}: {clock}): restart the gateway now, then diagnose the leak source (Step 3); "
                f"until fixed, restart at least every {every}.")
    if severity == "moderate":
        return f"Gradual leak ({rate}, {short}): schedule restarts every {every} and diagnose the source (Step 3)."
    if severity == "low":
        return (f"Gradual leak over days ({rate}, {short}): acceptable with routine restarts every {every} "
                "(add them to the maintenance schedule); fix it in code.")
    return "No action needed."
