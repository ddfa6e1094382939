"""The evidence timeline of an incident: onset, detection, each action, recovery, OOM kills.

Every entry is built from data in the incident folder (samples, assessment, actions, oom.json)
and names the evidence that proves it (a notebook section or a figure), so a reader
can check each claim. The entries, their table and figure: :mod:`zcnb.viz.timeline`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from ..actions import read_actions
from ..incident import Incident
from ..units import format_bytes, format_duration
from ..viz.timeline import Timeline, TimelineEntry

__all__ = ["build_timeline", "detectable_at"]


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    out: datetime = t.to_pydatetime()
    return out


def build_timeline(incident: Incident, samples: pd.DataFrame | None = None,
                   assessment: dict[str, Any] | None = None) -> Timeline:
    """Collect the timeline entries from the incident folder (or the given data).

    Only what happened is on the timeline: executed actions, never dry-run plans (the report lists those apart).
    """
    if assessment is None and incident.has("assessment"):
        assessment = incident.read_json("assessment")
    if samples is None and incident.has("samples"):
        from ..collect.sampling import read_samples

        samples = read_samples(incident.path("samples"))
    a = assessment or {}
    out: list[TimelineEntry] = []
    onset = _ts(a.get("onset"))
    if onset is not None:
        out.append(TimelineEntry(onset, "onset", "memory baseline starts to grow (change point)",
                                 "01_confirm_leak.ipynb > Memory over time; figures/memory.png (onset marker)"))
    if samples is not None and a.get("verdict") == "leak":
        first = detectable_at(samples, column=a.get("column"))
        if first is not None:
            out.append(TimelineEntry(first, "detectable", "first moment the samples so far give a leak verdict",
                                     "01_confirm_leak.ipynb > Explore (window ending here)"))
    detected = _ts(a.get("detected_at"))
    if detected is not None and a.get("verdict"):
        g = a.get("growth_bytes_per_hour")
        rate = f" at {format_bytes(g, unit='MiB', signed=True)}/h" if isinstance(g, (int, float)) else ""
        out.append(TimelineEntry(detected, "verdict",
                                 f"stage 01 recorded its verdict: {a['verdict']}{rate}, severity {a.get('severity')}",
                                 "01_confirm_leak.ipynb > Verdict; assessment.json"))
    for act in read_actions(incident.path("actions")):
        if act.dry_run:
            continue
        dur = f" in {format_duration(act.duration_s)}" if act.duration_s is not None else ""
        out.append(TimelineEntry(act.started_at, "action", f"{act.action} {act.target}: {act.outcome}{dur}",
                                 "actions.jsonl; report section Resolution"))
    if samples is not None and len(samples):
        out += _restart_entries(samples, a.get("column") or "rss_bytes")
    out += _oom_entries(incident)
    out += _alert_entries(incident)
    out += _crash_entries(incident)
    return Timeline(tuple(sorted(out, key=lambda e: e.time)))


def detectable_at(samples: pd.DataFrame, *, column: str | None = None) -> datetime | None:
    """Earliest sample time at which ``assess_leak`` on the data up to then says ``leak`` (binary search)."""
    from ..analysis import assess_leak
    from ..exceptions import ZcnbError

    def leak_at(n: int) -> bool:
        try:
            return assess_leak(samples.iloc[:n], column=column).verdict == "leak"
        except ZcnbError:
            return False

    lo, hi = 2, len(samples)
    if hi < lo or not leak_at(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if leak_at(mid):
            hi = mid
        else:
            lo = mid + 1
    first: datetime = samples["timestamp"].iloc[lo - 1].to_pydatetime()
    return first


def _restart_entries(df: pd.DataFrame, column: str) -> list[TimelineEntry]:
    if column not in df:
        return []
    out: list[TimelineEntry] = []
    vals = df[df["event"] != "gap"]
    for _, row in df[df["event"] == "restart"].iterrows():
        t = row["timestamp"]
        before = vals[vals["timestamp"] < t][column].dropna().tail(5)
        after = vals[vals["timestamp"] >= t][column].dropna().head(5)
        out.append(TimelineEntry(t.to_pydatetime(), "restart", f"new gateway process ({row.get('note', '')})",
                                 "samples.csv restart event; figures/memory.png (vertical line)"))
        if len(before) and len(after) and after.median() < before.max():
            level = after.median()  # the new process's level (its very first sample may be mid-start)
            out.append(TimelineEntry(vals[vals["timestamp"] >= t]["timestamp"].iloc[0].to_pydatetime(), "recovery",
                                     f"memory back down by {format_bytes(before.max() - level)} "
                                     f"({format_bytes(before.max())} -> {format_bytes(level)})",
                                     "02_mitigate.ipynb > after-restart check; figures/memory.png"))
    return out


def _oom_entries(incident: Incident) -> list[TimelineEntry]:
    """OOM kills stage 03 found (oom.json), one entry per distinct kill."""
    if not incident.has("oom"):
        return []
    from ..logs.oom import OomEvent, OomScan

    d = incident.read_json("oom")
    events = tuple(OomEvent(_ts(e.get("timestamp")), e.get("source", "?"), e.get("kind", "?"), e.get("pid"),
                            e.get("message", "")) for e in d.get("events", []))
    return [TimelineEntry(e.timestamp, "oom-kill", f"OOM kill ({e.source}" + (f", pid {e.pid})" if e.pid else ")"),
                          "oom.json; 03_diagnose.ipynb > OOM kills")
            for e in OomScan(events, "").kills if e.timestamp is not None]


def _alert_entries(incident: Incident) -> list[TimelineEntry]:
    """Alert events the receiver recorded (alerts.jsonl): firing, resolved, where the data came from."""
    if not incident.has("alerts"):
        return []
    import json

    out: list[TimelineEntry] = []
    for line in incident.path("alerts").read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        t = _ts(obj.get("time")) if isinstance(obj, dict) else None
        if t is not None:
            out.append(TimelineEntry(t, str(obj.get("kind", "alert")), str(obj.get("what", "")),
                                     str(obj.get("evidence", "alerts.jsonl"))))
    return out


def _crash_entries(incident: Incident) -> list[TimelineEntry]:
    """Crashes stage 03 found in the gateway's log (``log_summary.json`` ``crashes``), one entry each, with the
    restart that followed it in the log (``restarts`` with reason ``crash``) or the fact that none did.

    A crash line without a time of its own (a log with no timestamps) is placed at the log's last time and says so;
    with no time in the log at all it stays off the timeline (the report's root-cause table still lists it).
    """
    d = incident.read_json_or_none("log_summary")
    if not isinstance(d, dict):
        return []
    after = [r for r in d.get("restarts") or [] if isinstance(r, dict) and r.get("reason") == "crash"]
    log_end = _ts(d.get("end"))
    out = []
    for c in d.get("crashes") or []:
        if not isinstance(c, dict):
            continue
        msg = str(c.get("message", ""))
        t, when = _ts(c.get("timestamp")), ""
        if t is None and log_end is not None:
            t, when = log_end, "; no time on the line: placed at the log's last time"
        if t is None:
            continue
        pid = f" (pid {c['pid']})" if c.get("pid") else ""
        restart = next((r for r in after if str(r.get("detail", "")).startswith(msg)
                        and (not c.get("pid") or r.get("old_pid") == c.get("pid"))), None)
        if restart is not None and restart.get("new_pid") is not None:
            rt = _ts(restart.get("timestamp"))
            then = f"; restarted as pid {restart['new_pid']}" + (f" at {rt:%H:%M:%S} UTC" if rt else "")
        elif restart is not None:
            then = "; no restart after it in the log"
        else:
            then = ""
        out.append(TimelineEntry(t, "crash", f"gateway crashed: {msg[:160]}{pid}{then}{when}",
                                 "log_summary.json crashes; 03_diagnose.ipynb > Errors and warnings"))
    return out
