"""Push the baseline into Prometheus for big fleets: only the per-window minimum leaves the server.

Raw mode reads every sample of every instance (``query_range(q, step)``). For a big fleet that is
millions of points of JSON; the first thing the analysis does with them is take the minimum of each
window (the trough baseline). Baseline mode asks Prometheus for exactly that:
``min_over_time(q[W])`` evaluated every ``W`` -- one point per window and instance.

Switch-over rule (:func:`choose_mode`): raw while ``series x points per series`` stays within
``RAW_POINTS_MAX`` (2,000,000: ~350 instances x 1 day at 15 s, ~70 MB of JSON), baseline beyond.
``W`` (:func:`baseline_window`): at least 1.5 x the expected GC cycle (each window must hold a
trough), at least the span over ``TARGET_WINDOWS`` windows, a whole number of steps. Ranges are cut
so each request stays under Prometheus' 11,000 points per series and loads at most
``SAMPLES_PER_REQUEST`` raw samples on the server (its ``--query.max-samples`` default is 50 M).
"""

from __future__ import annotations

import math
import re

__all__ = ["RAW_POINTS_MAX", "SAMPLES_PER_REQUEST", "TARGET_WINDOWS", "baseline_query", "baseline_window",
           "choose_mode", "windows_per_request"]

RAW_POINTS_MAX = 2_000_000
TARGET_WINDOWS = 300
SAMPLES_PER_REQUEST = 20_000_000
_SELECTOR_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{[^{}]*\})?$|^\{[^{}]*\}$")


def choose_mode(n_series: int, start: float, end: float, step_s: float, *, raw_points_max: int = RAW_POINTS_MAX) -> str:
    """"raw" or "baseline" by the number of points a raw query would return."""
    points = n_series * (math.floor((end - start) / step_s) + 1)
    return "raw" if points <= raw_points_max else "baseline"


def baseline_window(start: float, end: float, step_s: float, *, gc_cycle_s: float | None = None,
                    target_windows: int = TARGET_WINDOWS) -> float:
    """The window W (seconds, a multiple of ``step_s``) of the per-window minimum."""
    w = max((end - start) / max(target_windows, 1), step_s)
    if gc_cycle_s:
        w = max(w, 1.5 * gc_cycle_s)
    return math.ceil(w / step_s - 1e-9) * step_s


def _dur(seconds: float) -> str:
    if seconds < 1 or abs(seconds - round(seconds)) > 1e-6:
        return f"{round(seconds * 1000)}ms"
    s = round(seconds)
    return f"{s // 3600}h" if s % 3600 == 0 else f"{s // 60}m" if s % 60 == 0 else f"{s}s"


def baseline_query(query: str, window_s: float, step_s: float) -> str:
    """``min_over_time(q[W])`` for a plain selector, a subquery ``min_over_time((q)[W:step])`` otherwise."""
    q = query.strip()
    if _SELECTOR_RE.match(q):
        return f"min_over_time({q}[{_dur(window_s)}])"
    return f"min_over_time(({q})[{_dur(window_s)}:{_dur(step_s)}])"


def windows_per_request(n_series: int, window_s: float, step_s: float, *, max_points: int = 11_000,
                        samples_per_request: int = SAMPLES_PER_REQUEST) -> int:
    """Baseline points per series per request: under the 11,000 limit and the server's sample budget."""
    per_window = max(window_s / step_s, 1.0) * max(n_series, 1)
    return max(2, min(max_points, int(samples_per_request // per_window)))
