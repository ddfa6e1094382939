"""Stage 05 (the incident report): :class:`IncidentReport` gives the report notebook one call per section.

The report reads like a post-mortem: summary, impact and detection, root-cause evidence, resolution and
action items come first (:mod:`zcnb.report.postmortem` writes them from ``summary.json``), then the
evidence with its figures. Everything comes from the files in the incident folder; the summary is
rebuilt from them on every load (keeping the run's stage records), so a stage re-run in JupyterLab shows
up. A section without data says why: the stage found nothing, was skipped, failed, or has not run yet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..incident import Incident, open_incident
from ..report import evidence as ev
from ..report import postmortem as pm
from ..report.html import REPORT_CSS, Section, details, esc, kv_table, table
from ..report.summary import STAGE_NAMES, build_incident_summary
from ..units import format_bytes, format_duration, format_time
from ..viz.timeline import Timeline, TimelineEntry

__all__ = ["IncidentReport"]

SECTION_ORDER = ("header", "overview", "impact", "root_cause", "resolution", "action_items", "evidence", "verdict",
                 "memory_figure", "timeline_figure", "timeline", "restarts", "oom", "skills", "skills_chart",
                 "correlation", "correlation_chart", "errors", "leak_report", "escalation", "fleet", "stages",
                 "commit_and_parameters")


def _recorded(method: Callable[[IncidentReport], Section]) -> Callable[[IncidentReport], Section]:
    """Remember each section's status as it is shown (for :meth:`IncidentReport.completeness`)."""
    @functools.wraps(method)
    def shown(self: IncidentReport) -> Section:
        section = method(self)
        self.shown[method.__name__] = section.status
        return section

    return shown


@dataclass(frozen=True)
class IncidentReport:
    """Sections of the incident report, each displayable in a notebook (a :class:`Section` with a status)."""

    incident: Incident
    summary: dict[str, Any]
    timeline_entries: tuple[TimelineEntry, ...] = field(default=())
    shown: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # section -> status, as shown

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

    def _stage_ok(self, stage: str) -> bool:
        return bool((self.summary.get("stage_states") or {}).get(stage, {}).get("state") == "ok")

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
    @_recorded
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
        if s.get("process"):
            rows.append(f"<p>Observed process: {esc(s['process'])}.</p>")
        for st in failed:
            rows.append(f"<p class='zcnb-failed'>{esc(st['notebook'])} failed: {esc(st.get('error'))} (see the "
                        f"executed notebook {esc(st.get('output'))}, cell {esc(st.get('failed_cell'))}).</p>")
        return Section("\n".join(rows), title="header")

    @_recorded
    def overview(self) -> Section:
        """The summary: what happened, impact, root cause, current state, what next, in a few sentences."""
        sentences = pm.summary_sentences(self.summary)
        if not sentences:
            return self._missing("Summary", "01")
        verdict = (self.summary.get("assessment") or {}).get("verdict")
        body = "".join(f"<p>{esc(t)}</p>" for t in sentences)
        return Section(ev.heading(2, "Summary") + f"<div class='zcnb-summary{'' if verdict == 'leak' else ' ok'}'>{body}</div>",
                       title="summary")

    @_recorded
    def impact(self) -> Section:
        rows = pm.impact_rows(self.summary)
        if not rows:
            return Section(ev.heading(2, "Impact and detection") + self._missing("Impact", "01").body,
                           self._missing("Impact", "01").status, "impact")
        return Section(ev.heading(2, "Impact and detection") + kv_table(rows), title="impact")

    @_recorded
    def root_cause(self) -> Section:
        rc = pm.root_cause(self.summary)
        parts = [ev.heading(2, "Root-cause evidence")]
        status = "data"
        if rc["activities"]:
            cols = ["what", "bytes per event", "95 % interval", "events", "share of growth"]
            parts.append("<p>Activity that best explains the memory growth (stage 03):</p>"
                         + table(rc["activities"], cols, numeric=["events", "share of growth"]))
            if any(r["capped"] for r in rc["activities"]):
                parts.append(f"<p><small>{esc(ev.CAPPED_SHARE)}</small></p>")
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

    @_recorded
    def resolution(self) -> Section:
        """Actions executed (exact commands, times, durations), then dry-run plans apart."""
        body, any_action = ev.resolution_html(self.summary)
        return Section(body, "data" if any_action else "no data", "resolution")

    def actions(self) -> Section:
        """The actions taken (the Resolution section; the name earlier report notebooks call)."""
        return self.resolution()

    @_recorded
    def action_items(self) -> Section:
        items = pm.action_items(self.summary)
        if not items:
            return Section(ev.heading(2, "Action items") + "<p class='zcnb-nodata'>No follow-up follows from the data.</p>",
                           "no data", "action items")
        return Section(ev.heading(2, "Action items") + table(items, ["priority", "type", "item", "from"], long=["item", "from"]),
                       title="action items")

    # -- evidence --------------------------------------------------------------------------------------------
    @_recorded
    def evidence(self) -> Section:
        return Section(ev.heading(2, "Evidence") + "<p>The data behind the statements above, stage by stage.</p>",
                       title="evidence")

    @_recorded
    def verdict(self) -> Section:
        a = self.summary.get("assessment") or {}
        if not a.get("verdict"):
            return self._section("Leak verdict", self._missing("Leak verdict", "01"))
        rows = [("verdict", f"{a['verdict']} (confidence {a.get('confidence') or 0:.2f})"),
                ("pattern", a.get("pattern") or "-"), ("growth", pm.rate_text(a.get("growth_bytes_per_hour"))),
                ("current", format_bytes(a.get("current_bytes")) if a.get("current_bytes") else "-"),
                ("limit", f"{format_bytes(a['limit_bytes'])} ({a.get('limit_source')})" if a.get("limit_bytes")
                 else "unknown"),
                ("time to limit", format_duration(a.get("time_to_limit_s"))),
                ("restart every", format_duration(a.get("recommended_restart_interval_s"))),
                ("severity", a.get("severity") or "-"), ("advice", a.get("advice") or "-"),
                ("onset", format_time(a.get("onset"))),
                ("data", f"{a.get('column')}, {a.get('n_samples')} samples over {format_duration(a.get('duration_s'))}")]
        return Section(ev.heading(3, "Leak verdict") + kv_table(rows) + details("Analysis notes", list(a.get("notes") or [])),
                       title="verdict")

    def _section(self, title: str, inner: Section) -> Section:
        return Section(ev.heading(3, title) + inner.body, inner.status, title.lower())

    @_recorded
    def memory_figure(self) -> Section:
        if not self.incident.has("samples"):
            return self._section("Memory over time", self._missing("Memory samples", "01"))
        from ..viz.display import figure_image
        from ..viz.memory import plot_memory

        img = figure_image(plot_memory(self._samples(), self._assessment()), alt="memory over time",
                           path=self.incident.figures / "memory.png")
        return Section(ev.heading(3, "Memory over time") + img._repr_html_(), title="memory over time")

    @_recorded
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
        return Section(ev.heading(3, "Evidence timeline") + img._repr_html_(), title="timeline figure")

    @_recorded
    def timeline(self) -> Section:
        t = Timeline(self.timeline_entries)
        return Section(t._repr_html_(), "data" if t.entries else "no data", "timeline")

    @_recorded
    def restarts(self) -> Section:
        rows = [{"time": format_time(r.get("timestamp")), "what": r.get("what"), "outcome": r.get("outcome"),
                 "duration": format_duration(r.get("duration_s")), "source": r.get("source")}
                for r in self.summary.get("restarts") or []]
        if not rows:
            return Section(ev.heading(3, "Restarts") + "<p class='zcnb-nodata'>No restart was performed or seen.</p>",
                           "no data", "restarts")
        return Section(ev.heading(3, "Restarts") + table(rows, ["time", "what", "outcome", "duration", "source"],
                                                 numeric=["duration"], time=["time"], long=["what"]), title="restarts")

    @_recorded
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
        return Section(ev.heading(3, "OOM kills") + body + details("Notes", list(d.get("notes") or [])), title="oom")

    @_recorded
    def skills(self) -> Section:
        skills = self.summary.get("skills") or {}
        if not skills:
            # Stage 03 ran (its log summary is here): the logs simply hold no skill invocation.
            if self.incident.has("log_summary") or self._stage_ok("03"):
                return Section(ev.heading(3, "Skills in use") + "<p class='zcnb-nodata'>No skill invocations in the "
                               "gateway's logs.</p>", "no data", "skills")
            return self._section("Skills in use", self._missing("Skill invocations", "03"))
        items = sorted(skills.items(), key=lambda kv: (-kv[1], kv[0]))
        return Section(ev.heading(3, "Skills in use at the time of the leak") + table(
            [{"count": c, "skill": n} for n, c in items], ["count", "skill"], numeric=["count"], cls="zcnb skills"),
            title="skills")

    @_recorded
    def skills_chart(self) -> Section:
        return self._stage_figure("skills.png", "skill invocations", "03")

    @_recorded
    def correlation_chart(self) -> Section:
        return self._stage_figure("correlation.png", "memory growth vs activity", "03")

    def _stage_figure(self, name: str, alt: str, stage: str) -> Section:
        """A figure a stage saved in ``figures/`` (the report shows exactly what the stage showed)."""
        from ..viz.display import PngImage

        path = self.incident.root / "figures" / name
        if path.parent.is_symlink() or path.is_symlink() or not path.is_file():  # links are never followed
            return self._missing(alt.capitalize(), stage)
        return Section(PngImage(path, alt=alt)._repr_html_(), title=alt)

    @_recorded
    def correlation(self) -> Section:
        corr = self.incident.read_json_or_none("correlation")
        if not corr:
            return self._section("Which activity explains the growth", self._missing("Correlation", "03"))
        body, ranked = ev.correlation_html(corr)
        return Section(body, "data" if ranked else "no data", "correlation")

    @_recorded
    def errors(self) -> Section:
        errors = self.summary.get("errors") or []
        if not errors:
            if (self.summary.get("stage_states") or {}).get("03", {}).get("state") == "ok":
                return Section(ev.heading(3, "Errors in logs") + "<p class='zcnb-nodata'>No error or warning lines in the "
                               "gateway's logs.</p>", "no data", "errors")
            return self._section("Errors in logs", self._missing("Errors in logs", "03"))
        rows = [{**e, "first seen": format_time(e.get("first_seen")), "last seen": format_time(e.get("last_seen"))}
                for e in errors]
        return Section(ev.heading(3, "Errors and warnings in logs") + table(
            rows, ["count", "level", "message", "first seen", "last seen"], numeric=["count"],
            time=["first seen", "last seen"], long=["message"]), title="errors")

    @_recorded
    def leak_report(self) -> Section:
        lr = self.summary.get("leak_report")
        if not lr:
            if (self.summary.get("stage_states") or {}).get("03", {}).get("state") == "ok":
                return Section(ev.heading(3, "Leak report") + "<p class='zcnb-nodata'>No leak report in this incident "
                               "(capture one at a clean exit: `zcnb leaks capture`).</p>", "no data", "leak report")
            return self._section("Leak report", self._missing("Leak report", "03"))
        return Section(ev.leak_report_html(lr), title="leak report")

    @_recorded
    def escalation(self) -> Section:
        esc_ = self.summary.get("escalation")
        if not esc_:
            return self._section("Escalation", self._missing("Escalation decision", "06"))
        return Section(ev.escalation_html(esc_, str(self.summary.get("escalation_source") or "")), title="escalation")

    @_recorded
    def fleet(self) -> Section:
        """Every instance of a fleet run (stage 01 in Prometheus mode), with the equivalent alert rule."""
        data = self.incident.read_json_or_none("fleet")
        if not data:
            return Section("<p class='zcnb-nodata'>Single-gateway incident (no fleet data).</p>", "no data", "fleet")
        return Section(ev.fleet_html(data), title="fleet")

    @_recorded
    def stages(self) -> Section:
        """Which stages ran, how long they took, and what became of them."""
        rec = self.summary.get("stages") or []
        if rec:
            rows = [{"stage": s.get("notebook"), "status": s.get("status"), "duration": format_duration(s.get("duration_s")),
                     "error": s.get("error") or ""} for s in rec]
        else:
            rows = [{"stage": f"{k} ({STAGE_NAMES[k]})", "status": v.get("state"), "duration": "-", "error": ""}
                    for k, v in (self.summary.get("stage_states") or {}).items()]
        return Section(ev.heading(3, "Stages") + table(rows, ["stage", "status", "duration", "error"], numeric=["duration"],
                                               long=["error"]),
                       title="stages")

    @_recorded
    def commit_and_parameters(self) -> Section:
        commit = self.summary.get("commit") or "unknown (no commit.txt; pass --commit)"
        params = self.summary.get("parameters") or {}
        rows = [{"parameter": k, "value": v} for k, v in sorted(params.items())]
        return Section(ev.heading(3, "Commit and parameters") + f"<p>Gateway commit: <code>{esc(commit)}</code></p>"
                       + (table(rows, ["parameter", "value"]) if rows else "<p>Default parameters.</p>"),
                       title="commit and parameters")

    def sections(self) -> dict[str, Section]:
        """Every section in report order (what the notebook shows), by name: for checks and tests."""
        return {name: getattr(self, name)() for name in SECTION_ORDER}

    def completeness(self) -> Section:
        """Which sections had data, and why the others had none; saved as ``report_sections.json``.

        Lists the sections shown so far in this notebook (all of them when called on its own).
        """
        from ..files import write_json

        if not self.shown:
            self.sections()
        states = {name: self.shown[name] for name in SECTION_ORDER if name in self.shown}
        write_json(self.incident.root / "report_sections.json", states)
        missing = {n: st for n, st in states.items() if st != "data"}
        rows = [{"section": n.replace("_", " "), "status": st} for n, st in missing.items()]
        head = f"{len(states) - len(missing)} of {len(states)} sections show data"
        body = (f"<p>{esc(head)}" + ("; the others:</p>" + table(rows, ["section", "status"]) if rows else ".</p>"))
        return Section(ev.heading(3, "Report completeness") + body, title="completeness")
