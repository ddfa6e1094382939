"""Stage 03 (diagnose the source) as a few calls for ``notebooks/03_diagnose.ipynb``.

Each function reads from / writes to the incident folder (``journal.jsonl``, ``log_summary.json``,
``correlation.json``, ``leak_report.json``) so that later stages and the report find the results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import LogFormatError
from ..files import write_private
from ..incident import Incident

if TYPE_CHECKING:
    import pandas as pd

    from ..analysis.correlate import Correlation
    from ..logs.message import LogEntry
    from ..logs.summary import LogSummary

__all__ = ["JournalEntries", "Note", "correlation", "explorer", "leak_report", "load_entries", "load_samples",
           "summarize"]


@dataclass(frozen=True)
class Note:
    """A short message shown in place of a result that could not be produced."""

    text: str

    def to_dict(self) -> dict[str, str]:
        return {"note": self.text}

    def _repr_markdown_(self) -> str:
        return f"> {self.text}"


class JournalEntries(list["LogEntry"]):
    """The unit's entries as :func:`load_entries` read them, with what the reader skipped: ``stats.unreadable``
    journal lines (not JSON, not an object, cut, malformed export entries) and whether ``limit`` cut the read."""

    def __init__(self, entries: Any = (), *, stats: Any = None, source: str = "", limit_hit: int | None = None) -> None:
        from ..logs.message import ReadStats

        super().__init__(entries)
        self.stats = stats if stats is not None else ReadStats()
        self.source = source
        self.limit_hit = limit_hit

    def reading_note(self) -> str:
        """What was read and what was skipped, said even when nothing was."""
        n = self.stats.unreadable
        note = (f"{len(self)} journal entries read from {self.source}; {n} unreadable journal line(s) skipped"
                + (" (not JSON, not an object, nested too deep, longer than 4 MiB, or a cut or malformed entry)"
                   if n else ""))
        if self.limit_hit is not None:
            note += f"; the read stopped at the limit of {self.limit_hit} entries (later ones not counted)"
        return note


def _entry_json(e: LogEntry) -> str:
    obj: dict[str, Any] = {"MESSAGE": e.message}
    if e.timestamp is not None:
        obj["__REALTIME_TIMESTAMP"] = str(int(e.timestamp.timestamp() * 1_000_000))
    for key, value in (("_PID", e.pid), ("_SYSTEMD_USER_UNIT", e.unit), ("SYSLOG_IDENTIFIER", e.identifier),
                       ("PRIORITY", e.priority)):
        if value is not None:
            obj[key] = str(value)
    return json.dumps(obj, sort_keys=True)


def _check_preflight_journal(incident: Incident, unit: str) -> None:
    """Stop early, with what preflight saw, when stage 01's preflight found the unit's journal unreadable."""
    if not incident.has("preflight"):
        return
    pre = incident.read_json("preflight")
    if pre.get("journal_readable") is False:
        detail = next((c.get("detail", "") for c in pre.get("checks", []) if c.get("name", "").startswith("journal")), "")
        raise LogFormatError(f"preflight found the journal of {unit} unreadable: {detail}",
                             hint="run on the gateway host as its user (or in group systemd-journal), or put a "
                                  "`journalctl -o json` export into the incident as journal.jsonl and use live=False")


def load_entries(incident: Incident, *, unit: str, live: bool = False, since: str | None = None,
                 until: str | None = None, limit: int = 2_000_000) -> JournalEntries:
    """The unit's entries: live from journald (saved, redacted, as ``journal.jsonl``) or the incident's saved copy.

    Lines the reader cannot use are skipped and counted (``.stats.unreadable``); :func:`summarize` states the count.
    """
    from ..logs.journal import read_journal, read_journal_json
    from ..logs.message import ReadStats
    from ..redact import default_redactor

    red = default_redactor()
    stats = ReadStats()
    if live:
        _check_preflight_journal(incident, unit)
        entries = JournalEntries(stats=stats, source="the live journal (journalctl)")
        for i, e in enumerate(read_journal(unit, since=since or None, until=until or None, redact=red, stats=stats)):
            if i >= limit:
                entries.limit_hit = limit
                break
            entries.append(e)
        write_private(incident.path("journal"), "".join(_entry_json(e) + "\n" for e in entries))
        return entries
    if not incident.has("journal"):
        raise LogFormatError(f"the incident has no {incident.path('journal').name}",
                             hint="run with live=True on the gateway host, or copy journalctl -o json output there")
    path = incident.path("journal")
    return JournalEntries(read_journal_json(path, unit=unit, redact=red, stats=stats), stats=stats, source=path.name)


_NICE_BUCKETS_S = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def auto_bucket(entries: list[LogEntry], *, target_buckets: int = 30) -> str:
    """A bucket giving about ``target_buckets`` buckets over the entries' time span (10 s .. 1 h)."""
    times = [e.timestamp for e in entries if e.timestamp is not None]
    span = (max(times) - min(times)).total_seconds() if times else 0.0
    want = span / target_buckets
    return f"{next((b for b in _NICE_BUCKETS_S if b >= want), _NICE_BUCKETS_S[-1])}s"


def summarize(incident: Incident, entries: list[LogEntry], *, unit: str, bucket: str = "auto") -> LogSummary:
    """:func:`zcnb.logs.summarize_logs` of the entries; saved as ``log_summary.json``.

    ``bucket="auto"`` picks about 30 buckets over the window (10 s for a few minutes, 2 min for an hour).
    Entries from :func:`load_entries` bring what their reader skipped: the summary counts the unreadable journal
    lines (``unreadable``) and its first note says how many were skipped, even none.
    """
    import dataclasses

    from ..logs.entries import summarize_logs

    stats = entries.stats if isinstance(entries, JournalEntries) else None
    summary = summarize_logs(entries, unit=unit, bucket=auto_bucket(entries) if bucket == "auto" else bucket,
                             stats=stats)
    if isinstance(entries, JournalEntries):
        summary = dataclasses.replace(summary, notes=(entries.reading_note(), *summary.notes))
    incident.write_json("log_summary", summary.to_dict())
    return summary


def oom(incident: Incident, entries: list[LogEntry], *, unit: str, live: bool = False, since: str | None = None,
        until: str | None = None) -> Any:
    """OOM kills (runbook key sign): live, the journal's manager/oomd/kernel lines plus the unit's own
    (saved as ``oom.json``); in replay, the saved ``oom.json`` if any, else the unit's own lines only."""
    from ..config import load_settings
    from ..logs.oom import OomEvent, OomScan, find_oom_events, read_oom_events

    if live:
        scan = read_oom_events(unit, process_name=load_settings().process_pattern, since=since or None,
                               until=until or None, own_entries=entries)
        incident.write_json("oom", scan.to_dict())
        return scan
    if incident.has("oom"):
        d = incident.read_json("oom")
        from datetime import datetime

        events = tuple(OomEvent(datetime.fromisoformat(e["timestamp"]) if e.get("timestamp") else None,
                                e["source"], e["kind"], e.get("pid"), e["message"]) for e in d.get("events", []))
        return OomScan(events, d.get("searched", "saved oom.json"), tuple(d.get("notes", [])))
    scan = OomScan(tuple(find_oom_events(entries, unit=unit, process_name=load_settings().process_pattern)),
                   "the unit's own saved lines only",
                   ("the manager's and kernel's OOM lines are read only in live mode (live=True)",))
    incident.write_json("oom", scan.to_dict())
    return scan


def load_samples(incident: Incident) -> pd.DataFrame | None:
    """The incident's memory samples (``samples.csv``), or None when stage 01 recorded none."""
    if not incident.has("samples"):
        return None
    from ..collect.samples_csv import read_samples

    return read_samples(incident.path("samples"))


def correlation(incident: Incident, summary: LogSummary, samples: pd.DataFrame | None) -> Correlation:
    """Memory growth vs activity (never raises for unusable data: says why); saved as ``correlation.json``."""
    from ..analysis.correlate import explain_growth

    corr = explain_growth(samples, summary)
    incident.write_json("correlation", corr.to_dict())
    return corr


def skills_figure(incident: Incident, summary: LogSummary) -> Any:
    """Skill-invocation bar chart, displayed and saved as ``figures/skills.png`` (the report shows it)."""
    from ..viz.display import figure_image
    from ..viz.logs import plot_skills

    return figure_image(plot_skills(summary), alt="skill invocations", path=incident.figures / "skills.png")


def correlation_figure(incident: Incident, corr: Correlation) -> Any:
    """Bytes retained per event by activity, displayed and saved as ``figures/correlation.png``."""
    from ..viz.display import figure_image
    from ..viz.logs import plot_correlation

    return figure_image(plot_correlation(corr), alt="memory growth vs activity",
                        path=incident.figures / "correlation.png")


def leak_report(incident: Incident, entries: list[LogEntry] | None = None) -> Any:
    """The incident's leak report parsed and saved as ``leak_report.json``: ``leak_report.txt`` when a capture
    left one, else the report the gateway wrote into its log at a clean exit (Zig's allocator prints it to
    stderr, which the journal keeps), found among ``entries``."""
    from ..leaks.parse import parse_leak_file, parse_leak_report

    report: Any
    if incident.has("leak_report_text"):
        report, source = parse_leak_file(incident.path("leak_report_text")), "leak_report.txt"
    else:
        lines = [e.message for e in entries or () if e.message]
        report = parse_leak_report(lines) if lines else None
        if report is None or not getattr(report, "records", ()):
            return Note("no leak report in this incident (capture one at a clean exit: zcnb leaks capture)")
        source = "the gateway's log (its allocator's report at a clean exit)"
    to_dict = getattr(report, "to_dict", None)
    if callable(to_dict):
        incident.write_json("leak_report", {**to_dict(), "source": source})
    return report


def explorer(entries: list[LogEntry]) -> Any:
    """ipywidgets filter of the entries by skill, level and time."""
    from ..viz.logs import entries_frame, log_explorer

    return log_explorer(entries_frame(entries))
