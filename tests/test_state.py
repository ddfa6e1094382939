"""Stage 04 core: list, verify, make, restore, undo on real file trees (and a real supervised process)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from state_helpers import apply

from zcnb.actions import append_action, read_actions
from zcnb.cli import main
from zcnb.exceptions import PlanError, StateError
from zcnb.stages.restore import quarantined, verify_all
from zcnb.state import (
    check_state,
    copy_sample_data,
    hash_tree,
    list_backups,
    make_backup,
    resolve_backup,
    restore_state,
    undo_restore,
    verify_backup,
)

if TYPE_CHECKING:
    from zcnb.service import ProcessSupervisorBackend



@pytest.fixture(autouse=True)
def _no_gateway_pattern(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Restores without a service manager refuse while a process matches ``process_pattern``: give these tests
    a pattern nothing matches, so simulated gateways of other tests (or leftovers) cannot interfere. The
    environment variable also reaches the child processes some tests start."""
    import uuid

    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", f"zcnb-test-no-gateway-{uuid.uuid4().hex}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # verification records

@pytest.fixture
def data(tmp_path: Path) -> Path:
    return copy_sample_data(tmp_path / "zeptoclaw")


def test_list_backups_newest_first_both_layouts(data: Path) -> None:
    backups = list_backups(data / "backups")
    assert [b.name for b in backups] == ["20261128-031000", "20261127-221500", "20261126-093000",
                                         "zeptoclaw-home-20261125-180000"]
    assert [b.layout for b in backups] == ["runbook"] * 3 + ["zeptoclaw-home"]
    assert backups[0].commit == "a1c9e4f0d2" and backups[0].file_count == 9
    assert [b.has_manifest for b in backups] == [False, True, False, False]
    assert all(b.created_from == "name" for b in backups)
    frame = backups.to_frame()
    assert list(frame["name"]) == [b.name for b in backups] and "<table" in backups._repr_html_()


def test_latest_skips_quarantine_and_mtime_fallback(data: Path) -> None:
    q = data / "backups" / "corrupt-20301231-235959"
    shutil.copytree(data / "backups" / "20261128-031000", q)
    plain = data / "backups" / "my-copy"
    shutil.copytree(data / "backups" / "20261127-221500", plain)
    os.utime(plain, (2_000_000_000, 2_000_000_000))  # 2033: newer than every named backup
    backups = list_backups(data / "backups")
    assert backups[0].name == "my-copy" and backups[0].created_from == "mtime"
    assert backups[1].name == q.name and backups[1].quarantine
    assert backups.latest().name == "my-copy"
    shutil.rmtree(plain)
    assert resolve_backup("latest", backups_dir=data / "backups").name == "20261128-031000"
    assert [b.name for b in quarantined(data / "backups")] == [q.name]


def test_verify_detects_truncation_and_manifest_mismatch(data: Path) -> None:
    table = verify_all(list_backups(data / "backups"))
    assert [r.ok for r in table] == [True, True, False, True]
    assert "s-0002.json is not valid JSON" in table[2].problems[0]
    good = verify_backup(data / "backups" / "20261127-221500")
    assert good.manifest == "MANIFEST.sha256" and good.manifest_checked == 9
    target = data / "backups" / "20261127-221500" / "state" / "skills" / "web-search.json"
    target.write_text('{"name": "web-search", "enabled": false}')  # still valid JSON: only the manifest can tell
    bad = verify_backup(data / "backups" / "20261127-221500")
    assert not bad.ok and any("does not match its checksum" in p for p in bad.problems)
    assert not check_state(data / "state").ok  # the sample live state is the corrupt one


def test_restore_dry_run_changes_nothing_then_execute(data: Path) -> None:
    before = hash_tree(data)
    dry = restore_state(state_dir=data / "state", backups_dir=data / "backups")
    again = restore_state(state_dir=data / "state", backups_dir=data / "backups")
    assert dry.plan_id == again.plan_id and dry.dry_run and hash_tree(data) == before
    with pytest.raises(PlanError):
        restore_state(state_dir=data / "state", backups_dir=data / "backups", execute=True, confirm="nope")
    assert hash_tree(data) == before
    old = hash_tree(data / "state")
    res = restore_state(state_dir=data / "state", backups_dir=data / "backups", execute=True, confirm=dry.plan_id)
    assert res.outcome == "ok" and not res.dry_run, res.message
    assert hash_tree(data / "state") == hash_tree(data / "backups" / "20261128-031000" / "state")
    q = Path(res.details["quarantine"])
    assert q.name.startswith("corrupt-") and hash_tree(q / "state") == old
    assert stat.S_IMODE(os.stat(data / "state").st_mode) == 0o700
    assert not list(data.glob(".zcnb-staging-*"))
    assert check_state(data / "state").ok
    log = data / "actions.jsonl"
    append_action(log, res)
    assert read_actions(log)[0].plan_id == res.plan_id


def test_undo_puts_old_state_back_and_keeps_replaced(data: Path) -> None:
    old = hash_tree(data / "state")
    apply(restore_state, "20261127-221500", state_dir=data / "state", backups_dir=data / "backups")
    res = apply(undo_restore, state_dir=data / "state")
    assert res.outcome == "ok", res.message
    assert hash_tree(data / "state") == old
    kept = Path(res.details["replaced_kept_in"])
    assert hash_tree(kept) == hash_tree(data / "backups" / "20261127-221500" / "state")
    with pytest.raises(StateError, match="already undone"):
        undo_restore(state_dir=data / "state")


def test_make_backup_manifest_checks_with_sha256sum(data: Path) -> None:
    binary = data / "backups" / "20261128-031000" / "zeptoclaw-gateway"
    res = apply(make_backup, data / "state", backups_dir=data / "backups", binaries=[binary], commit="deadbeef")
    new = Path(res.details["backup"])
    assert new.parent == data / "backups" and (new / "commit.txt").read_text() == "deadbeef\n"
    assert os.access(new / "zeptoclaw-gateway", os.X_OK)
    # The real sha256sum tool accepts the manifest.
    out = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=new, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.count(": OK") == 10, out.stdout + out.stderr
    vr = verify_backup(new)
    assert vr.manifest_checked == 10 and hash_tree(new / "state") == hash_tree(data / "state")
    assert not list((data / "backups").glob(".zcnb-partial-*"))


def test_restore_zeptoclaw_home_layout(tmp_path: Path, data: Path) -> None:
    home = tmp_path / "home" / ".zeptoclaw"
    home.mkdir(parents=True)
    (home / "config.json").write_text('{"gateway": {"port": 1}}')
    res = apply(restore_state, "zeptoclaw-home-20261125-180000", state_dir=home, backups_dir=data / "backups")
    assert res.outcome == "ok"
    assert hash_tree(home) == hash_tree(data / "backups" / "zeptoclaw-home-20261125-180000")
    assert (Path(res.details["quarantine"]) / "state" / "config.json").read_text() == '{"gateway": {"port": 1}}'


def _supervisor(tmp_path: Path) -> ProcessSupervisorBackend:
    from zcnb.service import ProcessSupervisorBackend, SupervisedService

    svc = SupervisedService(name="zeptoclaw-gateway.service",
                            argv=(sys.executable, "-c", "import time; time.sleep(120)"),
                            pid_file=tmp_path / "gw.pid", log_file=tmp_path / "gw.log")
    return ProcessSupervisorBackend([svc], run_dir=tmp_path)


@pytest.mark.slow
def test_refuses_running_gateway_then_stops_and_starts_it(tmp_path: Path, data: Path) -> None:
    """Real process under the service engineer's process supervisor (no systemd here)."""
    mgr = _supervisor(tmp_path)
    unit = "zeptoclaw-gateway.service"
    mgr.start(unit, timeout_s=20)
    try:
        before = hash_tree(data)
        dry = restore_state(state_dir=data / "state", backups_dir=data / "backups", service=mgr)
        assert dry.details["gateway_active"] is True and "will refuse" in dry.message
        with pytest.raises(StateError, match="is running"):
            restore_state(state_dir=data / "state", backups_dir=data / "backups", service=mgr,
                          execute=True, confirm=dry.plan_id)
        assert hash_tree(data) == before
        pid = mgr.status(unit).pid
        res = apply(restore_state, state_dir=data / "state", backups_dir=data / "backups", service=mgr,
                     stop_gateway=True)
        assert res.outcome == "ok" and res.details["gateway_stopped"] and res.details["gateway_started"]
        st = mgr.status(unit)
        assert st.active and st.pid != pid
    finally:
        mgr.stop(unit, timeout_s=20)


def test_cli_backup_and_restore(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = ["--backups-dir", str(data / "backups")]
    assert main(["backup", "list", *b]) == 0 and "20261127-221500" in capsys.readouterr().out
    assert main(["backup", "verify", "20261126-093000", *b]) == 1
    assert "not valid JSON" in capsys.readouterr().out
    args = ["restore", "--backup", "latest", "--state-dir", str(data / "state"), "--backend", "none", *b]
    before = hash_tree(data)
    assert main(args) == 0
    out = capsys.readouterr().out
    plan_id = out.split("plan id: ")[1].split()[0]
    assert hash_tree(data) == before
    assert main([*args, "--execute", "--confirm", plan_id]) == 0
    assert "restored" in capsys.readouterr().out
    assert hash_tree(data / "state") == hash_tree(data / "backups" / "20261128-031000" / "state")
    assert main(["restore", "undo", "--state-dir", str(data / "state"), "--backend", "none"]) == 0
    undo_id = capsys.readouterr().out.split("plan id: ")[1].split()[0]
    assert main(["restore", "undo", "--state-dir", str(data / "state"), "--backend", "none", "--execute",
                 "--confirm", undo_id]) == 0
    assert hash_tree(data / "state") == _sub(before, "state")


def _sub(hashes: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix) + 1:]: v for k, v in hashes.items() if k.startswith(prefix + "/")}


@pytest.mark.slow
def test_notebook_dry_run_then_execute(tmp_path: Path, data: Path) -> None:
    """The stage notebook through papermill: the default is a dry run; execute+confirm applies and records."""
    import papermill as pm

    nb = Path(__file__).resolve().parents[1] / "notebooks" / "04_restore_state.ipynb"
    inc = tmp_path / "incident"
    params = {"incident_dir": str(inc), "data_dir": str(data)}
    before = hash_tree(data)
    pm.execute_notebook(str(nb), str(tmp_path / "dry.ipynb"), parameters=params, progress_bar=False, cwd=str(nb.parent))
    assert hash_tree(data) == before
    plan_id = read_actions(inc / "actions.jsonl")[0].plan_id
    pm.execute_notebook(str(nb), str(tmp_path / "run.ipynb"), parameters={**params, "execute": True, "confirm": plan_id},
                        progress_bar=False, cwd=str(nb.parent))
    actions = read_actions(inc / "actions.jsonl")
    assert [a.outcome for a in actions] == ["planned", "ok"]
    assert hash_tree(data / "state") == hash_tree(data / "backups" / "20261128-031000" / "state")
    import json

    summary = json.loads((inc / "restore.json").read_text())
    assert summary["quarantined_files"] == 8 and summary["state_after"]["ok"] is True
