"""From a growth rate to decisions: the limit, time to reach it, restart interval, severity, advice."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import AnalysisError
from ..units import format_bytes, format_duration
from ._model import LeakThresholds

__all__ = ["Projection", "project", "resolve_limit", "severity_for"]


def resolve_limit(current_bytes: float, *, limit_bytes: float | None, limit_source: str | None,
                  available_bytes: float | None) -> tuple[float, str]:
    """The memory ceiling: an explicit limit (e.g. the unit's MemoryMax), else current + available memory."""
    if limit_bytes is not None:
        if not (isinstance(limit_bytes, (int, float)) and math.isfinite(limit_bytes) and limit_bytes > 0):
            raise AnalysisError(f"limit_bytes must be a positive number of bytes, got {limit_bytes!r}",
                                hint="pass e.g. 2 * 1024**3 for 2 GiB, or None to use available memory")
        return float(limit_bytes), limit_source or "given"
    if available_bytes is not None:
        if not (isinstance(available_bytes, (int, float)) and math.isfinite(available_bytes) and available_bytes >= 0):
            raise AnalysisError(f"available_bytes must be a non-negative number, got {available_bytes!r}",
                                hint="pass the host's available memory in bytes, or None to read it with psutil")
        return current_bytes + float(available_bytes), limit_source or "current + available memory (given)"
    import psutil

    # No MemoryMax: the process can grow by what the host still has available (TARGET.md).
    return current_bytes + float(psutil.virtual_memory().available), "current + available memory on this host (psutil)"


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


def severity_for(*, time_to_limit_s: float, doubling_s: float, th: LeakThresholds) -> str:
    """Runbook "When to Escalate": minutes -> catastrophic, hours -> high, days -> moderate/low.

    Catastrophic also when memory would double within ``catastrophic_s`` whatever the limit.
    """
    if min(time_to_limit_s, doubling_s) < th.catastrophic_s:
        return "catastrophic"  # at the limit, or memory doubling, within the hour: a per-request leak
    if time_to_limit_s < th.high_s:
        return "high"
    if time_to_limit_s < th.moderate_s:
        return "moderate"
    return "low"


def advice_for(severity: str, *, ttl_s: float | None, restart_s: float | None,
               doubling_s: float | None = None) -> str:
    """One actionable sentence per severity (runbook Steps 2-3, When to Escalate, Rollback)."""
    ttl = format_duration(ttl_s)
    every = format_duration(restart_s)
    if severity == "catastrophic":
        # Say which clock made it catastrophic: the limit, or memory doubling (a leak on every request).
        fast = (f"memory doubles in ~{format_duration(doubling_s)}, limit in ~{ttl}"
                if doubling_s is not None and (ttl_s is None or doubling_s < ttl_s) else f"limit in ~{ttl}")
        return (f"Leak within minutes ({fast}): roll back to the previous version now; "
                "restart the gateway meanwhile to buy time.")
    if severity == "high":
        return f"Restart the gateway now (limit in ~{ttl}), then diagnose the leak source (Step 3)."
    if severity == "moderate":
        return f"Gradual leak (limit in ~{ttl}): schedule restarts every {every} and diagnose the source (Step 3)."
    if severity == "low":
        return (f"Gradual leak over days (limit in ~{ttl}): acceptable with routine restarts every {every}; "
                "add it to the maintenance schedule and fix it in code.")
    return "No action needed."
