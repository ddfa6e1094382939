"""Stage 02 after-care: does memory grow fast again after the restart?"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..exceptions import ZcnbError
from ..units import format_bytes

__all__ = ["PostRestartCheck", "post_restart_check", "watch_after_restart"]


@dataclass(frozen=True)
class PostRestartCheck:
    """Memory in the window after a restart, judged with :func:`zcnb.analysis.assess_leak`."""

    source: str
    window: str
    n_samples: int
    verdict: str
    severity: str
    growth_bytes_per_hour: float | None
    before_growth_bytes_per_hour: float | None
    grows_fast: bool | None
    message: str
    log_lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "window": self.window, "n_samples": self.n_samples, "verdict": self.verdict,
                "severity": self.severity, "growth_bytes_per_hour": self.growth_bytes_per_hour,
                "before_growth_bytes_per_hour": self.before_growth_bytes_per_hour, "grows_fast": self.grows_fast,
                "message": self.message, "log_lines": list(self.log_lines)}

    def _repr_markdown_(self) -> str:
        mark = {True: "⚠️ grows fast again", False: "✅ no fast regrowth", None: "❔ cannot tell yet"}[self.grows_fast]
        g, b = _rate(self.growth_bytes_per_hour), _rate(self.before_growth_bytes_per_hour)
        out = [f"**After restart: {mark}**", "", self.message, "",
               "| window | samples | verdict | severity | growth after | growth before |", "|---|---|---|---|---|---|",
               f"| {self.window} | {self.n_samples} | {self.verdict} | {self.severity} | {g} | {b} |"]
        if self.log_lines:
            out += ["", f"Last {len(self.log_lines)} log lines:", "```", *self.log_lines, "```"]
        return "\n".join(out)


def _rate(bytes_per_hour: float | None) -> str:
    """``+1.23 MiB/h`` (``-`` when unknown): rates in one unit, so before and after compare at a glance."""
    return "-" if bytes_per_hour is None else format_bytes(bytes_per_hour, unit="MiB", digits=2, signed=True) + "/h"


def _growth(before: Any) -> float | None:
    if before is None:
        return None
    d = before.to_dict() if hasattr(before, "to_dict") else before
    v = d.get("growth_bytes_per_hour") if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def post_restart_check(samples: Any, *, since: datetime | None = None, before: Any = None,
                       log_lines: Sequence[str] = (), limit_bytes: float | None = None) -> PostRestartCheck:
    """Judge the samples after the restart (``since``, else after the last ``restart`` event, else all)."""
    import pandas as pd

    from ..analysis import assess_leak
    from ..collect.sampling import read_samples

    source = "dataframe"
    if not isinstance(samples, pd.DataFrame):
        source = str(samples)
        samples = read_samples(samples)
    df = samples
    if since is not None:
        df = df[df["timestamp"] >= pd.Timestamp(since)]
        window = f"since {pd.Timestamp(since).isoformat()}"
    elif "event" in df and (df["event"] == "restart").any():
        last = df.loc[df["event"] == "restart", "timestamp"].max()
        df = df[df["timestamp"] >= last]
        window = "after the last restart event"
    else:
        window = "whole recording (no restart event in it)"
    prefix = "" if since is not None or window.startswith("after") else "No restart in this recording, so this is the trend before any restart: "
    before_g = _growth(before)
    try:
        a = assess_leak(df.reset_index(drop=True), limit_bytes=limit_bytes)
    except ZcnbError as exc:
        return PostRestartCheck(source, window, len(df), "inconclusive", "none", None, before_g, None,
                                f"cannot judge the window yet: {exc.message}", tuple(log_lines))
    g = a.growth_bytes_per_hour
    if a.verdict == "leak":
        similar = before_g is not None and g is not None and before_g > 0 and g >= 0.5 * before_g
        fast = a.severity in ("catastrophic", "high") or similar
        msg = (f"memory grows again at {_rate(g)} ({a.severity})" if g is not None else "memory grows again")
        msg += (": the restart only bought time; go to stage 03 (diagnose) and stage 06 (escalate)." if fast
                else ": slower than before; keep watching." if before_g else ": slowly; keep watching.")
    elif a.verdict == "no_leak":
        fast, msg = False, "no leak in the post-restart window: the restart helped; keep sampling to be sure."
    else:
        fast = None
        needed = a.needed.reason if a.needed else "more data"
        msg = f"cannot tell yet ({needed}): sample the restarted process longer."
    return PostRestartCheck(source, window, a.n_samples, a.verdict, a.severity, g, before_g, fast, prefix + msg,
                            tuple(log_lines))


def watch_after_restart(manager: Any, unit: str, *, out: str | os.PathLike[str], duration_s: float = 60.0,
                        interval_s: float = 1.0, before: Any = None, log_lines: int = 30) -> PostRestartCheck:
    """Sample the restarted unit's process for ``duration_s`` into ``out``, then :func:`post_restart_check`."""
    from ..collect.sampling import sample

    st = manager.status(unit)
    if st.pid is None:
        from ..exceptions import ProcessNotFound

        raise ProcessNotFound(f"{unit} has no running process to watch", hint="start it first", unit=unit)
    sample(out, pid=st.pid, interval_s=interval_s, duration_s=duration_s, progress=False)
    return post_restart_check(out, before=before, log_lines=manager.log_lines(unit, lines=log_lines))
