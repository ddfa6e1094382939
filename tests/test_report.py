"""Report orchestration with real papermill kernels: failed stages, parameters, index, HTML export."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from zcnb.exceptions import ConfigError
from zcnb.report import STAGES, run_incident, write_index

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _stage_nb(path: Path, body: str) -> None:
    nb = new_notebook()
    params = new_code_cell('incident_dir: str = ""  # folder')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [new_code_cell("from pathlib import Path"), params, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "nbs"
    d.mkdir()
    shutil.copy(ROOT / "notebooks" / "05_incident_report.ipynb", d)
    shutil.copy(ROOT / "zcnb" / "data" / "sample_incident" / "samples.csv", tmp_path / "samples.csv")
    _stage_nb(d / STAGES["01"], f"import shutil\nshutil.copy({str(tmp_path / 'samples.csv')!r}, Path(incident_dir) / 'samples.csv')")
    _stage_nb(d / STAGES["02"], "raise RuntimeError('the gateway did not come back')")
    _stage_nb(d / STAGES["03"], "print('diagnosed')")
    monkeypatch.setenv("ZCNB_NOTEBOOKS", str(d))
    return d


def test_failed_stage_keeps_its_notebook_later_stages_run_and_report_says_why(notebooks: Path, tmp_path: Path) -> None:
    run = run_incident(incidents_dir=tmp_path / "inc", stages=["01", "02", "03"], progress=False, commit="abc1234")
    assert not run.ok
    assert [s.status for s in run.stages] == ["ok", "failed", "ok"]
    failed = run.stages[1]
    assert "RuntimeError: the gateway did not come back" in (failed.error or "")
    executed = nbformat.read(failed.output, as_version=4)
    assert any(o.get("ename") == "RuntimeError" for c in executed.cells for o in c.get("outputs", []))
    assert run.report is not None and run.report.status == "ok" and run.report_html is not None
    html = run.report_html.read_text()
    assert "02_mitigate.ipynb failed" in html and "the gateway did not come back" in html
    assert "abc1234" in html
    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["failed_stages"] == ["02_mitigate.ipynb"] and summary["ok"] is False
    assert summary["assessment"]["verdict"] in ("leak", "no_leak", "inconclusive")
    assert stat.S_IMODE(run.folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in run.folder.rglob("*") if p.is_file())
    index = (tmp_path / "inc" / "index.html").read_text()
    assert run.folder.name in index and "failed" in index


def test_cli_exits_non_zero_and_names_the_failed_stage(notebooks: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "zcnb", "report", "--incidents-dir", str(tmp_path / "inc"),
                           "--stages", "02", "--no-progress"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and "02_mitigate.ipynb" in proc.stdout and "report:" in proc.stdout


@pytest.mark.parametrize("params", [{"token": "abc"}, {"auth_header": "x"}, {"api_key": "k"}])
def test_secret_looking_parameters_are_refused(params: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NAME of the environment variable"):
        run_incident(incidents_dir=tmp_path, stages=["01"], parameters=params, progress=False)


def test_token_value_in_any_parameter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", "s3cr3t-token-value")
    with pytest.raises(ConfigError, match="holds the gateway token"):
        run_incident(incidents_dir=tmp_path, stages=["01"], parameters={"url": "http://x/?t=s3cr3t-token-value"},
                     progress=False)


def test_unknown_stage_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown stage"):
        run_incident(incidents_dir=tmp_path, stages=["07"], progress=False)


def test_index_lists_incidents_newest_first_with_verdict_and_growth(tmp_path: Path) -> None:
    for name, verdict, growth in (("2026-11-01T000000Z-a", "no_leak", 0.0), ("2026-11-02T000000Z-b", "leak", 2**21)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(
            {"ok": True, "started_at": name, "assessment": {"verdict": verdict, "growth_bytes_per_hour": growth}}))
    (tmp_path / "not-an-incident").mkdir()
    html = write_index(tmp_path).read_text()
    assert html.index("2026-11-02T000000Z-b") < html.index("2026-11-01T000000Z-a")
    assert "2.00 MiB/h" in html and "not-an-incident" not in html


def test_cli_report_with_nothing_to_report_on_says_so_before_running_anything(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "zcnb", "report", "--incidents-dir", str(tmp_path / "inc")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "nothing to report on" in proc.stderr and "-p live=true" in proc.stderr
    assert not (tmp_path / "inc").exists(), "no incident folder may be created for a refused run"


def test_cli_parameters_for_every_stage_or_one_stage() -> None:
    from zcnb.commands.report import _parse_params

    common, per_stage = _parse_params(["live=true", "01.interval_s=30", "02.interval_s=1", "03.since=2h",
                                       "unit=zeptoclaw-gateway.service"])
    assert common == {"live": True, "unit": "zeptoclaw-gateway.service"}
    assert per_stage == {"01": {"interval_s": 30}, "02": {"interval_s": 1}, "03": {"since": "2h"}}
    for bad, msg in [("live", "bad parameter"), ("07.live=true", "no stage '07'"), (".x=1", "bad parameter"),
                     ("01.2x=1", "bad parameter")]:
        with pytest.raises(ConfigError, match=msg):
            _parse_params([bad])


def test_cli_stage_parameter_reaches_only_its_stage(notebooks: Path, tmp_path: Path) -> None:
    """03 prints its parameters; only the 03-scoped value may arrive there, the common one everywhere."""
    _stage_nb(notebooks / STAGES["03"], "print('since=' + repr(globals().get('since')))")
    _stage_nb(notebooks / STAGES["01"], "print('since=' + repr(globals().get('since')))")
    proc = subprocess.run([sys.executable, "-m", "zcnb", "report", "--incidents-dir", str(tmp_path / "inc"),
                           "--stages", "01,03", "--no-progress", "-p", "03.since=2h", "-p", "live=false"],
                          capture_output=True, text=True, timeout=300, check=False)
    folder = next(p for p in (tmp_path / "inc").iterdir() if p.is_dir())
    out01 = json.dumps(nbformat.read(folder / STAGES["01"], as_version=4).cells[-1].outputs)
    out03 = json.dumps(nbformat.read(folder / STAGES["03"], as_version=4).cells[-1].outputs)
    assert "since=None" in out01 and "since='2h'" in out03, proc.stdout + proc.stderr


def test_unreadable_action_lines_are_named_in_the_report(tmp_path: Path) -> None:
    from zcnb.incident import open_incident
    from zcnb.report.summary import build_incident_summary
    from zcnb.stages.report import IncidentReport

    inc = open_incident(tmp_path / "inc")
    inc.path("actions").write_text('{"action": "restart", "broken\n')
    summary = build_incident_summary(inc)
    assert summary["actions_note"].startswith("1 unreadable line skipped") and "line 1" in summary["actions_note"]
    inc.write_json("summary", summary)
    assert "Warning:</b> 1 unreadable line skipped" in IncidentReport.load(inc.root).actions()._repr_html_()
