"""Stage 03 on logs written by the REAL gateway binary (tests/data/logs/real/): a crash reaches the incident's
evidence timeline and the report, and journal lines that cannot be read are counted and said, never dropped
silently. Incident folders are built by hand from the recorded lines (no kernel, no network)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from zcnb.incident import open_incident
from zcnb.report.timeline import build_timeline
from zcnb.stages import diagnose
from zcnb.stages.report import IncidentReport

REAL = Path(__file__).parent / "data" / "logs" / "real"
T0_US = 1_795_900_000_000_000
UNIT = "zeptoclaw-gateway.service"


def _journal_lines(names_pids: list[tuple[str, int]]) -> list[str]:
    """``journalctl -o json`` lines of the recorded logs, one entry per line, as journald stores the gateway's stderr."""
    out, us = [], T0_US
    for name, pid in names_pids:
        for ln in (REAL / name).read_text(encoding="utf-8").splitlines():
            out.append(json.dumps({"__REALTIME_TIMESTAMP": str(us), "_PID": str(pid), "_SYSTEMD_USER_UNIT": UNIT,
                                   "SYSLOG_IDENTIFIER": "zeptoclaw-gateway", "PRIORITY": "6", "MESSAGE": ln}))
            us += 7_000
        us += 2_000_000
    return out


def _incident(tmp_path: Path, lines: list[str]) -> Any:
    inc = open_incident(tmp_path / "inc")
    (inc.root / "journal.jsonl").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    return inc


def _panic() -> str:
    text = (REAL / "crash.log").read_text(encoding="utf-8")
    return next(ln for ln in text.splitlines() if re.match(r"thread \d+ panic: ", ln))


def test_a_real_crash_is_on_the_timeline_and_in_the_report(tmp_path: Path) -> None:
    inc = _incident(tmp_path, _journal_lines([("crash.log", 4100), ("start.log", 4101)]))
    entries = diagnose.load_entries(inc, unit=UNIT)
    summary = diagnose.summarize(inc, entries, unit=UNIT)
    saved = inc.read_json("log_summary")
    assert [c["message"] for c in saved["crashes"]] == [_panic()] and saved["crashes"][0]["pid"] == 4100
    crash_ts = summary.crashes.iloc[0]["timestamp"]
    timeline = build_timeline(inc)
    crashes = [e for e in timeline.entries if e.kind == "crash"]
    assert len(crashes) == 1 and crashes[0].time == crash_ts
    assert "panic: reached unreachable code" in crashes[0].what and "pid 4100" in crashes[0].what
    assert "restarted as pid 4101" in crashes[0].what  # the log's restart after it (reason: crash)
    rep = IncidentReport.load(inc.root)
    html = rep.timeline().body
    assert "panic: reached unreachable code" in html and "crash" in html
    assert "panic: reached unreachable code" in rep.root_cause().body


def test_a_crash_with_no_restart_after_it_says_so(tmp_path: Path) -> None:
    inc = _incident(tmp_path, _journal_lines([("crash.log", 4100)]))
    diagnose.summarize(inc, diagnose.load_entries(inc, unit=UNIT), unit=UNIT)
    crashes = [e for e in build_timeline(inc).entries if e.kind == "crash"]
    assert len(crashes) == 1 and "no restart after it in the log" in crashes[0].what


def test_a_crash_line_without_a_time_is_placed_at_the_logs_end_and_says_so(tmp_path: Path) -> None:
    lines = _journal_lines([("crash.log", 4100)])
    panic_at = next(i for i, ln in enumerate(lines) if _panic() in ln)
    obj = json.loads(lines[panic_at])
    del obj["__REALTIME_TIMESTAMP"]
    lines[panic_at] = json.dumps(obj)
    inc = _incident(tmp_path, lines)
    summary = diagnose.summarize(inc, diagnose.load_entries(inc, unit=UNIT), unit=UNIT)
    assert summary.crashes.iloc[0]["timestamp"] is None
    crashes = [e for e in build_timeline(inc).entries if e.kind == "crash"]
    assert len(crashes) == 1 and crashes[0].time == summary.end and "no time on the line" in crashes[0].what


def test_unreadable_journal_lines_are_counted_and_stated(tmp_path: Path) -> None:
    lines = _journal_lines([("crash.log", 4100)])
    good = len(lines)
    bad = ['{"MESSAGE": "cut sh', "not json at all", "[1, 2, 3]", '{"MESSAGE": "x"} trailing']
    lines[3:3] = bad
    inc = _incident(tmp_path, lines)
    entries = diagnose.load_entries(inc, unit=UNIT)
    assert len(entries) == good and entries.stats.unreadable == len(bad)
    summary = diagnose.summarize(inc, entries, unit=UNIT)
    assert summary.unreadable == len(bad) and inc.read_json("log_summary")["unreadable"] == len(bad)
    assert summary.notes[0].startswith(f"{good} journal entries read from journal.jsonl; {len(bad)} unreadable")
    assert any(n.startswith(f"{len(bad)} unreadable line(s) or entries skipped") for n in summary.notes)
    # none skipped: said too
    clean = _incident(tmp_path / "clean", _journal_lines([("start.log", 4100)]))
    s = diagnose.summarize(clean, diagnose.load_entries(clean, unit=UNIT), unit=UNIT)
    assert "; 0 unreadable journal line(s) skipped" in s.notes[0] and s.unreadable == 0
