"""What the report says first, in the order of a post-mortem (Google SRE book's template, PagerDuty's guide):
a summary of a few generated sentences, impact and detection, root-cause evidence, resolution, action items.

Everything here reads the dict of ``summary.json`` (:func:`zcnb.report.summary.build_incident_summary`):
the assessment's own fields (growth, limit and its source, time to limit, severity, restart interval),
stage 03's correlation and leak report, the actions as recorded. Nothing is re-analysed, so the text
always agrees with the tables beside it. Sizes, durations and times use :mod:`zcnb.units`.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Any

from ..units import format_bytes, format_duration, format_time

__all__ = ["action_items", "activity_label", "executed_actions", "impact_rows", "planned_actions", "rate_text",
           "root_cause", "share_text", "summary_sentences"]


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _clock(value: Any) -> str:
    """``17:44:48 UTC`` (the date is in the sampling row of the impact table)."""
    text = format_time(value)
    return text[11:] if text != "-" else text


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rate_text(value: Any) -> str:
    """``+341.2 MiB/h``; ``-`` when unknown."""
    v = _num(value)
    return "-" if v is None else f"{format_bytes(v, unit='MiB', digits=1, signed=True)}/h"


def activity_label(name: str) -> tuple[str, str]:
    """(what the activity is, one event of it): ``unauth`` -> token-less (unauthenticated) requests."""
    if name == "unauth":
        return "token-less (unauthenticated) requests", "token-less request"
    kind, _, what = name.partition(":")
    if kind == "skill" and what:
        return f"{what} skill invocations", f"{what} invocation"
    if kind == "tool" and what:
        return f"{what} tool calls", f"{what} call"
    if name in ("error", "warning"):
        return f"{name} lines in the log", f"{name} line"
    return f"{name} events", f"{name} event"


def share_text(share: Any) -> tuple[str, bool]:
    """(``93 %``, capped?): a share above 100 % is shown as 100 % and flagged, never as ``105 % of the growth``."""
    v = _num(share)
    if v is None:
        return "-", False
    capped = v > 1.005
    return f"{min(max(v, 0.0), 1.0) * 100:.0f} %", capped


def _what_happened(s: dict[str, Any]) -> str | None:
    a, w = s.get("assessment") or {}, s.get("sampling") or {}
    verdict = a.get("verdict")
    span = (f" over {format_duration(_num(w.get('duration_s')))} of sampling from {format_time(w.get('started'))}"
            if w else "")
    if verdict == "leak":
        onset, start = _dt(a.get("onset")), _dt(w.get("started"))
        began = ("; it was already under way when sampling began" if onset and start and
                 (onset - start).total_seconds() <= 5 else f"; it began at {_clock(a.get('onset'))}" if onset else "")
        return (f"The gateway leaked memory: its baseline grew {rate_text(a.get('growth_bytes_per_hour'))} "
                f"({a.get('pattern') or 'unknown'} pattern){span}{began}.")
    if verdict == "no_leak":
        return f"No leak: the gateway's memory baseline was {a.get('pattern') or 'not growing'}{span}."
    if verdict == "inconclusive":
        needed = (a.get("needed") or {}).get("reason") if isinstance(a.get("needed"), dict) else None
        return f"The samples cannot tell yet whether memory leaks{span}" + (f": {needed}." if needed else ".")
    return None


def _impact(s: dict[str, Any]) -> str | None:
    a, w = s.get("assessment") or {}, s.get("sampling") or {}
    parts = []
    if _num(w.get("peak_bytes")) is not None:
        parts.append(f"memory ({w.get('column', 'rss_bytes').removesuffix('_bytes').upper()}) went from "
                     f"{format_bytes(w.get('first_bytes'))} to a peak of {format_bytes(w.get('peak_bytes'))} at "
                     f"{_clock(w.get('peak_at'))}")
    if a.get("verdict") == "leak":
        if _num(a.get("limit_bytes")) and _num(a.get("time_to_limit_s")) is not None:
            parts.append(f"at this rate the limit of {format_bytes(a.get('limit_bytes'))} ({a.get('limit_source')}) "
                         f"is reached in {format_duration(a.get('time_to_limit_s'))}")
        elif not _num(a.get("limit_bytes")):
            parts.append("no memory limit is known, so no time to the limit is projected")
        parts.append(f"severity {a.get('severity') or 'unknown'}")
    oom, crashes = s.get("oom"), s.get("crashes") or []
    if isinstance(oom, dict):
        kills = int(oom.get("kills") or 0)
        parts.append(f"{kills} OOM kill(s) and {len(crashes)} crash(es) in the logs" if kills or crashes
                     else "no OOM kill or crash in the logs")
    if not parts:
        return None
    text = "; ".join(parts)
    return "Impact: " + text + "."


def _cause(s: dict[str, Any]) -> str | None:
    parts = []
    top, corr = s.get("top_activity") or {}, s.get("correlation") or {}
    if top and corr.get("evidence") not in (None, "none") and _num(top.get("bytes_per_event")):
        label, one = activity_label(str(top.get("activity")))
        share, _ = share_text(top.get("share"))
        parts.append(f"{label} explain {share} of the growth, each {one} retaining about "
                     f"{format_bytes(top.get('bytes_per_event'))} ({format_bytes(top.get('low'))} to "
                     f"{format_bytes(top.get('high'))}; {_evidence(corr.get('evidence'))})")
    site = _top_site(s)
    if site:
        parts.append(f"the allocator's leak report points at {site}")
    if not parts:
        return None
    return "Root cause: " + "; ".join(parts) + "."


def _evidence(level: Any) -> str:
    """``strong evidence``; correlate's own levels are ``strong``, ``moderate``, ``weak evidence``."""
    text = str(level or "no")
    return text if text.endswith("evidence") else f"{text} evidence"


def _top_site(s: dict[str, Any]) -> str | None:
    sites = (s.get("leak_report") or {}).get("top_sites") or []
    if not sites:
        return None
    t = sites[0]
    lines = ",".join(str(n) for n in (t.get("lines") or [])[:3])
    where = f"{t.get('file') or '?'}" + (f":{lines}" if lines else "")
    return f"{t.get('function') or '?'} ({where}), {t.get('records')} record(s)"


def _state(s: dict[str, Any]) -> str | None:
    done = executed_actions(s)
    w, after = s.get("sampling") or {}, s.get("after_restart") or {}
    if done:
        text = "Resolution: " + "; ".join(
            f"{a['action']} of {a['target']} at {_clock(a['started_at'])} ({a['outcome']}, {a['duration']})"
            for a in done[:3]) + (f" and {len(done) - 3} more action(s)" if len(done) > 3 else "")
    else:
        waiting = len(planned_actions(s))
        text = "No corrective action was executed" + (f"; {waiting} dry-run plan(s) await confirmation" if waiting else "")
    if after.get("verdict") == "leak":
        text += (f"; after the restart memory grows again at {rate_text(after.get('growth_bytes_per_hour'))}, "
                 "so the restart only bought time")
    elif after.get("verdict") == "no_leak":
        text += "; after the restart memory no longer grows"
    if _num(w.get("last_bytes")) is not None:
        text += f"; at the end of sampling ({_clock(w.get('ended'))}) memory was {format_bytes(w.get('last_bytes'))}"
    return text + "."


def _next(s: dict[str, Any]) -> str | None:
    esc = s.get("escalation") or {}
    if not esc.get("headline"):
        return None
    by = "stage 06" if s.get("escalation_source") == "stage 06" else "the runbook's rule applied to stage 01's verdict"
    return f"Next ({by}): {esc['headline']}"


def summary_sentences(s: dict[str, Any]) -> list[str]:
    """3-5 sentences: what happened, impact, root cause, current state, what next (those the data supports)."""
    out = [t for t in (_what_happened(s), _impact(s), _cause(s), _state(s), _next(s)) if t]
    return out


def impact_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """Impact and detection as (label, value) rows."""
    a, w = s.get("assessment") or {}, s.get("sampling") or {}
    rows: list[tuple[str, str]] = []
    if w:
        rows.append(("sampling", f"{format_time(w.get('started'))} to {format_time(w.get('ended'))} "
                                 f"({format_duration(_num(w.get('duration_s')))}, {w.get('samples')} samples; "
                                 f"sources {', '.join(w.get('sources') or []) or '-'})"))
    kinds = {e.get("kind"): e for e in s.get("timeline") or []}
    onset, start = _dt(a.get("onset")), _dt(w.get("started"))
    if onset is not None:
        early = start is not None and (onset - start).total_seconds() <= 5
        rows.append(("leak onset", format_time(onset) + (" (already under way when sampling began)" if early else "")))
    if "detectable" in kinds:
        t = _dt(kinds["detectable"]["time"])
        after = f" ({format_duration((t - start).total_seconds())} after sampling began)" if t and start else ""
        rows.append(("leak detectable", format_time(t) + after))
    if a.get("detected_at"):
        rows.append(("verdict recorded (stage 01)", format_time(a.get("detected_at"))))
    if a.get("verdict"):
        iv = a.get("growth_interval") or []
        band = (f" ({rate_text(iv[0])} to {rate_text(iv[1])})" if len(iv) == 2 and None not in iv else "")
        rows.append(("verdict", f"{a.get('verdict')}, {a.get('pattern') or '-'} pattern, severity "
                                f"{a.get('severity') or '-'}"))
        rows.append(("growth", rate_text(a.get("growth_bytes_per_hour")) + band))
    if _num(w.get("peak_bytes")) is not None:
        rows.append(("memory", f"{format_bytes(w.get('first_bytes'))} at start, peak {format_bytes(w.get('peak_bytes'))}"
                               f" at {_clock(w.get('peak_at'))}, {format_bytes(w.get('last_bytes'))} at the end"))
    if a.get("verdict"):
        limit = _num(a.get("limit_bytes"))
        rows.append(("memory limit", f"{format_bytes(limit)} ({a.get('limit_source')})" if limit else "unknown"))
        tti = a.get("time_to_limit_interval") or []
        band = (f" ({format_duration(_num(tti[0]))} to {format_duration(_num(tti[1]) if tti[1] is not None else float('inf'))})"
                if len(tti) == 2 and tti[0] is not None else "")
        rows.append(("time to limit", format_duration(_num(a.get("time_to_limit_s"))) + band
                     if _num(a.get("time_to_limit_s")) is not None else "not projected"))
        if _num(a.get("recommended_restart_interval_s")):
            rows.append(("restart every (recommended)", format_duration(a.get("recommended_restart_interval_s"))))
    oom = s.get("oom")
    if isinstance(oom, dict):
        rows.append(("OOM kills", str(int(oom.get("kills") or 0))))
        rows.append(("crashes in the log", str(len(s.get("crashes") or []))))
    levels = (s.get("log_totals") or {}).get("levels") or {}
    if levels:
        rows.append(("log lines", f"{levels.get('error', 0)} error, {levels.get('warning', 0)} warning of "
                                  f"{(s.get('log_totals') or {}).get('n_lines', '?')}"))
    done = [r for r in s.get("restarts") or [] if r.get("source") == "action"]
    seen = [r for r in s.get("restarts") or [] if r.get("source") == "samples"]
    if done or seen:
        rows.append(("restarts", f"{len(done)} executed, {len(seen)} seen in the samples"))
    return rows


def root_cause(s: dict[str, Any]) -> dict[str, Any]:
    """Top correlated activities (bytes per event, capped shares), top leak-report sites, OOM and crash lines."""
    corr = s.get("correlation") or {}
    acts = []
    ranking = [s["top_activity"]] if s.get("top_activity") else []
    for r in ranking:
        label, one = activity_label(str(r.get("activity")))
        share, capped = share_text(r.get("share"))
        acts.append({"activity": r.get("activity"), "what": label,
                     "bytes per event": f"{format_bytes(r.get('bytes_per_event'))} per {one}",
                     "95 % interval": f"{format_bytes(r.get('low'))} to {format_bytes(r.get('high'))}",
                     "events": r.get("events"), "share of growth": share + (" *" if capped else ""),
                     "capped": capped})
    oom = s.get("oom") if isinstance(s.get("oom"), dict) else {}
    return {"statement": corr.get("statement") or "", "evidence": corr.get("evidence"), "activities": acts,
            "sites": (s.get("leak_report") or {}).get("top_sites") or [],
            "leak_summary": (s.get("leak_report") or {}).get("summary") or "",
            "oom": (oom or {}).get("events") or [], "crashes": s.get("crashes") or [],
            "errors": [e for e in s.get("errors") or [] if str(e.get("level")) == "error"][:5]}


def _sandbox(target: str) -> bool:
    """A replay's plan that points into a temporary copy of the bundled sample tree."""
    return "/zcnb-state-" in target or target.startswith(tempfile.gettempdir() + "/zcnb-")


def _action_row(a: dict[str, Any]) -> dict[str, Any]:
    target = str(a.get("target", ""))
    return {"started_at": a.get("started_at"), "time": format_time(a.get("started_at")), "action": a.get("action"),
            "target": target + (" (sandbox copy of the bundled sample)" if _sandbox(target) else ""),
            "outcome": a.get("outcome"), "duration": format_duration(_num(a.get("duration_s"))),
            "health_after": a.get("health_after") or "-", "commands": list(a.get("commands") or []),
            "plan_id": a.get("plan_id") or "", "message": a.get("message") or ""}


def executed_actions(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Actions that ran (not dry runs), in time order, with readable time and duration."""
    return [_action_row(a) for a in s.get("actions") or [] if not a.get("dry_run")]


def planned_actions(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Dry-run plans: shown apart from what was done, never on the timeline."""
    return [_action_row(a) for a in s.get("actions") or [] if a.get("dry_run")]


_ESCALATION_ITEMS = {
    "rollback_now": ("P1", "mitigate", "Roll back to the previous version now (rollback plan: stage 06 / `zcnb "
                                       "rollback`, a dry run until confirmed)"),
    "collect_repro": ("P1", "investigate", "Collect a minimal reproducible case and file it upstream with the "
                                           "commit, leak report and samples"),
    "restart_and_recheck": ("P1", "mitigate", "Restart now (stage 02), restore state if suspect (stage 04), re-sample "
                                              "(stage 01) and decide again"),
    "schedule_restarts": ("P2", "mitigate", "Install the scheduled restart shown under Escalation until a fix ships"),
    "gather_more_data": ("P2", "detect", "Sample longer before deciding (stage 01)"),
    "none": ("P3", "detect", "Keep the memory alert; nothing to escalate"),
}


def action_items(s: dict[str, Any]) -> list[dict[str, str]]:
    """Follow-ups from the escalation decision, the restart schedule and the root-cause evidence."""
    items: list[dict[str, str]] = []
    esc, a = s.get("escalation") or {}, s.get("assessment") or {}
    by = "stage 06" if s.get("escalation_source") == "stage 06" else "runbook rule on stage 01's verdict"
    if esc.get("action") in _ESCALATION_ITEMS:
        prio, kind, text = _ESCALATION_ITEMS[esc["action"]]
        items.append({"priority": prio, "type": kind, "item": text,
                      "from": f"escalation ({by}): {esc.get('runbook_rule') or esc.get('headline', '')}"})
    sched = esc.get("schedule") or {}
    interval = _num(sched.get("interval_s")) or _num(a.get("recommended_restart_interval_s"))
    if interval and a.get("verdict") == "leak" and esc.get("action") != "schedule_restarts":
        items.append({"priority": "P2", "type": "mitigate",
                      "item": f"Until the fix ships, restart the gateway every {format_duration(interval)}",
                      "from": "restart schedule" + (f" ({sched.get('basis')})" if sched.get("basis") else
                                                    " (the assessment's recommended restart interval)")})
    top, corr = s.get("top_activity") or {}, s.get("correlation") or {}
    if top and corr.get("evidence") in ("strong", "moderate") and _num(top.get("bytes_per_event")):
        label, one = activity_label(str(top.get("activity")))
        site = _top_site(s)
        items.append({"priority": "P1" if corr.get("evidence") == "strong" else "P2", "type": "prevent",
                      "item": f"Fix the leak on {label} (~{format_bytes(top.get('bytes_per_event'))} retained per {one})"
                              + (f"; start at {site}" if site else ""),
                      "from": f"stage 03 correlation ({_evidence(corr.get('evidence'))})"
                              + (" and leak report" if site else "")})
    if a.get("verdict") == "leak" and not (s.get("leak_report") or {}).get("top_sites"):
        items.append({"priority": "P2", "type": "investigate",
                      "item": "Capture the allocator's leak report at a clean exit (`zcnb leaks capture`) to find "
                              "the allocation site", "from": "no leak report in this incident"})
    kinds = {e.get("kind"): _dt(e.get("time")) for e in s.get("timeline") or []}
    onset, found = _dt(a.get("onset")) or _dt((s.get("sampling") or {}).get("started")), kinds.get("detectable")
    if a.get("verdict") == "leak" and onset and found:
        items.append({"priority": "P3", "type": "detect",
                      "item": f"Alert on memory growth: the samples showed the leak "
                              f"{format_duration((found - onset).total_seconds())} after it began",
                      "from": "detection time (timeline)"})
    return items
