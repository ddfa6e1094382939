"""The state dir's lock, the disposal rule for staging copies, and hostile names and options around a restore.

Real files, real processes (a restore SIGKILLed half-way), real locks; nothing mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from state_helpers import apply

from zcnb.cli import main
from zcnb.exceptions import StateError, UnsafePath
from zcnb.locks import acquire_lock
from zcnb.state import copy_sample_data, hash_tree, make_backup, restore_state, resume_restore, undo_restore
from zcnb.state.crashlog import lock_path, lock_state
from zcnb.state.staging import discard_copy

BACKUP = "20261127-221500"


@pytest.fixture(autouse=True)
def _no_gateway_pattern(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", f"zcnb-test-no-gateway-{uuid.uuid4().hex}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # verification records


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return copy_sample_data(tmp_path / "zeptoclaw")


def _kw(data: Path) -> dict[str, Path]:
    return {"state_dir": data / "state", "backups_dir": data / "backups"}


def test_a_held_lock_refuses_restore_undo_resume_and_their_dry_runs(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = hash_tree(data)
    plan = restore_state(BACKUP, **_kw(data))
    backup_plan = make_backup(data / "state", backups_dir=data / "backups")
    with lock_state(data / "state", action="restore"):
        mine = f"another restore (pid {os.getpid()}, started "
        for call in (lambda: restore_state(BACKUP, **_kw(data)),
                     lambda: restore_state(BACKUP, **_kw(data), execute=True, confirm=plan.plan_id),
                     lambda: undo_restore(state_dir=data / "state"),
                     lambda: undo_restore(state_dir=data / "state", execute=True, confirm="x"),
                     lambda: resume_restore(state_dir=data / "state", execute=True, confirm="x"),
                     lambda: make_backup(data / "state", backups_dir=data / "backups", execute=True, confirm=backup_plan.plan_id)):
            with pytest.raises(StateError) as info:
                call()
            assert mine in str(info.value) and "holds the lock" in str(info.value), str(info.value)
        rc = main(["restore", "--backup", BACKUP, "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"),
                   "--backend", "none", "--execute", "--confirm", plan.plan_id])
        assert rc == 2 and mine in capsys.readouterr().err
    after = hash_tree(data)
    assert after == before  # nothing changed, and the released lock file is gone
    assert apply(restore_state, BACKUP, **_kw(data)).outcome == "ok"


_KILLED = r"""
import pathlib, sys, time
from zcnb.state import restore_state
data, marker = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def hook(step):
    if step == "stage.partial":
        marker.write_text(step)
        time.sleep(600)
kw = dict(state_dir=data / "state", backups_dir=data / "backups")
plan = restore_state(sys.argv[3], **kw)
restore_state(sys.argv[3], execute=True, confirm=plan.plan_id, on_step=hook, **kw)
"""


def test_a_killed_restore_leaves_a_stale_lock_that_is_named_and_taken_over(data: Path, tmp_path: Path) -> None:
    marker = tmp_path / "reached"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(data), str(marker), BACKUP], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        holder = json.loads(lock_path(data / "state").read_text())
        assert holder["pid"] == proc.pid and holder["action"] == "restore"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(StateError) as info:  # the journal says unfinished; the message says the holder died
        restore_state(BACKUP, **_kw(data), execute=True, confirm="any")
    text = str(info.value)
    assert "unfinished restore" in text and f"stale lock of restore (pid {proc.pid}" in text and "no longer running" in text
    res = apply(resume_restore, state_dir=data / "state")
    assert res.outcome == "ok" and hash_tree(data / "state") == hash_tree(data / "backups" / BACKUP / "state")


def test_stale_lock_file_of_a_dead_pid_is_reported(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    p = tmp_path / ".zcnb-lock-state"
    p.write_text(json.dumps({"pid": dead.pid, "action": "restore", "started": "2026-12-04T10:00:00+00:00",
                             "proc_start": 1.0}))
    with acquire_lock(p, action="restore", target="state", error=StateError) as held:
        assert held.stale is not None and held.stale.pid == dead.pid
        assert held.stale_note() == (f"a stale lock of restore (pid {dead.pid}, started 2026-12-04T10:00:00+00:00), "
                                     "no longer running, was taken over")
    assert not p.exists()


def test_quarantine_inside_the_state_or_the_backup_is_refused(data: Path) -> None:
    before = hash_tree(data)
    for q in (data / "state" / "q", data / "state", data / "backups" / BACKUP / "state" / "q"):
        with pytest.raises(UnsafePath, match="quarantine folder .* is inside"):
            restore_state(BACKUP, **_kw(data), quarantine_dir=q)
    with pytest.raises(UnsafePath, match="inside the state dir"):
        undo_restore(state_dir=data / "state", quarantine_dir=data / "state" / "sessions")
    assert hash_tree(data) == before


def test_options_before_restore_undo_and_resume_are_honoured(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    apply(restore_state, BACKUP, **_kw(data))
    rc = main(["restore", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"), "--backend", "none",
               "undo"])
    out = capsys.readouterr().out
    assert rc == 0 and f"undo-restore {data / 'state'} (DRY RUN)" in out  # not the default state dir
    rc = main(["restore", "--backup", BACKUP, "--state-dir", str(data / "state"), "resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "--backup does not apply to `zcnb restore resume`" in err


def test_names_that_are_not_utf8_restore_undo_and_back_up(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content = os.fsencode(data / "backups" / BACKUP / "state")
    with open(content + b"/sessions/caf\xe9-\xff.json", "wb") as fh:
        fh.write(b'{"ok": 1}')
    with open(os.fsencode(data / "state") + b"/\xfe-old.txt", "wb") as fh:
        fh.write(b"old")
    old = hash_tree(data / "state")
    res = apply(restore_state, BACKUP, **_kw(data))
    assert res.outcome == "ok" and hash_tree(data / "state") == hash_tree(data / "backups" / BACKUP / "state")
    assert apply(undo_restore, state_dir=data / "state").outcome == "ok" and hash_tree(data / "state") == old
    made = apply(make_backup, data / "state", backups_dir=data / "backups")
    assert made.outcome == "ok" and not list((data / "backups").glob(".zcnb-partial-*"))
    check = subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=made.details["backup"], check=False)
    assert check.returncode == 0
    with open(content + b"/sessions/caf\xe9-\xff.json", "wb") as fh:
        fh.write(b"{broken")
    assert main(["backup", "verify", BACKUP, "--backups-dir", str(data / "backups")]) == 1
    assert "caf\\udce9-\\udcff.json is not valid JSON" in capsys.readouterr().out


def test_a_failed_backup_leaves_no_partial_folder(data: Path) -> None:
    os.mkfifo(data / "state" / "pipe")
    plan = make_backup(data / "state", backups_dir=data / "backups")
    with pytest.raises(StateError, match="incomplete copy was removed"):
        make_backup(data / "state", backups_dir=data / "backups", execute=True, confirm=plan.plan_id)
    assert not list((data / "backups").glob(".zcnb-partial-*"))


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)


def test_a_copy_is_deleted_only_when_its_content_proves_the_backup_holds_it(tmp_path: Path) -> None:
    from zcnb.state import hash_tree as ht

    src = tmp_path / "backup"
    _tree(src, {"a.json": b'{"a": 1}', "s/b.txt": b"0123456789" * 100})
    expected = ht(src)
    aside = tmp_path / "aside"

    proven = tmp_path / "proven"  # a copy cut short by a crash: b.txt is only the first 300 bytes
    _tree(proven, {"a.json": b'{"a": 1}', "s/b.txt": b"0123456789" * 30})
    assert discard_copy(proven, expected=expected, source=src, aside=aside, never=set()) == ("removed", None)
    assert not proven.exists()

    other = tmp_path / "other"  # one file that the backup does not hold: may be the only copy of something
    _tree(other, {"a.json": b'{"a": 2}'})
    how, where = discard_copy(other, expected=expected, source=src, aside=aside, never=set())
    assert how == "moved" and where is not None and (where / "a.json").read_bytes() == b'{"a": 2}'

    extra = tmp_path / "extra"
    _tree(extra, {"a.json": b'{"a": 1}', "new.txt": b"x"})
    assert discard_copy(extra, expected=expected, source=src, aside=aside, never=set())[0] == "moved"

    same = tmp_path / "same"  # equal content, but it is the live state's inode: never deleted
    _tree(same, {"a.json": b'{"a": 1}', "s/b.txt": b"0123456789" * 100})
    assert discard_copy(same, expected=expected, source=src, aside=aside,
                        never={os.lstat(same).st_ino})[0] == "moved"


@pytest.mark.slow
def test_two_samplers_appending_to_one_csv_do_not_interleave(tmp_path: Path) -> None:
    """Real `zcnb sample --append` processes on one CSV: the second is refused (exit 2, holder named) while the
    first runs; after it finished, appending works and the file holds whole runs, one after the other."""
    csv = tmp_path / "samples.csv"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    args = [sys.executable, "-m", "zcnb", "sample", "--pid", str(os.getpid()), "--sources", "psutil", "--interval", "0.2",
            "--out", str(csv), "--append", "--no-progress", "--no-verdict"]
    first = subprocess.Popen([*args, "--duration", "4"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 30
        while not (csv.exists() and csv.read_text().count("\n") >= 5):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.run([*args, "--duration", "1"], env=env, capture_output=True, text=True, timeout=60,
                                check=False)
        assert second.returncode == 2, second.stderr
        assert f"another sample (pid {first.pid}, started " in second.stderr and "holds the lock on" in second.stderr
        assert first.wait(timeout=60) == 0, first.communicate()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    third = subprocess.run([*args, "--duration", "0.6"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert third.returncode == 0, third.stderr
    from zcnb.collect.samples_csv import read_samples

    text = csv.read_text()
    assert text.count("# sources:") == 2 and text.count("timestamp,pid,source") == 1
    blocks = text.split("# target:")[1:]
    assert all(b.count("started") == 1 for b in blocks)  # each run's rows follow its own header block
    assert len(read_samples(csv)) >= 10


@pytest.mark.slow
def test_a_report_run_leaves_no_temp_folders(tmp_path: Path) -> None:
    """Stages 02 and 04 replay on throwaway copies (a simulated gateway whose logs hold its token, a copy of the
    sample state); the report run removes them: nothing named zcnb-* stays in $TMPDIR."""
    import shutil

    from zcnb.incident import bundled_sample_dir

    tmpdir, inc = tmp_path / "tmp", tmp_path / "incident"
    tmpdir.mkdir()
    shutil.copytree(bundled_sample_dir(), inc)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), TMPDIR=str(tmpdir))
    r = subprocess.run([sys.executable, "-m", "zcnb", "report", "--incident-dir", str(inc), "--stages", "02,04",
                        "--no-progress"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("zcnb-")) == []
