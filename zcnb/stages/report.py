"""Stage 05 (the incident report): :class:`IncidentReport` gives the report notebook one call per section.

Everything comes from the files in the incident folder, mostly through ``summary.json``
(:func:`zcnb.report.summary.build_incident_summary`). A section whose input is missing says which stage
would have produced it, instead of looking clean when nothing was measured.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..incident import Incident, open_incident
from ..report.summary import build_incident_summary
from ..units import format_bytes, format_duration

__all__ = ["IncidentReport"]


class _HTML:
    """A small HTML fragment with a notebook display."""

    def __init__(self, body: str) -> None:
        self.body = body

    def _repr_html_(self) -> str:
        return self.body

    def __repr__(self) -> str:
        return self.body


def _missing(what: str, stage: str) -> _HTML:
    return _HTML(f"<p><b>{html.escape(what)}: not available</b> (stage {html.escape(stage)} produced no data "
                 f"in this incident folder).</p>")


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, cls: str = "zcnb") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class IncidentReport:
    """Sections of the incident report, each displayable in a notebook."""

    incident: Incident
    summary: dict[str, Any]

    @classmethod
    def load(cls, incident_dir: str | os.PathLike[str] | None = "") -> IncidentReport:
        inc = open_incident(incident_dir, create=False) if incident_dir else open_incident("")
        summary = inc.read_json_or_none("summary") or build_incident_summary(inc)
        return cls(inc, summary)

    # -- sections -------------------------------------------------------------------------------
    def header(self) -> _HTML:
        s = self.summary
        status = "all stages succeeded" if s.get("ok") else "FAILED stages: " + ", ".join(s.get("failed_stages", []))
        rows = [f"<h1>Memory-leak incident {html.escape(str(s.get('incident')))}</h1>",
                f"<p>Started {html.escape(str(s.get('started_at')))}; {html.escape(status)}.</p>"]
        for st in s.get("stages", []):
            if st.get("status") != "ok":
                rows.append(f"<p class='failed'><b>{html.escape(st['notebook'])} failed</b>: "
                            f"{html.escape(str(st.get('error')))} (see the executed notebook {html.escape(st['output'])},"
                            f" cell {st.get('failed_cell')}).</p>")
        return _HTML("\n".join(rows))

    def verdict(self) -> Any:
        if not self.incident.has("samples") and not self.summary.get("assessment", {}).get("verdict"):
            return _missing("leak verdict", "01")
        return self._assessment()

    def _samples(self) -> Any:
        from ..collect.sampling import read_samples

        return read_samples(self.incident.path("samples"))

    def _assessment(self) -> Any:
        """Re-assess the samples with the limit stage 01 used (so the figure and table match it)."""
        from ..analysis import assess_leak

        stored = self.incident.read_json_or_none("assessment") or {}
        limit = stored.get("limit_bytes") if stored.get("limit_source") == "parameter" else None
        return assess_leak(self._samples(), limit_bytes=limit, limit_source="parameter" if limit else None)

    def memory_figure(self) -> Any:
        if not self.incident.has("samples"):
            return _missing("memory over time", "01")
        from ..viz.display import figure_image
        from ..viz.memory import plot_memory

        fig = plot_memory(self._samples(), self._assessment())
        return figure_image(fig, alt="memory over time", path=self.incident.figures / "memory.png")

    def restarts(self) -> _HTML:
        rows = self.summary.get("restarts") or []
        if not rows:
            return _HTML("<p>No restarts were performed or observed.</p>")
        return _HTML(_table(rows, ["timestamp", "duration_s", "what", "outcome", "source"]))

    def oom(self) -> Any:
        """OOM kills found by stage 03 (the runbook's "OOM kills in logs")."""
        d = self.summary.get("oom")
        if not d:
            return _missing("OOM kills", "03")
        events = d.get("events") or []
        kills = d.get("kills", 0)
        head = (f"<p><b>OOM kills: {kills}</b>" if kills else "<p><b>No OOM kill found</b>") + \
            f" (searched: {html.escape(str(d.get('searched', '')))})</p>"
        notes = "".join(f"<p><i>{html.escape(str(n))}</i></p>" for n in d.get("notes") or [])
        if not events:
            return _HTML(head + notes)
        return _HTML(head + _table(events[:50], ["timestamp", "source", "kind", "pid", "message"]) + notes)

    def skills(self) -> Any:
        skills = self.summary.get("skills") or {}
        if not skills and self.incident.has("log_summary"):
            return _HTML("<p>No skill invocations in the gateway's logs.</p>")
        if not skills:
            return _missing("skill invocations", "03")
        items = sorted(skills.items(), key=lambda kv: (-kv[1], kv[0]))
        return _HTML(_table([{"count": c, "skill": n} for n, c in items], ["count", "skill"],
                                                       cls="zcnb skills"))

    def skills_chart(self) -> Any:
        return self._stage_figure("skills.png", "skill invocations", "03")

    def correlation_chart(self) -> Any:
        return self._stage_figure("correlation.png", "memory growth vs activity", "03")

    def _stage_figure(self, name: str, alt: str, stage: str) -> Any:
        """A figure a stage saved in ``figures/`` (the report shows exactly what the stage showed)."""
        from ..viz.display import PngImage

        path = self.incident.root / "figures" / name
        if path.parent.is_symlink() or path.is_symlink() or not path.is_file():  # links are never followed
            return _missing(alt, stage)
        return PngImage(path, alt=alt)

    def errors(self) -> Any:
        errors = self.summary.get("errors") or []
        if not errors and not self.incident.has("log_summary"):
            return _missing("errors in logs", "03")
        if not errors:
            return _HTML("<p>No error lines in the gateway's logs.</p>")
        cols = [c for c in ("count", "level", "message", "first_seen", "last_seen") if c in errors[0]]
        return _HTML(_table(errors, cols))

    def actions(self) -> _HTML:
        acts = self.summary.get("actions") or []
        note = self.summary.get("actions_note") or ""
        warn = f"<p><b>Warning:</b> {html.escape(note)}</p>" if note else ""
        if not acts:
            return _HTML("<p>No actions recorded.</p>" + warn)
        rows = [{**a, "mode": "dry run" if a.get("dry_run") else "executed",
                 "commands": "; ".join(a.get("commands") or [])} for a in acts]
        return _HTML(warn + _table(rows, ["started_at", "action", "target", "mode", "outcome", "duration_s",
                                          "message", "commands"]))

    def timeline(self) -> Any:
        from ..report.timeline import build_timeline

        return build_timeline(self.incident)

    def timeline_figure(self) -> Any:
        from ..report.timeline import build_timeline
        from ..viz.display import figure_image
        from ..viz.timeline import plot_timeline

        samples = self._samples() if self.incident.has("samples") else None
        fig = plot_timeline(build_timeline(self.incident, samples), samples)
        return figure_image(fig, alt="evidence timeline", path=self.incident.figures / "timeline.png")

    def escalation(self) -> Any:
        esc = self.summary.get("escalation")
        if not esc:
            return _missing("escalation decision", "06")
        def shown(key: str, value: Any) -> Any:
            if isinstance(value, (int, float)) and key.endswith("_bytes_per_hour"):
                return f"{format_bytes(value)}/h"
            if isinstance(value, (int, float)) and key.endswith("_s"):
                return format_duration(value)
            return "unknown" if value is None and key.startswith("persisted") else value

        rows = [{"field": k.removesuffix("_s").replace("_bytes_per_hour", "").replace("_", " "), "value": shown(k, v)} for k, v in esc.items()
                if not isinstance(v, (dict, list)) and (v is not None or k.startswith("persisted"))]
        return _HTML(_table(rows, ["field", "value"]))

    def correlation(self) -> Any:
        corr = self.incident.read_json_or_none("correlation")
        if not corr:
            return _missing("memory-vs-activity correlation", "03")
        ranking = corr.get("ranking") or []
        statement = html.escape(str(corr.get("statement") or ""))
        if not ranking:
            return _HTML(f"<p>No activity explains the memory growth. {statement}</p>")

        def kib(v: Any) -> str:
            return format_bytes(v, unit="KiB") if isinstance(v, (int, float)) else "-"

        rows = [{"activity": r.get("activity"), "bytes retained per event": kib(r.get("bytes_per_event")),
                 "interval": f"{kib(r.get('low'))} - {kib(r.get('high'))}", "events": r.get("events"),
                 "share of growth": f"{100 * r['share']:.0f}%" if isinstance(r.get("share"), (int, float)) else "-",
                 "p": f"{r['p_value']:.2g}" if isinstance(r.get("p_value"), (int, float)) else "-"}
                for r in ranking[:10]]
        return _HTML(f"<p><b>{statement}</b></p>" + _table(rows, list(rows[0]), cls="zcnb correlation"))

    def fleet(self) -> Any:
        """Every instance of a fleet run (stage 01 in Prometheus mode), with the equivalent alert rule."""
        data = self.incident.read_json_or_none("fleet")
        if not data:
            return _HTML("<p>Single-gateway incident (no fleet data).</p>")
        rows = data.get("rows") or []
        cols = [c for c in ("instance", "verdict", "pattern", "severity", "growth_bytes_per_hour", "time_to_limit_s",
                            "rule_flagged") if rows and c in rows[0]]
        rule = (data.get("rule") or {}).get("expr", "")
        return _HTML(f"<h3>Fleet: {len(rows)} instances</h3>" + _table(rows, cols, cls="zcnb fleet")
                     + f"<p>Restart first: {html.escape(', '.join(data.get('restart_order') or []) or 'none')}</p>"
                     + f"<p>The Prometheus rule you would otherwise write: <code>{html.escape(rule)}</code></p>")

    def commit_and_parameters(self) -> _HTML:
        commit = self.summary.get("commit") or "unknown (no commit.txt; pass --commit)"
        params = self.summary.get("parameters") or {}
        rows = [{"parameter": k, "value": v} for k, v in sorted(params.items())]
        return _HTML(f"<p>Gateway commit: <code>{html.escape(str(commit))}</code></p>"
                     + (_table(rows, ["parameter", "value"]) if rows else "<p>Default parameters.</p>"))
