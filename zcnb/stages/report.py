"""Stage 05 (the incident report): :class:`IncidentReport` gives the report notebook one call per section.

The report reads like a post-mortem: summary, impact and detection, root-cause evidence, resolution and
action items come first (:mod:`zcnb.report.postmortem` writes them from ``summary.json``), then the
evidence with its figures. Everything comes from the files in the incident folder; the summary is
rebuilt from them on every load (keeping the run's stage records), so a stage re-run in JupyterLab shows
up. A section without data says why: the stage found nothing, was skipped, failed, or has not run yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..incident import Incident, open_incident
from ..report import postmortem as pm
from ..report.html import REPORT_CSS, Section, details, esc, kv_table, table
from ..report.summary import STAGE_NAMES, build_incident_summary
from ..units import format_bytes, format_duration, format_time
from ..viz.timeline import Timeline, TimelineEntry

__all__ = ["IncidentReport"]

_EXPLAIN_CAP = ("* capped at 100 %: this activity's estimate alone exceeds the growth measured (the regression's "
                "intercept is negative), so read it as all of the growth")


def _h(level: int, text: str) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


@dataclass(frozen=True)
class IncidentReport:
    """Sections of the incident report, each displayable in a notebook (a :class:`Section` with a status)."""

    incident: Incident
    summary: dict[str, Any]
    timeline_entries: tuple[TimelineEntry, ...] = field(default=())

    @classmethod
    def load(cls, incident_dir: str | os.PathLike[str] | None = "") -> IncidentReport:
        """The report of ``incident_dir``; empty: this JupyterLab session's incident (see ``open_incident``)."""
        inc = open_incident(incident_dir, create=False) if incident_dir else open_incident("")
        run = inc.read_json_or_none("summary") or {}
        started = run.get("started_at")
        summary = build_incident_summary(inc, stages=run.get("stages") or (),
                                         started_at=datetime.fromisoformat(started) if started else None,
                                         parameters=run.get("parameters"))
        for key in ("report", "finished_at", "timings"):
            if key in run:
                summary[key] = run[key]
        inc.write_json("summary", summary)  # the report stage's summary.json (zcnb report adds its timings)
        entries = tuple(TimelineEntry(datetime.fromisoformat(e["time"]), e["kind"], e["what"], e["evidence"])
                        for e in summary.get("timeline") or [])
        return cls(inc, summary, entries)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _missing(self, what: str, stage: str) -> Section:
        """Why ``what`` has no data: the stage was skipped, failed, has not run, or ran and found nothing."""
        st = (self.summary.get("stage_states") or {}).get(stage) or {"state": "not run"}
        name = f"stage {stage} ({STAGE_NAMES.get(stage, '')})"
        state = st.get("state")
        if state == "skipped":
            return Section(f"<p class='zcnb-skipped'>{esc(what)}: {esc(name)} was skipped in this run.</p>", "skipped")
        if state == "failed":
            return Section(f"<p class='zcnb-failed'>{esc(what)}: {esc(name)} failed ({esc(st.get('error'))}); see "
                           f"{esc(st.get('notebook'))}, cell {esc(st.get('cell'))}.</p>", "failed")
        if state == "not run":
            return Section(f"<p class='zcnb-notrun'>{esc(what)}: {esc(name)} has not run on this incident folder "
                           "yet (run its notebook, or `zcnb report`).</p>", "not run")
        return Section(f"<p class='zcnb-nodata'>{esc(what)}: {esc(name)} ran and left no data for it.</p>", "no data")

    def _samples(self) -> Any:
        from ..collect.sampling import read_samples

        return read_samples(self.incident.path("samples"))

    def _assessment(self) -> Any:
        """Re-assess the samples with the limit stage 01 used (so the figure and table match it)."""
        from ..analysis import assess_leak

        stored = self.incident.read_json_or_none("assessment") or {}
        limit = stored.get("limit_bytes") if stored.get("limit_source") == "parameter" else None
        return assess_leak(self._samples(), limit_bytes=limit, limit_source="parameter" if limit else None)

    # -- what happened (post-mortem) -------------------------------------------------------------------------
    def header(self) -> Section:
        s, w = self.summary, self.summary.get("sampling") or {}
        failed = [st for st in s.get("stages") or [] if st.get("status") != "ok"]
        ran = "" if not s.get("stages") else (
            f"; stages ran from {format_time(s.get('started_at'))}: " + (
                "all succeeded" if not failed else "FAILED: " + ", ".join(st["notebook"] for st in failed)))
        began = f"Sampling began {format_time(w.get('started'))}" if w else "No memory samples"
        kind = " (replay of the bundled sample incident)" if s.get("replay") else ""
        rows = [REPORT_CSS, f"<h1>Memory-leak incident {esc(s.get('incident'))}</h1>",
                f"<p>{esc(began)}{esc(ran)}{esc(kind)}.</p>"]
        for st in failed:
            rows.append(f"<p class='zcnb-failed'>{esc(st['notebook'])} failed: {esc(st.get('error'))} (see the "
                        f"executed notebook {esc(st.get('output'))}, cell {esc(st.get('failed_cell'))}).</p>")
        return Section("\n".join(rows), title="header")

    def overview(self) -> Section:
        """The summary: what happened, impact, root cause, current state, what next, in a few sentences."""
        sentences = pm.summary_sentences(self.summary)
        if not sentences:
            return self._missing("Summary", "01")
        verdict = (self.summary.get("assessment") or {}).get("verdict")
        body = "".join(f"<p>{esc(t)}</p>" for t in sentences)
        return Section(_h(2, "Summary") + f"<div class='zcnb-summary{'' if verdict == 'leak' else ' ok'}'>{body}</div>",
                       title="summary")

    def impact(self) -> Section:
        rows = pm.impact_rows(self.summary)
        if not rows:
            return Section(_h(2, "Impact and detection") + self._missing("Impact", "01").body,
                           self._missing("Impact", "01").status, "impact")
        return Section(_h(2, "Impact and detection") + kv_table(rows), title="impact")

    def root_cause(self) -> Section:
        rc = pm.root_cause(self.summary)
        parts = [_h(2, "Root-cause evidence")]
        status = "data"
        if rc["activities"]:
            cols = ["what", "bytes per event", "95 % interval", "events", "share of growth"]
            parts.append("<p>Activity that best explains the memory growth (stage 03):</p>"
                         + table(rc["activities"], cols, numeric=["events", "share of growth"]))
            if any(r["capped"] for r in rc["activities"]):
                parts.append(f"<p><small>{esc(_EXPLAIN_CAP)}</small></p>")
        elif rc["statement"]:
            parts.append(f"<p>{esc(rc['statement'])}</p>")
        else:
            m = self._missing("Correlation of memory with activity", "03")
            parts.append(m.body)
            status = m.status
        if rc["sites"]:
            rows = [{"site": t.get("function"), "file": t.get("file"), "lines": ", ".join(map(str, t.get("lines") or [])),
                     "records": t.get("records"), "bytes": format_bytes(t.get("bytes")) if t.get("bytes") else "-"}
                    for t in rc["sites"][:3]]
            parts.append("<p>Top allocation sites in the leak report:</p>"
                         + table(rows, ["site", "file", "lines", "records", "bytes"], numeric=["records", "bytes"],
                                 long=["file"]))
        elif self.summary.get("stage_states", {}).get("03", {}).get("state") == "ok":
            parts.append("<p class='zcnb-nodata'>No leak report in this incident (capture one at a clean exit: "
                         "`zcnb leaks capture`).</p>")
        lines = ([{"time": format_time(e.get("timestamp")), "kind": f"OOM kill ({e.get('source')})",
                   "line": e.get("message")} for e in rc["oom"]]
                 + [{"time": format_time(c.get("timestamp")), "kind": "crash", "line": c.get("message")}
                    for c in rc["crashes"]]
                 + [{"time": format_time(e.get("first_seen")), "kind": f"error x{e.get('count')}", "line": e.get("message")}
                    for e in rc["errors"]])
        if lines:
            parts.append("<p>Crash, OOM and error lines:</p>" + table(lines[:12], ["time", "kind", "line"], time=["time"],
                                                                      long=["line"]))
        elif isinstance(self.summary.get("oom"), dict):
            parts.append("<p class='zcnb-nodata'>No OOM kill, crash or error line in the logs.</p>")
        return Section("".join(parts), status, "root cause")

    def resolution(self) -> Section:
        """Actions executed (exact commands, times, durations), then dry-run plans apart."""
        done, planned = pm.executed_actions(self.summary), pm.planned_actions(self.summary)
        note = self.summary.get("actions_note") or ""
        parts = [_h(2, "Resolution")]
        if note:
            parts.append(f"<p><b>Warning:</b> {esc(note)}</p>")
        if done:
            parts.append(table(done, ["time", "action", "target", "outcome", "duration", "health_after"],
                               numeric=["duration"], time=["time"], long=["target", "health_after"],
                               headers={"health_after": "health after"}))
            parts.append("<p>Commands run:</p><ol class='zcnb-actions'>" + "".join(
                f"<li>{esc(a['time'])} {esc(a['action'])}:" + "".join(
                    f"<pre class='zcnb-cmd'>{esc(c)}</pre>" for c in a["commands"]) + "</li>" for a in done) + "</ol>")
        else:
            parts.append("<p class='zcnb-nodata'>No action was executed.</p>")
        after = self.summary.get("after_restart") or {}
        if after.get("message"):
            parts.append(f"<p>After the restart: {esc(after['message'])}</p>")
        if planned:
            rows = [{**a, "plan": a["plan_id"]} for a in planned]
            parts.append(_h(3, "Planned, not executed (dry runs)")
                         + "<p>Each plan is shown with its id; it runs only when confirmed with that id.</p>"
                         + table(rows, ["time", "action", "target", "plan"], time=["time"], long=["target"])
                         + "".join(f"<details class='zcnb-notes'><summary>{esc(a['action'])} plan {esc(a['plan'])}: "
                                   f"steps</summary>" + "".join(f"<pre class='zcnb-cmd'>{esc(c)}</pre>"
                                                                for c in a["commands"]) + "</details>" for a in rows))
        status = "data" if done or planned else "no data"
        return Section("".join(parts), status, "resolution")

    def action_items(self) -> Section:
        items = pm.action_items(self.summary)
        if not items:
            return Section(_h(2, "Action items") + "<p class='zcnb-nodata'>No follow-up follows from the data.</p>",
                           "no data", "action items")
        return Section(_h(2, "Action items") + table(items, ["priority", "type", "item", "from"], long=["item", "from"]),
                       title="action items")

    # -- evidence --------------------------------------------------------------------------------------------
    def evidence(self) -> Section:
        return Section(_h(2, "Evidence") + "<p>The data behind the statements above, stage by stage.</p>",
                       title="evidence")

    def verdict(self) -> Section:
        a = self.summary.get("assessment") or {}
        if not a.get("verdict"):
            return self._section("Leak verdict", self._missing("Leak verdict", "01"))
        rows = [("verdict", f"{a['verdict']} (confidence {a.get('confidence') or 0:.2f})"),
                ("pattern", a.get("pattern") or "-"), ("growth", pm._rate(a.get("growth_bytes_per_hour"))),
                ("current", format_bytes(a.get("current_bytes")) if a.get("current_bytes") else "-"),
                ("limit", f"{format_bytes(a['limit_bytes'])} ({a.get('limit_source')})" if a.get("limit_bytes")
                 else "unknown"),
                ("time to limit", format_duration(a.get("time_to_limit_s"))),
                ("restart every", format_duration(a.get("recommended_restart_interval_s"))),
                ("severity", a.get("severity") or "-"), ("advice", a.get("advice") or "-"),
                ("onset", format_time(a.get("onset"))),
                ("data", f"{a.get('column')}, {a.get('n_samples')} samples over {format_duration(a.get('duration_s'))}")]
        return Section(_h(3, "Leak verdict") + kv_table(rows) + details("Analysis notes", list(a.get("notes") or [])),
                       title="verdict")

    def _section(self, title: str, inner: Section) -> Section:
        return Section(_h(3, title) + inner.body, inner.status, title.lower())

    def memory_figure(self) -> Section:
        if not self.incident.has("samples"):
            return self._section("Memory over time", self._missing("Memory samples", "01"))
        from ..viz.display import figure_image
        from ..viz.memory import plot_memory

        img = figure_image(plot_memory(self._samples(), self._assessment()), alt="memory over time",
                           path=self.incident.figures / "memory.png")
        return Section(_h(3, "Memory over time") + img._repr_html_(), title="memory over time")

    def timeline_figure(self) -> Section:
        from ..files import write_json
        from ..viz.display import figure_image
        from ..viz.timeline import label_boxes, plot_timeline

        timeline = Timeline(self.timeline_entries)
        if not timeline.entries:
            return self._section("Evidence timeline", self._missing("Timeline", "01"))
        samples = self._samples() if self.incident.has("samples") else None
        column = (self.summary.get("assessment") or {}).get("column") or "rss_bytes"
        fig = plot_timeline(timeline, samples, column=column)
        write_json(self.incident.figures / "timeline_labels.json",
                   {"dpi": fig.dpi, "width_px": fig.get_figwidth() * fig.dpi, "height_px": fig.get_figheight() * fig.dpi,
                    "labels": label_boxes(fig)})
        img = figure_image(fig, alt="evidence timeline", path=self.incident.figures / "timeline.png")
        return Section(_h(3, "Evidence timeline") + img._repr_html_(), title="timeline figure")

    def timeline(self) -> Section:
        t = Timeline(self.timeline_entries)
        return Section(t._repr_html_(), "data" if t.entries else "no data", "timeline")

    def restarts(self) -> Section:
        rows = [{"time": format_time(r.get("timestamp")), "what": r.get("what"), "outcome": r.get("outcome"),
                 "duration": format_duration(r.get("duration_s")), "source": r.get("source")}
                for r in self.summary.get("restarts") or []]
        if not rows:
            return Section(_h(3, "Restarts") + "<p class='zcnb-nodata'>No restart was performed or seen.</p>",
                           "no data", "restarts")
        return Section(_h(3, "Restarts") + table(rows, ["time", "what", "outcome", "duration", "source"],
                                                 numeric=["duration"], time=["time"], long=["what"]), title="restarts")

    def oom(self) -> Section:
        """OOM kills found by stage 03 (the runbook's "OOM kills in logs")."""
        d = self.summary.get("oom")
        if not d:
            return self._section("OOM kills", self._missing("OOM kills", "03"))
        kills, events = d.get("kills", 0), d.get("events") or []
        head = (f"<p><b>OOM kills: {esc(kills)}</b>" if kills else "<p><b>No OOM kill found</b>") + \
            f" (searched: {esc(d.get('searched', ''))})</p>"
        rows = [{**e, "time": format_time(e.get("timestamp"))} for e in events[:50]]
        body = head + (table(rows, ["time", "source", "kind", "pid", "message"], time=["time"], long=["message"])
                       if rows else "")
        return Section(_h(3, "OOM kills") + body + details("Notes", list(d.get("notes") or [])), title="oom")

    def skills(self) -> Section:
        skills = self.summary.get("skills") or {}
        if not skills and self.incident.has("log_summary"):
            return _HTML("<p>No skill invocations in the gateway's logs.</p>")
        if not skills:
            if (self.summary.get("stage_states") or {}).get("03", {}).get("state") == "ok":
                return Section(_h(3, "Skills in use") + "<p class='zcnb-nodata'>No skill invocations in the "
                               "gateway's logs.</p>", "no data", "skills")
            return self._section("Skills in use", self._missing("Skill invocations", "03"))
        items = sorted(skills.items(), key=lambda kv: (-kv[1], kv[0]))
        return Section(_h(3, "Skills in use at the time of the leak") + table(
            [{"count": c, "skill": n} for n, c in items], ["count", "skill"], numeric=["count"], cls="zcnb skills"),
            title="skills")

    def skills_chart(self) -> Section:
        return self._stage_figure("skills.png", "skill invocations", "03")

    def correlation_chart(self) -> Section:
        return self._stage_figure("correlation.png", "memory growth vs activity", "03")

    def _stage_figure(self, name: str, alt: str, stage: str) -> Section:
        """A figure a stage saved in ``figures/`` (the report shows exactly what the stage showed)."""
        from ..viz.display import PngImage

        path = self.incident.root / "figures" / name
        if not path.is_file():
            return self._missing(alt.capitalize(), stage)
        return Section(PngImage(path, alt=alt)._repr_html_(), title=alt)

    def correlation(self) -> Section:
        corr = self.incident.read_json_or_none("correlation")
        if not corr:
            return self._section("Which activity explains the growth", self._missing("Correlation", "03"))
        ranking = corr.get("ranking") or []
        statement = f"<p><b>{esc(corr.get('statement'))}</b></p>"
        if not ranking:
            return Section(_h(3, "Which activity explains the growth") + statement, "no data", "correlation")
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
                "they are estimated jointly, so they need not add up to 100 %." + (f" {esc(_EXPLAIN_CAP)}" if capped
                                                                                  else "") + "</small></p>")
        return Section(_h(3, "Which activity explains the growth") + statement + table(
            rows, list(rows[0]), numeric=["bytes per event", "events", "share of growth", "p"], cls="zcnb correlation")
            + note + details("Analysis notes", list(corr.get("notes") or [])), title="correlation")

    def errors(self) -> Section:
        errors = self.summary.get("errors") or []
        if not errors:
            if (self.summary.get("stage_states") or {}).get("03", {}).get("state") == "ok":
                return Section(_h(3, "Errors in logs") + "<p class='zcnb-nodata'>No error or warning lines in the "
                               "gateway's logs.</p>", "no data", "errors")
            return self._section("Errors in logs", self._missing("Errors in logs", "03"))
        rows = [{**e, "first seen": format_time(e.get("first_seen")), "last seen": format_time(e.get("last_seen"))}
                for e in errors]
        return Section(_h(3, "Errors and warnings in logs") + table(
            rows, ["count", "level", "message", "first seen", "last seen"], numeric=["count"],
            time=["first seen", "last seen"], long=["message"]), title="errors")

    def leak_report(self) -> Section:
        lr = self.summary.get("leak_report")
        if not lr:
            if (self.summary.get("stage_states") or {}).get("03", {}).get("state") == "ok":
                return Section(_h(3, "Leak report") + "<p class='zcnb-nodata'>No leak report in this incident "
                               "(capture one at a clean exit: `zcnb leaks capture`).</p>", "no data", "leak report")
            return self._section("Leak report", self._missing("Leak report", "03"))
        rows = [{"site": t.get("function"), "file": t.get("file"), "lines": ", ".join(map(str, t.get("lines") or [])),
                 "records": t.get("records"), "bytes": format_bytes(t.get("bytes")) if t.get("bytes") else "-",
                 "kinds": ", ".join(t.get("kinds") or [])} for t in lr.get("top_sites") or []]
        src = f" ({esc(lr['source'])})" if lr.get("source") else ""
        return Section(_h(3, "Leak report: top allocation sites") + f"<p>{esc(lr.get('summary'))}{src}</p>"
                       + table(rows, ["site", "file", "lines", "records", "bytes", "kinds"],
                               numeric=["records", "bytes"], long=["file"]), title="leak report")

    def escalation(self) -> Section:
        esc_ = self.summary.get("escalation")
        if not esc_:
            return self._section("Escalation", self._missing("Escalation decision", "06"))
        by = ("stage 06" if self.summary.get("escalation_source") == "stage 06" else
              "the report, by the runbook's rule on stage 01's verdict (stage 06 has not decided)")
        rows = [("decision", str(esc_.get("action", "")).replace("_", " ")), ("why", esc_.get("headline")),
                ("runbook rule", esc_.get("runbook_rule") or "-"), ("decided by", by),
                ("persisted after restart", {True: "yes", False: "no"}.get(esc_.get("persisted_after_restart"), "unknown")),
                ("persisted after restore", {True: "yes", False: "no"}.get(esc_.get("persisted_after_restore"), "unknown"))]
        steps = "".join(f"<li>{esc(s)}</li>" for s in esc_.get("next_steps") or [])
        body = _h(3, "Escalation") + kv_table(rows) + (f"<p>Next steps:</p><ol>{steps}</ol>" if steps else "")
        sched = esc_.get("schedule") or {}
        if sched:
            body += (f"<p>Restart schedule: every {esc(format_duration(sched.get('interval_s')))} "
                     f"({esc(sched.get('basis'))}); shown, not installed.</p>"
                     f"<pre class='zcnb-cmd'>{esc(sched.get('systemd_timer'))}</pre>"
                     f"<p>or cron ({esc(sched.get('cron_note'))}):</p><pre class='zcnb-cmd'>{esc(sched.get('cron'))}</pre>")
        return Section(body + details("Reasons", list(esc_.get("reasons") or [])), title="escalation")

    def fleet(self) -> Section:
        """Every instance of a fleet run (stage 01 in Prometheus mode), with the equivalent alert rule."""
        data = self.incident.read_json_or_none("fleet")
        if not data:
            return Section("<p class='zcnb-nodata'>Single-gateway incident (no fleet data).</p>", "no data", "fleet")
        rows = data.get("rows") or []
        cols = [c for c in ("instance", "verdict", "pattern", "severity", "growth_bytes_per_hour", "time_to_limit_s",
                            "rule_flagged") if rows and c in rows[0]]
        shown = [{**r, "growth_bytes_per_hour": pm._rate(r.get("growth_bytes_per_hour")),
                  "time_to_limit_s": format_duration(r.get("time_to_limit_s"))} for r in rows]
        rule = (data.get("rule") or {}).get("expr", "")
        return Section(_h(3, f"Fleet: {len(rows)} instances") + table(shown, cols, cls="zcnb fleet", headers={
            "growth_bytes_per_hour": "growth", "time_to_limit_s": "time to limit"})
            + f"<p>Restart first: {esc(', '.join(data.get('restart_order') or []) or 'none')}</p>"
            + f"<p>The Prometheus rule you would otherwise write: <code>{esc(rule)}</code></p>", title="fleet")

    def stages(self) -> Section:
        """Which stages ran, how long they took, and what became of them."""
        rec = self.summary.get("stages") or []
        if rec:
            rows = [{"stage": s.get("notebook"), "status": s.get("status"), "duration": format_duration(s.get("duration_s")),
                     "error": s.get("error") or ""} for s in rec]
        else:
            rows = [{"stage": f"{k} ({STAGE_NAMES[k]})", "status": v.get("state"), "duration": "-", "error": ""}
                    for k, v in (self.summary.get("stage_states") or {}).items()]
        return Section(_h(3, "Stages") + table(rows, ["stage", "status", "duration", "error"], numeric=["duration"],
                                               long=["error"]),
                       title="stages")

    def commit_and_parameters(self) -> Section:
        commit = self.summary.get("commit") or "unknown (no commit.txt; pass --commit)"
        params = self.summary.get("parameters") or {}
        rows = [{"parameter": k, "value": v} for k, v in sorted(params.items())]
        return Section(_h(3, "Commit and parameters") + f"<p>Gateway commit: <code>{esc(commit)}</code></p>"
                       + (table(rows, ["parameter", "value"]) if rows else "<p>Default parameters.</p>"),
                       title="commit and parameters")

    def sections(self) -> dict[str, Section]:
        """Every section in report order (what the notebook shows), by title: for checks and tests."""
        calls = (self.header, self.overview, self.impact, self.root_cause, self.resolution, self.action_items,
                 self.evidence, self.verdict, self.memory_figure, self.timeline_figure, self.timeline, self.restarts,
                 self.oom, self.skills, self.skills_chart, self.correlation, self.correlation_chart, self.errors,
                 self.leak_report, self.escalation, self.fleet, self.stages, self.commit_and_parameters)
        return {c.__name__: c() for c in calls}
