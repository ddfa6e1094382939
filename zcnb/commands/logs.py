"""``zcnb logs``: the runbook's skill count (``sort | uniq -c | sort -nr``), top errors and restarts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import unit_arg
from .json_option import add_json_option

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "logs", help="summarise the gateway's log: skills, tools, errors, restarts",
        description="Read the unit's journal (journalctl -o json), journal files, a saved JSON export or a text "
                    "log, and print the skill table like the runbook's grep | sort | uniq -c | sort -nr, "
                    "top errors and restarts. Secrets in messages are redacted.")
    p.add_argument("--unit", type=unit_arg, default=None, help="unit (default: the configured gateway unit)")
    p.add_argument("--since", help="start: ISO time, epoch seconds, or a duration back from now (2h)")
    p.add_argument("--until", help="end: ISO time, epoch seconds, or a duration back from now")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--file", action="append", metavar="F.journal", help="journal file(s) (globs allowed)")
    src.add_argument("--directory", metavar="D", help="journal folder")
    src.add_argument("--text", metavar="FILE", help="journalctl -o short-iso text, or raw log lines")
    src.add_argument("--json-export", metavar="FILE", help="saved journalctl -o json lines (e.g. journal.jsonl)")
    p.add_argument("--system", action="store_true", help="system unit instead of a user unit")
    p.add_argument("--bucket", default="1min", help="time bucket for per-bucket counts (default 1min)")
    p.add_argument("--top", type=int, default=10, help="how many error messages to list")
    add_json_option(p, "the summary")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..config import load_settings
    from ..logs.entries import summarize_logs
    from ..logs.message import ReadStats
    from ..redact import Redactor

    settings = load_settings(args.config) if getattr(args, "config", None) else load_settings()
    unit = args.unit or settings.unit
    token = settings.token()
    red = Redactor.create(patterns=settings.redact_patterns, secrets=[token] if token else [])
    stats = ReadStats()  # what the journal readers skip, reported with the summary
    if args.text:
        if args.since or args.until:
            print("zcnb: note: --since/--until apply to journal input only; reading the whole text file",
                  file=sys.stderr)
        summary = summarize_logs(args.text, bucket=args.bucket, unit=unit, redact=red)
    elif args.json_export:
        from ..logs.journal import read_journal_json

        entries = read_journal_json(args.json_export, redact=red, stats=stats)
        if args.since or args.until:
            entries = _window(entries, args.since, args.until)
        summary = summarize_logs(entries, bucket=args.bucket, unit=unit, redact=red, stats=stats)
    else:
        from ..logs.journal import read_journal

        entries = read_journal(unit, user=not args.system, since=args.since, until=args.until, files=args.file,
                               directory=args.directory, redact=red, stats=stats)
        summary = summarize_logs(entries, bucket=args.bucket, unit=unit, redact=red, stats=stats)
    if summary.n_lines == 0:
        _no_lines(summary, source=args.text or args.json_export or "the journal", unit=unit)
    from .json_option import emit_json, json_to_stdout

    if not json_to_stdout(args):
        print(render(summary, top=args.top))
    emit_json(args, summary.to_dict())
    return 0


def _no_lines(summary: Any, *, source: str, unit: str | None) -> None:
    """A summary of nothing is no answer: say why the input gave no line (exit 2), never print empty tables."""
    from ..exceptions import LogFormatError

    skipped = f"; {summary.unreadable} unreadable line(s) or entries skipped" if summary.unreadable else ""
    raise LogFormatError(f"no log lines of {summary.unit or unit or 'any unit'} in {source}{skipped}",
                         hint="check the file and --unit (journalctl -u UNIT -o short-iso > FILE), and --since/--until")


def _window(entries: Any, since: Any, until: Any) -> Any:
    """Entries with a timestamp inside [since, until] (what journalctl's --since/--until do for live input)."""
    from ..units import to_epoch

    lo, hi = to_epoch(since), to_epoch(until)
    for e in entries:
        t = e.timestamp.timestamp() if e.timestamp is not None else None
        if t is None or (lo is not None and t < lo) or (hi is not None and t > hi):
            continue
        yield e


def render(summary: Any, *, top: int = 10) -> str:
    """Plain-text report of a :class:`~zcnb.logs.LogSummary`."""
    s = summary
    span = f"{s.start.isoformat() if s.start else '-'} .. {s.end.isoformat() if s.end else '-'}"
    out = [f"{s.unit or 'all units'}: {s.n_lines} lines, {span}", "",
           "Skill invocations (count skill:NAME, like sort | uniq -c | sort -nr):"]
    out.append(s.runbook_table() or "      (none)")
    if len(s.tools):
        out += ["", "Tools: " + ", ".join(f"{r.tool} {int(r.count)}" for r in s.tools.itertuples())]
    if s.requests:
        out.append("Requests: " + ", ".join(f"{k} {v}" for k, v in s.requests.items()))
    lv = s.levels
    out.append(f"Levels: error {lv['error']}, warning {lv['warning']}, info {lv['info']}, debug {lv['debug']}, "
               f"no level {lv['none']}")
    if s.priorities:
        out.append("journald PRIORITY: " + ", ".join(f"{k}: {v}" for k, v in s.priorities.items()))
    out += ["", "Top errors and warnings:"]
    if len(s.top_errors):
        for r in s.top_errors.head(top).itertuples():
            first = r.first_seen.isoformat() if r.first_seen is not None else "-"
            last = r.last_seen.isoformat() if r.last_seen is not None else "-"
            out.append(f"{int(r.count):7d}  {first} .. {last}  {r.message[:160]}")
    else:
        out.append("      (none)")
    out += ["", f"Crashes: {len(s.crashes)}"]
    for r in s.crashes.itertuples():
        ts = r.timestamp.isoformat() if r.timestamp is not None else "-"
        out.append(f"  {ts}  pid {r.pid if r.pid is not None else '-'}: {r.message[:160]}")
    out += [f"Restarts and crashes: {len(s.restarts)}"]
    for r in s.restarts.itertuples():
        ts = r.timestamp.isoformat() if r.timestamp is not None else "-"
        pids = f"pid {r.old_pid if r.old_pid is not None else '-'} -> {r.new_pid if r.new_pid is not None else '-'}"
        out.append(f"  {ts}  {r.reason}: {pids}" + (f"  ({r.detail[:160]})" if r.detail else ""))
    if s.allocator:
        out.append("Allocator reports: " + ", ".join(f"{k} {v}" for k, v in s.allocator.items()))
    if s.alloc_mentions:
        out.append("alloc/free/deinit mentions: " + ", ".join(f"{k} {v}" for k, v in s.alloc_mentions.items()))
    if s.unreadable or s.bad_times or s.cut_lines:
        out.append(f"Not read as written: {s.unreadable} unreadable line(s)/entries skipped, {s.bad_times} time(s) out "
                   f"of range (counted without a time), {s.cut_lines} line(s) cut")
    out += [f"note: {n}" for n in s.notes]
    return "\n".join(out)
