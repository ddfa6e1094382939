"""JupyterLab top to bottom: the notebooks on their defaults share one incident folder, so 05 reports them all.

The flow test runs the real notebooks with nbval (as the README's test command does over ``notebooks/``), in
order, in their own kernels, with ``$ZCNB_SESSION_DIR`` naming the session folder so the test can look at it
afterwards; notebook 05 saves which of its sections had data (``report_sections.json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from zcnb.incident import SESSION_ENV, open_incident, session_incident

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_notebooks_in_order_on_defaults_share_one_incident_and_05_has_data(tmp_path: Path) -> None:
    session = tmp_path / "session"
    env = {**os.environ, SESSION_ENV: str(session), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", f"--basetemp={tmp_path / 'bt'}", "notebooks/"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    folders = sorted(session.glob("sample-incident-*"))
    assert [f.name for f in folders] == ["sample-incident-1"], "01 starts one session incident; 02-06 reuse it"
    inc = folders[0]
    for name in ("assessment.json", "after_restart.json", "log_summary.json", "correlation.json", "restore.json",
                 "escalation.json", "summary.json", "report_sections.json"):
        assert (inc / name).is_file(), f"{name}: a notebook on its defaults did not write into the shared folder"
    shown = json.loads((inc / "report_sections.json").read_text())
    assert shown.pop("fleet") == "no data"  # a single gateway: no fleet view, said as such
    assert len(shown) >= 20 and set(shown.values()) == {"data"}, shown
    summary = json.loads((inc / "summary.json").read_text())  # as notebook 05 wrote it (before 06 ran)
    assert summary["escalation_source"] == "report" and summary["escalation"]["action"]
    assert {s["state"] for s in summary["stage_states"].values()} == {"ok", "not run"}  # 06 had not run yet
    assert summary["stage_states"]["06"]["state"] == "not run"


def test_session_incident_is_made_by_01_and_found_by_the_others(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SESSION_ENV, str(tmp_path / "s"))
    first = open_incident("", new_session=True)
    assert first.replay and first.root == tmp_path / "s" / "sample-incident-1" and first.has("samples")
    (first.root / "assessment.json").write_text("{}")
    later = open_incident("")
    assert later.root == first.root and later.has("assessment"), "02-06 must see what 01 wrote"
    again = open_incident("", new_session=True)
    assert again.root.name == "sample-incident-2" and not again.has("assessment")
    assert open_incident("").root == again.root


def test_session_folder_per_starting_process_and_stale_ones_removed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SESSION_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base = tmp_path / f"zcnb-sessions-{os.getuid()}"
    stale = base / "999999999-1"  # no such process
    stale.mkdir(parents=True)
    inc = session_incident(fresh=True)
    assert inc.root.parent.parent == base and inc.root.parent.name.startswith(f"{os.getppid()}-")
    assert not stale.exists(), "a session whose starting process is gone is removed"
    assert session_incident().root == inc.root


def test_outside_a_kernel_every_default_open_is_its_own_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SESSION_ENV, raising=False)
    a, b = open_incident(""), open_incident("")
    assert a.root != b.root and a.replay and b.replay


def test_log_explorer_fills_its_output_without_capturing_cell_output() -> None:
    """The explorer sets the Output widget's state (no `with out:` capture, which stalls nbclient's cell)."""
    from datetime import UTC, datetime

    from zcnb.logs.entries import LogEntry
    from zcnb.viz.logs import entries_frame, log_explorer

    t = datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    entries = [LogEntry(t, 1, "gw.service", "info", None, "agent", 'info: [agent] tool skill args={"name":"git_workflow"}'),
               LogEntry(t, 1, "gw.service", "error", None, "nim", "error: [nim] provider timeout")]
    box = log_explorer(entries_frame(entries))
    out = box.children[-1]
    assert out.msg_id == "" and out.outputs[0]["text"] == "2 of 2 lines\n"
    level = box.children[0].children[1]
    level.value = "error"
    assert out.outputs[0]["text"] == "1 of 2 lines\n" and "provider timeout" in out.outputs[1]["data"]["text/html"]
