"""HTML of the report's longer parts, from ``summary.json``'s dict (and stage files): what was done and planned,
the correlation ranking, the leak report, the escalation decision, the fleet table.

Pure formatting; whether a part has data, and if not why, is decided by the report stage
(:class:`zcnb.stages.report.IncidentReport`), which wraps these in sections.
"""

from __future__ import annotations

from typing import Any

from ..units import format_bytes, format_duration
from . import postmortem as pm
from .html import details, esc, kv_table, table

__all__ = ["CAPPED_SHARE", "correlation_html", "escalation_html", "fleet_html", "heading", "leak_report_html",
           "resolution_html"]

CAPPED_SHARE = ("* capped at 100 %: this activity's estimate alone exceeds the growth measured (the regression's "
                "intercept is negative), so read it as all of the growth")


def heading(level: int, text: str) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def _commands(commands: list[str]) -> str:
    return "".join(f"<pre class='zcnb-cmd'>{esc(c)}</pre>" for c in commands)


def resolution_html(summary: dict[str, Any]) -> tuple[str, bool]:
    """Actions executed (exact commands, times, durations), then dry-run plans apart; (html, any action?)."""
    done, planned = pm.executed_actions(summary), pm.planned_actions(summary)
    note = summary.get("actions_note") or ""
    parts = [heading(2, "Resolution")]
    if note:
        parts.append(f"<p><b>Warning:</b> {esc(note)}</p>")
    if done:
        parts.append(table(done, ["time", "action", "target", "outcome", "duration", "health_after"],
                           numeric=["duration"], time=["time"], long=["target", "health_after"],
                           headers={"health_after": "health after"}))
        parts.append("<p>Commands run:</p><ol class='zcnb-actions'>" + "".join(
            f"<li>{esc(a['time'])} {esc(a['action'])}:{_commands(a['commands'])}</li>" for a in done) + "</ol>")
    else:
        parts.append("<p class='zcnb-nodata'>No action was executed.</p>")
    after = summary.get("after_restart") or {}
    if after.get("message"):
        parts.append(f"<p>After the restart: {esc(after['message'])}</p>")
    if planned:
        parts.append(heading(3, "Planned, not executed (dry runs)")
                     + "<p>Each plan is shown with its id; it runs only when confirmed with that id.</p>"
                     + table([{**a, "plan": a["plan_id"]} for a in planned], ["time", "action", "target", "plan"],
                             time=["time"], long=["target"])
                     + "".join(f"<details class='zcnb-notes'><summary>{esc(a['action'])} plan {esc(a['plan_id'])}: "
                               f"steps</summary>{_commands(a['commands'])}</details>" for a in planned))
    return "".join(parts), bool(done or planned)


def correlation_html(corr: dict[str, Any]) -> tuple[str, bool]:
    """Stage 03's ranking with readable sizes and capped shares; (html, any activity ranked?)."""
    ranking = corr.get("ranking") or []
    out = heading(3, "Which activity explains the growth") + f"<p><b>{esc(corr.get('statement'))}</b></p>"
    if not ranking:
        return out, False
    rows, capped = [], False
    for r in ranking[:10]:
        share, cap = pm.share_text(r.get("share"))
        capped |= cap
        rows.append({"activity": pm.activity_label(str(r.get("activity")))[0],
                     "bytes per event": format_bytes(r.get("bytes_per_event")),
                     "95 % interval": f"{format_bytes(r.get('low'))} to {format_bytes(r.get('high'))}",
                     "events": r.get("events"), "share of growth": share + (" *" if cap else ""),
                     "p": f"{r['p_value']:.2g}" if isinstance(r.get("p_value"), (int, float)) else "-"})
    note = ("<p><small>Shares are each activity's bytes per event times its events, over the growth measured; "
            "they are estimated jointly, so they need not add up to 100 %." + (f" {esc(CAPPED_SHARE)}" if capped else "")
            + "</small></p>")
    return (out + table(rows, list(rows[0]), numeric=["bytes per event", "events", "share of growth", "p"],
                        cls="zcnb correlation") + note + details("Analysis notes", list(corr.get("notes") or [])), True)


def leak_report_html(lr: dict[str, Any]) -> str:
    rows = [{"site": t.get("function"), "file": t.get("file"), "lines": ", ".join(map(str, t.get("lines") or [])),
             "records": t.get("records"), "bytes": format_bytes(t.get("bytes")) if t.get("bytes") else "-",
             "kinds": ", ".join(t.get("kinds") or [])} for t in lr.get("top_sites") or []]
    src = f" ({esc(lr['source'])})" if lr.get("source") else ""
    return (heading(3, "Leak report: top allocation sites") + f"<p>{esc(lr.get('summary'))}{src}</p>"
            + table(rows, ["site", "file", "lines", "records", "bytes", "kinds"], numeric=["records", "bytes"],
                    long=["file"]))


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")


def escalation_html(decision: dict[str, Any], source: str) -> str:
    """The escalation decision, its next steps and restart schedule (shown, not installed)."""
    by = ("stage 06" if source == "stage 06" else
          "the report, by the runbook's rule on stage 01's verdict (stage 06 has not decided)")
    rows = [("decision", str(decision.get("action", "")).replace("_", " ")), ("why", decision.get("headline")),
            ("runbook rule", decision.get("runbook_rule") or "-"), ("decided by", by),
            ("persisted after restart", _yes_no(decision.get("persisted_after_restart"))),
            ("persisted after restore", _yes_no(decision.get("persisted_after_restore")))]
    steps = "".join(f"<li>{esc(s)}</li>" for s in decision.get("next_steps") or [])
    body = heading(3, "Escalation") + kv_table(rows) + (f"<p>Next steps:</p><ol>{steps}</ol>" if steps else "")
    sched = decision.get("schedule") or {}
    if sched:
        body += (f"<p>Restart schedule: every {esc(format_duration(sched.get('interval_s')))} "
                 f"({esc(sched.get('basis'))}); shown, not installed.</p>"
                 f"<pre class='zcnb-cmd'>{esc(sched.get('systemd_timer'))}</pre>"
                 f"<p>or cron ({esc(sched.get('cron_note'))}):</p><pre class='zcnb-cmd'>{esc(sched.get('cron'))}</pre>")
    return body + details("Reasons", list(decision.get("reasons") or []))


def fleet_html(data: dict[str, Any]) -> str:
    """Every instance of a fleet run (stage 01 in Prometheus mode), with the equivalent alert rule."""
    rows = data.get("rows") or []
    cols = [c for c in ("instance", "verdict", "pattern", "severity", "growth_bytes_per_hour", "time_to_limit_s",
                        "rule_flagged") if rows and c in rows[0]]
    shown = [{**r, "growth_bytes_per_hour": pm.rate_text(r.get("growth_bytes_per_hour")),
              "time_to_limit_s": format_duration(r.get("time_to_limit_s"))} for r in rows]
    rule = (data.get("rule") or {}).get("expr", "")
    return (heading(3, f"Fleet: {len(rows)} instances")
            + table(shown, cols, cls="zcnb fleet", headers={"growth_bytes_per_hour": "growth",
                                                             "time_to_limit_s": "time to limit"})
            + f"<p>Restart first: {esc(', '.join(data.get('restart_order') or []) or 'none')}</p>"
            + f"<p>The Prometheus rule you would otherwise write: <code>{esc(rule)}</code></p>")
