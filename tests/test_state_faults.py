"""Fault tests: SIGKILL a real restore subprocess at every step, and fill a real (tmpfs) disk.

After each kill, either the old or the new state is complete at the state path and the other is intact
in staging/quarantine; then resume or undo finishes the job. Trees are compared by content hash.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from state_helpers import apply, tmpfs

from zcnb.exceptions import StateError
from zcnb.state import copy_sample_data, hash_tree, restore_state, resume_restore, undo_restore
from zcnb.state.crashlog import read_crash_log

BACKUP = "20261127-221500"
KILL_STEPS = ["stop_gateway", "stage", "stage.partial", "verify_staging", "swap", "quarantine", "chmod", "verify", "done"]


@pytest.fixture(autouse=True)
def _no_gateway_pattern(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Restores without a service manager refuse while a process matches ``process_pattern``: give these tests
    a pattern nothing matches, so simulated gateways of other tests (or leftovers) cannot interfere. The
    environment variable also reaches the child processes some tests start."""
    import uuid

    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", f"zcnb-test-no-gateway-{uuid.uuid4().hex}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # verification records


_CHILD = r"""
import sys, time, pathlib
from zcnb.state import restore_state
data, target, marker = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
def hook(step):
    if step == target:
        marker.write_text(step)
        time.sleep(600)
kw = dict(state_dir=data / "state", backups_dir=data / "backups")
plan = restore_state(sys.argv[4], **kw)
restore_state(sys.argv[4], execute=True, confirm=plan.plan_id, on_step=hook, **kw)
"""


def _kill_at(data: Path, step: str, tmp_path: Path) -> None:
    marker = tmp_path / f"reached-{step}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(data), step, str(marker), BACKUP], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, f"step {step} never reached"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _journal(data: Path) -> dict[str, Any]:
    """The restore journal of ``data``/state, which these tests expect to exist."""
    j = read_crash_log(data / "state")
    assert j is not None, "no restore journal"
    return j


def _trees(data: Path) -> list[dict[str, str]]:
    """Every copy of a state folder that exists right now: live, staging, quarantine."""
    out = [hash_tree(data / "state")] if (data / "state").exists() else []
    out += [hash_tree(p) for p in data.glob(".zcnb-staging-*")]
    out += [hash_tree(p / "state") for p in (data / "backups").glob("corrupt-*") if (p / "state").exists()]
    return out


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return copy_sample_data(tmp_path / "zeptoclaw")


@pytest.mark.slow
@pytest.mark.parametrize("then", ["resume", "undo"])
def test_sigkill_at_every_step(tmp_path: Path, then: str) -> None:
    for step in KILL_STEPS:
        data = copy_sample_data(tmp_path / f"{then}-{step}" / "zeptoclaw")
        old, new = hash_tree(data / "state"), hash_tree(data / "backups" / BACKUP / "state")
        _kill_at(data, step, tmp_path)
        live = hash_tree(data / "state")
        assert live in (old, new), f"killed at {step}: the live state is neither old nor new"
        copies = _trees(data)
        assert old in copies, f"killed at {step}: the old state is lost"
        with pytest.raises(StateError, match="unfinished restore"):
            restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups")
        if then == "resume":
            res = apply(resume_restore, state_dir=data / "state")
            assert res.outcome == "ok", (step, res.message)
            assert hash_tree(data / "state") == new
            assert hash_tree(Path(_journal(data)["quarantine"]) / "state") == old
        else:
            res = apply(undo_restore, state_dir=data / "state")
            assert res.outcome == "ok", (step, res.message)
            assert hash_tree(data / "state") == old
        assert not list(data.glob(".zcnb-staging-*")), step
        assert _journal(data)["status"] in ("done", "undone")


@pytest.mark.slow
def test_sigkill_during_undo_then_undo_again(tmp_path: Path, data: Path) -> None:
    old = hash_tree(data / "state")
    plan = restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups")
    restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups", execute=True, confirm=plan.plan_id)
    for step in ("undo.swap", "undo.keep_replaced", "undo.verify"):
        child = r"""
import sys, time, pathlib
from zcnb.state import undo_restore
state, target, marker = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
def hook(step):
    if step == target:
        marker.write_text(step); time.sleep(600)
p = undo_restore(state_dir=state)
undo_restore(state_dir=state, execute=True, confirm=p.plan_id, on_step=hook)
"""
        marker = tmp_path / f"undo-{step}"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        proc = subprocess.Popen([sys.executable, "-c", child, str(data / "state"), step, str(marker)], env=env)
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        assert marker.exists(), step
        assert hash_tree(data / "state") in (old, hash_tree(data / "backups" / BACKUP / "state"))
        if step != "undo.verify":
            continue
    p = undo_restore(state_dir=data / "state")
    res = undo_restore(state_dir=data / "state", execute=True, confirm=p.plan_id)
    assert res.outcome == "ok" and hash_tree(data / "state") == old
    assert hash_tree(Path(res.details["replaced_kept_in"])) == hash_tree(data / "backups" / BACKUP / "state")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (we are root); skipped where mount is not permitted."""
    yield from tmpfs(tmp_path / "fs")


def test_disk_full_mid_copy_on_real_tmpfs(small_fs: Path) -> None:
    """The disk fills while staging (ballast written on the first copied file): clear error, state intact."""
    data = copy_sample_data(small_fs / "zeptoclaw")
    before = hash_tree(data)

    def copy_then_fill(src: Path, dst: Path) -> None:
        from zcnb.state.tree import copy_file_durable

        if not (small_fs / "ballast").exists():
            with open(small_fs / "ballast", "wb") as fh:  # fill the filesystem for real
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        copy_file_durable(src, dst)

    plan = restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups")
    with pytest.raises(StateError, match="No space left") as info:
        restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups", execute=True,
                      confirm=plan.plan_id, copy_file=copy_then_fill)
    assert "unchanged" in str(info.value)
    (small_fs / "ballast").unlink()
    after = hash_tree(data)
    after.pop(".zcnb-restore-state.json", None)
    assert after == before  # staging removed, nothing else touched
    # The journal could not be updated on the full disk, so it still says "in progress": resume finishes.
    rp = resume_restore(state_dir=data / "state")
    res = resume_restore(state_dir=data / "state", execute=True, confirm=rp.plan_id)
    assert res.outcome == "ok" and hash_tree(data / "state") == hash_tree(data / "backups" / BACKUP / "state")


def test_not_enough_space_is_refused_before_copying(small_fs: Path) -> None:
    data = copy_sample_data(small_fs / "zeptoclaw")
    import shutil

    with open(small_fs / "ballast", "wb") as fh:  # leave less than the 64 KiB margin + the backup's size
        while shutil.disk_usage(small_fs).free > 40 * 1024:
            fh.write(b"\0" * 8192)
            fh.flush()
    before = hash_tree(data)
    plan = restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups")
    with pytest.raises(StateError, match="not enough free space"):
        restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups", execute=True, confirm=plan.plan_id)
    assert hash_tree(data) == before
