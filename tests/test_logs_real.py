"""Logs written by the REAL ZeptoClaw gateway binary (tests/data/logs/real/, recorded by record.py there):
a plain start, a rate-limit crash (the 101st authenticated request within 60 s: ``Connection error:
error.RateLimitExceeded`` then ``thread N panic: reached unreachable code`` and its stack trace) and a clean
exit with the debug allocator's leak report. Read as the raw stderr file, as ``journalctl -o short-iso`` text,
as a saved ``journalctl -o json`` and from a real journal file; both engines must agree on each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zcnb.logs.native import native_status
from zcnb.logs import LogSummary, read_log_file, summarize_logs

REAL = Path(__file__).parent / "data" / "logs" / "real"
NATIVE, WHY = native_status()
T0_US = 1_795_900_000_000_000


def _plain(s: LogSummary) -> dict[str, Any]:
    d = s.to_dict()
    d["notes"] = [n for n in d["notes"] if not n.startswith("engine:")]
    d["source"] = ""
    return d


def both(path: Path, **kw: Any) -> LogSummary:
    """summarize_logs with the Python engine and (when built) the native one: identical, or the test fails."""
    py = summarize_logs(path, engine="python", **kw)
    if NATIVE:
        c = summarize_logs(path, engine="native", **kw)
        assert _plain(c) == _plain(py) and c.buckets.equals(py.buckets)
        engine = next(n for n in c.notes if n.startswith("engine:"))
        assert engine.startswith("engine: native"), engine
    return py


def lines(name: str) -> list[str]:
    return (REAL / name).read_text(encoding="utf-8").splitlines()


def count(name: str, pattern: str) -> int:
    return sum(1 for ln in lines(name) if re.match(pattern, ln))


def test_fixtures_hold_no_token() -> None:
    for name in ("start.log", "crash.log", "clean_exit.log"):
        text = (REAL / name).read_text(encoding="utf-8")
        assert re.findall(r"(?:Main|Workspace) Token: (\S+)", text) == ["TOKEN_PLACEHOLDER"] * 2, name


def test_plain_start() -> None:
    s = both(REAL / "start.log")
    warns = count("start.log", r"Warn: ")
    infos = count("start.log", r"info(\([^)]*\))?: ")
    assert warns == 3 and infos >= 2
    assert s.levels == {"error": 0, "warning": warns, "info": infos, "debug": 0,
                        "none": len(lines("start.log")) - warns - infos}
    assert len(s.crashes) == 0 and len(s.restarts) == 0
    assert any(n.startswith("startup banner: the gateway starts at line ") for n in s.notes)
    assert {m.split(" (")[0] for m in s.top_errors["message"]} == {
        "Warn: MOLTBOOK_API_KEY not set", "Warn: MOLTBOOK_AGENT_ID not set", "Warn: MOLTBOOK_AGENT_NAME not set"}


def test_rate_limit_crash_is_an_error_and_a_crash() -> None:
    s = both(REAL / "crash.log")
    panic = [ln for ln in lines("crash.log") if re.match(r"thread \d+ panic: ", ln)]
    assert len(panic) == 1 and panic[0].endswith("panic: reached unreachable code")
    assert count("crash.log", r"Connection error: error\.RateLimitExceeded$") == 1
    assert s.levels["error"] == 2 and s.levels["warning"] == 3
    assert list(s.crashes["message"]) == panic and s.crashes.iloc[0]["pid"] is None
    assert list(s.restarts["reason"]) == ["crash"] and s.restarts.iloc[0]["new_pid"] is None
    assert panic[0] in s.restarts.iloc[0]["detail"] and "no restart after it" in s.restarts.iloc[0]["detail"]
    top = list(s.top_errors["message"])
    assert top[0] == panic[0] and "Connection error: error.RateLimitExceeded" in top
    # the stack trace is part of the crash, not errors of its own; its lines have no level
    assert s.levels["none"] == len(lines("crash.log")) - 2 - 3 - s.levels["info"]


def test_clean_exit_with_leak_report() -> None:
    s = both(REAL / "clean_exit.log")
    records = count("clean_exit.log", r"error\(DebugAllocator\): memory address 0x[0-9a-f]+ leaked: ?$")
    assert records > 100
    assert s.allocator == {"error(DebugAllocator)": records, "leak reports": records}
    assert s.levels["error"] == records and len(s.crashes) == 0 and len(s.restarts) == 0
    assert "warning: Failed to save state on shutdown: error.ProcessFdQuotaExceeded" in list(s.top_errors["message"])
    assert any("leak report records" in n and "clean exit" in n for n in s.notes)


def test_cli_on_the_crash_log(capsys: pytest.CaptureFixture[str]) -> None:
    from zcnb.cli import main

    assert main(["logs", "--text", str(REAL / "crash.log")]) == 0
    out = capsys.readouterr().out
    assert "Levels: error 2, warning 3" in out and "error 0" not in out
    assert "Crashes: 1" in out and "Restarts and crashes: 1" in out and "panic: reached unreachable code" in out
    assert "TOKEN_PLACEHOLDER" not in out


# --- the same lines as journald stores them: one entry per line, with the process's pid --------------------
def _entries(names_pids: list[tuple[str, int]]) -> list[dict[str, Any]]:
    out = []
    us = T0_US
    for name, pid in names_pids:
        for ln in lines(name):
            out.append({"__REALTIME_TIMESTAMP": us, "_PID": pid, "_SYSTEMD_USER_UNIT": "zeptoclaw-gateway.service",
                        "SYSLOG_IDENTIFIER": "zeptoclaw-gateway", "PRIORITY": 6, "MESSAGE": ln})
            us += 7_000
        us += 2_000_000  # the service manager's restart delay
    return out


def _json_export(entries: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps({k: str(v) for k, v in e.items()}) + "\n" for e in entries), encoding="utf-8")
    return path


def _short_iso(entries: list[dict[str, Any]], path: Path) -> Path:
    from datetime import UTC, datetime

    with open(path, "w", encoding="utf-8") as fh:
        for e in entries:
            ts = datetime.fromtimestamp(e["__REALTIME_TIMESTAMP"] / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
            fh.write(f"{ts} gw01 zeptoclaw-gateway[{e['_PID']}]: {e['MESSAGE']}\n")
    return path


@pytest.mark.parametrize("form", ["json", "short-iso"])
def test_crash_then_restart_in_the_journal(tmp_path: Path, form: str) -> None:
    entries = _entries([("crash.log", 4100), ("start.log", 4101)])
    path = (_json_export if form == "json" else _short_iso)(entries, tmp_path / f"j.{form}")
    s = both(path, unit="zeptoclaw-gateway", bucket="1s")
    assert s.pids == (4100, 4101) and s.n_lines == len(entries)
    assert list(s.restarts["reason"]) == ["crash"]
    r = s.restarts.iloc[0]
    assert (r["old_pid"], r["new_pid"]) == (4100, 4101) and "panic: reached unreachable code" in r["detail"]
    assert r["timestamp"] > s.crashes.iloc[0]["timestamp"]  # the restart comes after the crash
    assert s.crashes.iloc[0]["pid"] == 4100 and s.levels["error"] == 2 and s.levels["warning"] == 6
    assert s.buckets[["error", "warning"]].to_numpy().sum() == 8


def test_raw_log_of_two_runs(tmp_path: Path) -> None:
    """The same file appended to by two runs (no pids): the second banner is the restart, caused by the crash."""
    path = tmp_path / "gateway.log"
    path.write_text((REAL / "crash.log").read_text() + (REAL / "start.log").read_text())
    s = both(path)
    assert list(s.restarts["reason"]) == ["crash"] and len(s.crashes) == 1
    assert [e.level for e in read_log_file(path) if e.message.startswith(("thread ", "Connection", "Warn"))] == \
        ["warning"] * 3 + ["error", "error"] + ["warning"] * 3


def test_real_journal_file(tmp_path: Path) -> None:
    """A real journal file (systemd-journal-remote) read through journalctl: the same summary as its JSON form."""
    from zcnb.logs.journal import read_journal, write_journal

    entries = _entries([("crash.log", 4100), ("start.log", 4101), ("clean_exit.log", 4102)])
    files = write_journal(entries, tmp_path / "gw.journal")
    from_journal = summarize_logs(read_journal("zeptoclaw-gateway", files=files), unit="zeptoclaw-gateway")
    from_json = both(_json_export(entries, tmp_path / "gw.jsonl"), unit="zeptoclaw-gateway")
    assert _plain(from_journal) == _plain(from_json)
    assert list(from_json.restarts["reason"]) == ["crash", "pid change"]
    assert from_json.allocator["leak reports"] == count("clean_exit.log", r"error\(DebugAllocator\)")


@pytest.mark.slow
def test_record_script_on_the_real_binary(tmp_path: Path) -> None:
    """Re-records the three logs with the real binary (needs it: $ZEPTOCLAW_GATEWAY or the default build path)."""
    binary = os.environ.get("ZEPTOCLAW_GATEWAY", "/work/scratch/zc/bin/zeptoclaw-gateway")
    if not Path(binary).is_file():
        pytest.skip(f"no real gateway binary at {binary} (set ZEPTOCLAW_GATEWAY; REAL-GATEWAY.md shows the build)")
    subprocess.run([sys.executable, str(REAL / "record.py"), "--binary", binary, "--out", str(tmp_path)], check=True,
                   timeout=300, capture_output=True)
    crash = both(tmp_path / "crash.log")
    assert list(crash.restarts["reason"]) == ["crash"] and crash.levels["error"] == 2
    assert both(tmp_path / "clean_exit.log").allocator["leak reports"] > 100
    assert "TOKEN_PLACEHOLDER" in (tmp_path / "start.log").read_text()


def test_journalctl_export_and_short_formats(tmp_path: Path) -> None:
    """``journalctl -o export > F`` and journalctl's default ``short`` text (what the runbook's command prints),
    both read by the C scanner too, exported by journalctl itself from a real journal file: the same
    counts as the JSON form (the short format has no year: no times there). Both used to be read as raw lines (no
    level or pid found)."""
    from zcnb.logs.journal import write_journal

    entries = _entries([("crash.log", 4100), ("start.log", 4101)])
    entries.append({**entries[-1], "MESSAGE": b"multi skill:git_workflow\nline error: not a level \xff"})
    files = write_journal(entries, tmp_path / "gw.journal")
    ref = both(_json_export_bytes(entries, tmp_path / "gw.jsonl"), unit="zeptoclaw-gateway")
    for output in ("export", "short", "short-precise"):
        path = _journalctl_output(files[0], output, tmp_path)
        s = both(path, unit="zeptoclaw-gateway")
        if output == "export":
            assert _plain(s) | {"notes": []} == _plain(ref) | {"notes": []}
        else:  # no times; short prints a multi-line message's further lines indented: those are not journal lines
            got, want = s.to_dict(), ref.to_dict()
            assert got["start"] is None and got["n_buckets"] == 0
            assert got["levels"]["error"] == want["levels"]["error"] == 2 and got["pids"] == want["pids"]
            assert [r["reason"] for r in got["restarts"]] == ["crash"] and len(got["crashes"]) == 1
            assert got["levels"] | {"none": 0} == want["levels"] | {"none": 0} and got["skills"] == want["skills"]
            assert got["levels"]["none"] == want["levels"]["none"] - 1  # the indented second line of the message


def _journalctl_output(journal: Path, output: str, folder: Path) -> Path:
    """What journalctl itself writes for ``-o output`` from a real journal file (times in UTC), saved to a file."""
    path = folder / f"gw.{output}"
    with open(path, "wb") as fh:
        subprocess.run(["journalctl", f"--file={journal}", "-o", output, "--all", "--no-pager"], stdout=fh,
                       check=True, env={**os.environ, "TZ": "UTC"})
    return path


def _json_export_bytes(entries: list[dict[str, Any]], path: Path) -> Path:
    """As journalctl -o json writes them: text fields as strings, a non-UTF-8 or multi-line MESSAGE as bytes."""
    rows = []
    for e in entries:
        row: dict[str, Any] = {k: str(v) for k, v in e.items() if k != "MESSAGE"}
        m = e["MESSAGE"]
        row["MESSAGE"] = list(m) if isinstance(m, bytes) else m
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("output", ["json-seq", "json-sse", "json-pretty"])
def test_journalctl_json_seq_sse_and_pretty_read_as_json(tmp_path: Path, output: str) -> None:
    """journalctl's other JSON outputs, written by journalctl itself from a real journal file, give the summary of
    its -o json: json-seq (an RS byte before each record) and json-sse ("data: " before each, blank lines between)
    in both engines; json-pretty (an entry over several lines) by the Python engine, which says so. All three used to
    be read as raw lines: 0 errors, no times, no restarts, without a word."""
    from zcnb.logs.journal import write_journal

    entries = _entries([("crash.log", 4100), ("start.log", 4101)])
    entries.append({**entries[-1], "MESSAGE": b"multi skill:git_workflow\nline error: not a level \xff"})
    files = write_journal(entries, tmp_path / "gw.journal")
    got = {}
    for fmt in ("json", output):
        path = _journalctl_output(files[0], fmt, tmp_path)
        if fmt == "json-pretty":
            py = summarize_logs(path, unit="zeptoclaw-gateway", engine="python")
            c = summarize_logs(path, unit="zeptoclaw-gateway")
            assert _plain(c) == _plain(py) and "json-pretty: entries over several lines" in c.notes[-1]
            assert c.notes[-1].startswith("engine: python (the C scanner does not read this format;" if NATIVE
                                          else "engine: python (C scanner not built")
            got[fmt] = py
        else:
            got[fmt] = both(path, unit="zeptoclaw-gateway")
    assert _plain(got[output]) == _plain(got["json"]) and got[output].buckets.equals(got["json"].buckets)
    assert got["json"].levels["error"] == 2 and [r["reason"] for r in got["json"].to_dict()["restarts"]] == ["crash"]


def test_json_pretty_objects_that_cannot_be_read_are_counted(tmp_path: Path) -> None:
    """A stray line, an object over MAX_LINE and a last object cut short are counted as unreadable; the objects
    around them are read (memory stays bounded: the big object's lines are dropped as they come)."""
    def obj(msg: str, us: int) -> str:
        return "{\n" + f'\t"__REALTIME_TIMESTAMP" : "{us}",\n\t"_PID" : "7",\n\t"MESSAGE" : "{msg}"\n' + "}\n"

    path = tmp_path / "gw.json-pretty"
    path.write_text(obj("error: first", T0_US) + "stray text\n" + obj("info: " + "x" * (5 << 20), T0_US + 1)
                    + obj("info: skill:git_workflow", T0_US + 2) + '{"MESSAGE" : "error: one line"}\n'
                    + obj("error: cut", T0_US + 3)[:-3])
    s = summarize_logs(path, engine="python")
    assert s.n_lines == 3 and s.unreadable == 3 and s.levels["error"] == 2 and s.skill_counts == {"git-workflow": 1}


@pytest.mark.parametrize("output", ["short-full", "short-unix", "short-monotonic", "short-delta", "verbose"])
def test_journalctl_formats_read_as_raw_lines_say_so(tmp_path: Path, output: str) -> None:
    """journalctl text outputs whose prefix zcnb does not read (written by journalctl itself from a real journal
    file) are read as raw lines; the summary says what that leaves out instead of reporting 0 errors silently."""
    from zcnb.logs.journal import write_journal

    files = write_journal(_entries([("crash.log", 4100), ("start.log", 4101)]), tmp_path / "gw.journal")
    path = _journalctl_output(files[0], output, tmp_path)
    s = both(path, unit="zeptoclaw-gateway")
    note = next(n for n in s.notes if n.startswith("the lines look like journalctl"))
    assert f"-o {output} output, read as raw lines" in note and "and the unit filter" in note
    assert "unit filter" not in next(n for n in both(path).notes if n.startswith("the lines look like"))


def test_raw_lines_with_a_unit_say_the_filter_does_not_apply(tmp_path: Path) -> None:
    path = tmp_path / "stderr.log"
    path.write_text("info: [agent] invoking skill:calendar\nerror: [nim] upstream 503\n")
    assert "the unit filter does not apply" in both(path, unit="zeptoclaw-gateway").notes[-2]
    assert not any("unit filter" in n for n in both(path).notes)
