"""OOM kills (a key sign in the runbook) from real journal files written by systemd-journal-remote."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zcnb.logs import LogEntry
from zcnb.logs.journal import JOURNAL_REMOTE, write_journal
from zcnb.logs.oom import find_oom_events, read_oom_events

UNIT = "zeptoclaw-gateway.service"
T0 = 1_795_900_000_000_000  # microseconds
pytestmark = pytest.mark.skipif(not (os.path.exists(JOURNAL_REMOTE) and shutil.which("journalctl")),
                                reason="systemd-journal-remote / journalctl not installed")


def _e(t_s: float, msg: str, **fields: str | int) -> dict[str, str | bytes | int]:
    return {"__REALTIME_TIMESTAMP": T0 + int(t_s * 1_000_000), "MESSAGE": msg, **fields}


def _manager(t_s: float, msg: str, unit: str = UNIT) -> dict[str, str | bytes | int]:
    return _e(t_s, msg, USER_UNIT=unit, _SYSTEMD_USER_UNIT="init.scope", SYSLOG_IDENTIFIER="systemd", _PID=900)


def _kernel(t_s: float, msg: str) -> dict[str, str | bytes | int]:
    return _e(t_s, msg, _TRANSPORT="kernel", SYSLOG_IDENTIFIER="kernel", PRIORITY=3)


ENTRIES = [
    _e(0, "info: gateway up", _SYSTEMD_USER_UNIT=UNIT, SYSLOG_IDENTIFIER="zeptoclaw-gateway", _PID=4242),
    _kernel(100, "Out of memory: Killed process 4242 (zeptoclaw-gatew) total-vm:2097152kB, anon-rss:1048576kB"),
    _manager(100.4, f"{UNIT}: A process of this unit has been killed by the OOM killer."),
    _manager(101, f"{UNIT}: Failed with result 'oom-kill'."),
    _kernel(200, "Out of memory: Killed process 999 (postgres) total-vm:100kB"),  # another process
    _manager(300, "whatsapp-responder.service: Failed with result 'oom-kill'.", unit="whatsapp-responder.service"),
    _kernel(3700, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),task=zeptoclaw-gatew,pid=5555,uid=1000"),
    _e(7300, f"Killed /user.slice/user-1000.slice/user@1000.service/app.slice/{UNIT} due to memory pressure for "
             "/user.slice being 92.1% > 50.0% for > 20s with reclaim activity", SYSLOG_IDENTIFIER="systemd-oomd",
       _SYSTEMD_UNIT="systemd-oomd.service", _PID=300),
    _manager(7400, f"{UNIT}: Started ZeptoClaw gateway."),
]


def test_oom_kills_from_manager_kernel_and_oomd_lines(tmp_path: Path) -> None:
    files = write_journal(ENTRIES, tmp_path / "sys.journal")
    own = [LogEntry(datetime.fromtimestamp(T0 / 1e6 + 50, UTC), 4242, UNIT, "err", None, None,
                    "error: allocation failed: error.OutOfMemory in handler")]
    scan = read_oom_events(UNIT, files=files, own_entries=own)
    kinds = [(e.source, e.kind, e.pid) for e in scan.events]
    assert kinds == [("gateway", "allocation-failure", 4242), ("kernel", "kill", 4242), ("systemd", "kill", None),
                     ("systemd", "kill", None), ("kernel", "kill", 5555), ("systemd-oomd", "kill", None)], kinds
    assert len(scan.kills) == 3, "the kernel and manager lines of one kill count once"
    assert not scan.notes, "kernel lines were readable"
    md = scan._repr_markdown_()
    assert "OOM kills: 3" in md and "postgres" not in md and "whatsapp" not in md
    assert scan.to_dict()["kills"] == 3


def test_no_oom_and_no_kernel_lines_says_what_was_not_searchable(tmp_path: Path) -> None:
    files = write_journal([ENTRIES[0], ENTRIES[-1]], tmp_path / "quiet.journal")
    scan = read_oom_events(UNIT, files=files)
    assert scan.events == () and scan.kills == ()
    assert "No OOM kill found" in scan._repr_markdown_()
    assert scan.notes and "no kernel line was readable" in scan.notes[0]


def test_kernel_name_truncation_rules() -> None:
    def kernel(msg: str) -> LogEntry:
        return LogEntry(None, None, None, "err", None, None, msg, identifier="kernel")

    found = find_oom_events([kernel("Out of memory: Killed process 1 (zeptoclaw-gatew) x"),
                             kernel("Out of memory: Killed process 2 (zeptoclaw-g) x"),  # short name: exact only
                             kernel("Memory cgroup out of memory: Killed process 3 (zeptoclaw-gatew) x")])
    assert [e.pid for e in found] == [1, 3]


def test_stage03_live_scan_is_saved_and_shown_in_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """diagnose.oom (live path) -> oom.json -> report section.

    The live path reads the system journal, which does not exist here (no journald may run on these
    machines): journalctl is pointed at the journal files written above instead; the rest is real.
    """
    from zcnb.incident import open_incident
    from zcnb.logs import oom
    from zcnb.report.summary import build_incident_summary
    from zcnb.stages import diagnose
    from zcnb.stages.report import IncidentReport

    files = write_journal(ENTRIES, tmp_path / "sys.journal")
    real = oom.read_oom_events
    monkeypatch.setattr(oom, "read_oom_events", lambda unit, **kw: real(unit, files=files,
                                                                         own_entries=kw.get("own_entries", ())))
    inc = open_incident(tmp_path / "inc")
    scan = diagnose.oom(inc, [], unit=UNIT, live=True)
    assert len(scan.kills) == 3 and inc.has("oom")
    summary = build_incident_summary(inc)
    assert summary["oom"]["kills"] == 3
    inc.write_json("summary", summary)
    html = IncidentReport.load(inc.root).oom()._repr_html_()
    assert "OOM kills: 3" in html and "zeptoclaw-gatew" in html and "postgres" not in html
    kills = [e for e in summary["timeline"] if e["kind"] == "oom-kill"]
    assert len(kills) == 3 and kills[0]["what"] == "OOM kill (kernel, pid 4242)"
    # replay: the saved scan is shown as saved
    again = diagnose.oom(inc, [], unit=UNIT, live=False)
    assert len(again.kills) == 3
