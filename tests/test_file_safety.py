"""File safety: folder modes, symlinks, never-overwrite kept copies, and refusing under a running gateway.

Real files, real processes (a supervised process, and a free-standing process found by its command line),
and a real 1 MiB tmpfs for the disk-full case.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from state_helpers import apply, tmpfs

from zcnb.actions import ActionResult, append_action, apply_hint, read_actions
from zcnb.analysis.escalation import decide
from zcnb.cli import main
from zcnb.exceptions import OutputWriteError, PlanError, StateError, UnsafePath
from zcnb.files import ensure_private_dir, make_unique_dir
from zcnb.incident import new_incident_dir
from zcnb.ops.rollback import plan_rollback, rollback
from zcnb.report import write_index
from zcnb.report.export import lock_down
from zcnb.service import ProcessSupervisorBackend, SupervisedService, set_debug_logging
from zcnb.state import copy_sample_data, hash_tree, restore_state, undo_restore, verify_backup
from zcnb.state.tree import symlink_problems

GW = "zeptoclaw-gateway.service"
BACKUP = "20261128-031000"


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


# -- H4: folder modes, lock_down, index.html --------------------------------------------------------------------

def test_existing_folder_keeps_its_mode_new_ones_are_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    assert ensure_private_dir(shared) == shared and mode(shared) == 0o1777
    inc = new_incident_dir(shared, "leak")
    assert mode(shared) == 0o1777 and mode(inc) == 0o700
    deep = ensure_private_dir(tmp_path / "a" / "b" / "c")
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == mode(deep) == 0o700


def test_lock_down_skips_symlinks_and_never_leaves_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "tool").write_text("x")
    (outside / "tool").chmod(0o755)
    (outside / "sub").mkdir()
    (outside / "sub" / "f").write_text("y")
    (outside / "sub" / "f").chmod(0o644)
    outside.chmod(0o755)
    inc = tmp_path / "inc"
    (inc / "figures").mkdir(parents=True)
    (inc / "figures" / "a.png").write_bytes(b"png")
    (inc / "report.html").write_text("r")
    (inc / "link-to-file").symlink_to(outside / "tool")
    (inc / "link-to-dir").symlink_to(outside)
    (inc / "figures" / "link").symlink_to("../../outside/sub/f")
    lock_down(inc)
    assert mode(outside / "tool") == 0o755 and mode(outside) == 0o755 and mode(outside / "sub" / "f") == 0o644
    assert mode(inc) == mode(inc / "figures") == 0o700
    assert mode(inc / "report.html") == mode(inc / "figures" / "a.png") == 0o600
    assert (inc / "link-to-file").is_symlink()


def test_lock_down_of_a_reused_folder_touches_only_new_files(tmp_path: Path) -> None:
    reused = tmp_path / "reused"
    reused.mkdir(mode=0o755)
    reused.chmod(0o755)
    (reused / "theirs.txt").write_text("old")
    (reused / "theirs.txt").chmod(0o644)
    (reused / "dir").mkdir()
    (reused / "dir").chmod(0o755)
    time.sleep(0.05)
    since = time.time()
    time.sleep(0.05)
    (reused / "samples.csv").write_text("new")
    (reused / "samples.csv").chmod(0o644)
    lock_down(reused, since=since)
    assert mode(reused) == 0o755 and mode(reused / "dir") == 0o755 and mode(reused / "theirs.txt") == 0o644
    assert mode(reused / "samples.csv") == 0o600


def test_index_html_zcnb_did_not_write_is_never_overwritten(tmp_path: Path) -> None:
    foreign = "<html><body>my own page</body></html>\n"
    (tmp_path / "index.html").write_text(foreign)
    with pytest.raises(OutputWriteError, match="not written by zcnb"):
        write_index(tmp_path)
    assert (tmp_path / "index.html").read_text() == foreign
    mine = tmp_path / "incidents"
    mine.mkdir()
    first = write_index(mine).read_text()
    assert "zcnb incidents index" in first
    (mine / "2026-11-02T000000Z-b").mkdir()
    (mine / "2026-11-02T000000Z-b" / "summary.json").write_text('{"ok": true, "assessment": {"verdict": "leak"}}')
    assert "2026-11-02T000000Z-b" in write_index(mine).read_text()  # ours: refreshed


# -- M4: symlinks that escape through other links ------------------------------------------------------------------

def test_symlink_escaping_through_a_chain_of_links(tmp_path: Path) -> None:
    root = tmp_path / "backup" / "state"
    (root / "p" / "q").mkdir(parents=True)
    (root / "t").mkdir()
    (root / "p" / "q" / "d").symlink_to("../../t")
    assert symlink_problems(root) == []  # d stays inside
    (root / "p" / "q" / "x").symlink_to("d/../..")  # text says p/, but d is root/t: x is root/.. = outside
    assert os.path.realpath(root / "p" / "q" / "x") == str(tmp_path / "backup")
    problems = symlink_problems(root)
    assert len(problems) == 1 and "p/q/x" in problems[0] and "resolves outside" in problems[0]


def test_restore_refuses_a_backup_with_a_chained_escape(tmp_path: Path) -> None:
    data = copy_sample_data(tmp_path / "zeptoclaw")
    st = data / "backups" / BACKUP / "state"
    (st / "p" / "q").mkdir(parents=True)
    (st / "t").mkdir()
    (st / "p" / "q" / "d").symlink_to("../../t")
    (st / "p" / "q" / "x").symlink_to("d/../..")
    assert not verify_backup(data / "backups" / BACKUP).ok
    before = hash_tree(data)
    with pytest.raises(UnsafePath, match="p/q/x"):
        restore_state(BACKUP, state_dir=data / "state", backups_dir=data / "backups", service=None,
                      process_pattern="no-such-gateway-" + uuid.uuid4().hex)
    assert hash_tree(data) == before


# -- M2: no service manager -> look for a running gateway process --------------------------------------------------

@pytest.fixture
def free_gateway() -> Iterator[str]:
    """A process (not our child: started through `sh -c '... &'`) whose command line holds a unique tag."""
    tag = "zcnbtest-fakegw-" + uuid.uuid4().hex[:12]
    cmd = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(300)' {tag} >/dev/null 2>&1 & echo $!"
    pid = int(subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip())
    try:
        yield tag
    finally:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                mine = tag.encode() in fh.read()
        except OSError:
            mine = False
        if mine:  # never signal a reused pid
            os.kill(pid, signal.SIGKILL)


def test_restore_without_a_manager_refuses_while_a_gateway_process_runs(tmp_path: Path, free_gateway: str) -> None:
    data = copy_sample_data(tmp_path / "zeptoclaw")
    kw = {"state_dir": data / "state", "backups_dir": data / "backups", "process_pattern": free_gateway}
    before = hash_tree(data)
    dry = restore_state(**kw)
    assert dry.details["gateway_active"] is True and "will refuse" in dry.message and free_gateway in dry.message
    with pytest.raises(StateError, match="gateway is running") as info:
        restore_state(**kw, execute=True, confirm=dry.plan_id)
    assert free_gateway in str(info.value)
    # stop_gateway cannot help without a manager: still refused
    dry2 = restore_state(**kw, stop_gateway=True)
    with pytest.raises(StateError, match="gateway is running"):
        restore_state(**kw, stop_gateway=True, execute=True, confirm=dry2.plan_id)
    assert hash_tree(data) == before
    # the command line with --backend none refuses the same way (exit 2, nothing changed)
    args = ["restore", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"), "--backend", "none",
            "--process-pattern", free_gateway]
    assert main([*args, "--execute", "--confirm", dry.plan_id]) != 0
    assert hash_tree(data) == before


def test_undo_without_a_manager_refuses_while_a_gateway_process_runs(tmp_path: Path) -> None:
    data = copy_sample_data(tmp_path / "zeptoclaw")
    quiet = "no-such-gateway-" + uuid.uuid4().hex
    res = apply(restore_state, state_dir=data / "state", backups_dir=data / "backups", process_pattern=quiet)
    assert res.outcome == "ok"
    tag = "zcnbtest-fakegw-" + uuid.uuid4().hex[:12]
    cmd = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(300)' {tag} >/dev/null 2>&1 & echo $!"
    pid = int(subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip())
    try:
        plan = undo_restore(state_dir=data / "state", process_pattern=tag)
        assert plan.details["gateway_active"] is True and "will refuse" in plan.message
        before = hash_tree(data)
        with pytest.raises(StateError, match="gateway is running"):
            undo_restore(state_dir=data / "state", process_pattern=tag, execute=True, confirm=plan.plan_id)
        assert hash_tree(data) == before
    finally:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    done = apply(undo_restore, state_dir=data / "state", process_pattern=tag)
    assert done.outcome == "ok"


# -- M3: a failed restore starts the gateway it stopped ------------------------------------------------------------

def _supervisor(tmp_path: Path) -> ProcessSupervisorBackend:
    svc = SupervisedService(name=GW, argv=(sys.executable, "-c", "import time; time.sleep(300)"),
                            pid_file=tmp_path / "gw.pid", log_file=tmp_path / "gw.log")
    return ProcessSupervisorBackend([svc], run_dir=tmp_path)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    yield from tmpfs(tmp_path / "fs")


def test_disk_full_after_stopping_the_gateway_starts_it_again(tmp_path: Path, small_fs: Path) -> None:
    data = copy_sample_data(small_fs / "zeptoclaw")
    mgr = _supervisor(tmp_path / "run")  # pid and log files off the small filesystem
    mgr.start(GW, timeout_s=20)
    try:
        pid = mgr.status(GW).pid

        def copy_then_fill(src: Path, dst: Path) -> None:
            from zcnb.state.tree import copy_file_durable

            if not (small_fs / "ballast").exists():
                with open(small_fs / "ballast", "wb") as fh:
                    try:
                        while True:
                            fh.write(b"\0" * 65536)
                            fh.flush()
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
            copy_file_durable(src, dst)

        kw = {"state_dir": data / "state", "backups_dir": data / "backups", "service": mgr, "stop_gateway": True}
        plan = restore_state(BACKUP, **kw)
        with pytest.raises(StateError, match="No space left") as info:
            restore_state(BACKUP, **kw, execute=True, confirm=plan.plan_id, copy_file=copy_then_fill)
        assert "has been started again" in str(info.value) and "unchanged" in str(info.value)
        st = mgr.status(GW)
        assert st.active and st.pid != pid
    finally:
        mgr.close()


def test_staging_mismatch_after_stopping_the_gateway_starts_it_again(tmp_path: Path) -> None:
    data = copy_sample_data(tmp_path / "zeptoclaw")
    mgr = _supervisor(tmp_path)
    mgr.start(GW, timeout_s=20)
    try:
        pid = mgr.status(GW).pid
        before = hash_tree(data / "state")

        def corrupt_staging(step: str) -> None:
            if step == "verify_staging":
                staging = next(data.glob(".zcnb-staging-*"))
                (staging / "metadata.json").write_text("{}")

        kw = {"state_dir": data / "state", "backups_dir": data / "backups", "service": mgr, "stop_gateway": True}
        plan = restore_state(BACKUP, **kw)
        with pytest.raises(StateError, match="does not match the backup") as info:
            restore_state(BACKUP, **kw, execute=True, confirm=plan.plan_id, on_step=corrupt_staging)
        assert "has been started again" in str(info.value)
        st = mgr.status(GW)
        assert st.active and st.pid != pid
        assert hash_tree(data / "state") == before
    finally:
        mgr.close()


# -- M5 + L4: rollback plans name the content; kept copies never overwritten; symlinks kept as links ---------------

def _site(tmp_path: Path) -> tuple[ProcessSupervisorBackend, Path, Path]:
    data = copy_sample_data(tmp_path / "zeptoclaw")
    bin_dir = data / "bin"
    bin_dir.mkdir()
    (bin_dir / "zeptoclaw-gateway").write_text("#!/bin/sh\necho live\n")
    return _supervisor(tmp_path), data, bin_dir


def test_rollback_plan_id_covers_binary_and_state_content(tmp_path: Path) -> None:
    mgr, data, bin_dir = _site(tmp_path)
    kw = {"backup": BACKUP, "backups_dir": data / "backups", "bin_dir": bin_dir, "state_dir": data / "state"}
    plan = plan_rollback(mgr, **kw)
    assert "sha256" in " ".join(plan.steps)
    (bin_dir / "zeptoclaw-gateway").write_text("#!/bin/sh\necho another live build\n")
    p2 = plan_rollback(mgr, **kw)
    assert p2.plan_id != plan.plan_id
    with pytest.raises(PlanError):
        rollback(mgr, **kw, execute=True, confirm=plan.plan_id)
    assert "another live build" in (bin_dir / "zeptoclaw-gateway").read_text()  # nothing changed
    (data / "backups" / BACKUP / "zeptoclaw-gateway").write_text("#!/bin/sh\necho tampered\n")
    assert plan_rollback(mgr, **kw).plan_id != p2.plan_id
    p3 = plan_rollback(mgr, **kw)
    (data / "backups" / BACKUP / "state" / "metadata.json").write_text('{"changed": true}')
    assert plan_rollback(mgr, **kw).plan_id != p3.plan_id


def test_rollback_never_overwrites_a_kept_copy_and_keeps_a_symlink_as_a_link(tmp_path: Path) -> None:
    mgr, data, bin_dir = _site(tmp_path)
    real = bin_dir / "zeptoclaw-gateway-1.2"
    real.write_text("#!/bin/sh\necho 1.2\n")
    (bin_dir / "zeptoclaw-gateway").unlink()
    (bin_dir / "zeptoclaw-gateway").symlink_to("zeptoclaw-gateway-1.2")
    # Earlier kept copies for this second and the next ones: the rollback must not touch them.
    now = datetime.now()
    taken = [data / "backups" / f"replaced-{(now + timedelta(seconds=s)).strftime('%Y%m%d-%H%M%S')}" for s in range(4)]
    for d in taken:
        d.mkdir()
        (d / "zeptoclaw-gateway").write_text("earlier kept copy\n")
    kw = {"backup": BACKUP, "backups_dir": data / "backups", "bin_dir": bin_dir, "restore_state": False}
    mgr.start(GW, timeout_s=20)
    try:
        res = apply(rollback, mgr, **kw)
    finally:
        mgr.close()
    assert res.outcome == "ok", res.message
    for d in taken:
        assert (d / "zeptoclaw-gateway").read_text() == "earlier kept copy\n"
    kept_dir = Path(res.details["replaced_dir"])
    assert kept_dir not in taken and kept_dir.name.endswith("-2")
    kept = kept_dir / "zeptoclaw-gateway"
    assert kept.is_symlink() and os.readlink(kept) == "zeptoclaw-gateway-1.2"
    assert real.read_text() == "#!/bin/sh\necho 1.2\n"  # the link's target is untouched
    assert not (bin_dir / "zeptoclaw-gateway").is_symlink()
    assert (bin_dir / "zeptoclaw-gateway").read_bytes() == (data / "backups" / BACKUP / "zeptoclaw-gateway").read_bytes()


def test_make_unique_dir_never_reuses(tmp_path: Path) -> None:
    a = make_unique_dir(tmp_path / "replaced-x")
    b = make_unique_dir(tmp_path / "replaced-x")
    assert a != b and b.name == "replaced-x-2" and mode(b) == 0o700


# -- L7 + L4 (ops): supervisor dry run creates nothing; drop-in backups never overwritten ---------------------------

def test_debug_logging_dry_run_creates_nothing_and_backups_are_unique(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    mgr = _supervisor(run)
    before = sorted(os.listdir(run))
    plan = set_debug_logging(mgr, unit=GW, window_s=0.1)
    assert plan.dry_run and sorted(os.listdir(run)) == before
    assert "--execute --confirm" in plan.message and "execute=True" in plan.message
    dropin = mgr.env_dropin_path(GW)
    assert not dropin.parent.exists()
    dropin.parent.mkdir()
    dropin.write_text("# earlier drop-in\nFOO=1\n")
    now = datetime.now()
    taken = [dropin.with_name(f"{dropin.name}.bak-{(now + timedelta(seconds=s)).strftime('%Y%m%d-%H%M%S')}")
             for s in range(4)]
    for t in taken:
        t.write_text("earlier backup\n")
    try:
        res = apply(set_debug_logging, mgr, unit=GW, window_s=0.1)
    finally:
        mgr.close()
    assert all(t.read_text() == "earlier backup\n" for t in taken)
    kept = [p for p in dropin.parent.iterdir() if p.name.endswith("-2")]
    assert len(kept) == 1 and kept[0].read_text() == "# earlier drop-in\nFOO=1\n", res.message


# -- L5: unreadable action lines are reported ----------------------------------------------------------------------

def test_read_actions_reports_skipped_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "actions.jsonl"
    append_action(log, ActionResult("restart", GW, True, "planned"))
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"action": "restart", "tar\n')  # cut by a crash
        fh.write("[1, 2]\n")
    append_action(log, ActionResult("restart", GW, False, "ok"))
    with caplog.at_level(logging.WARNING, logger="zcnb.actions"):
        got = read_actions(log)
    assert [a.outcome for a in got] == ["planned", "ok"]
    assert got.skipped == (2, 3) and "2 unreadable lines" in got.note and "2, 3" in got.note
    assert "unreadable" in caplog.text
    clean = read_actions(tmp_path / "missing.jsonl")
    assert clean == [] and clean.note == ""


# -- UX: one apply hint; escalate does not promise a plan that does not follow ---------------------------------------

def test_apply_hint_everywhere_and_escalate_wording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert apply_hint("ab12") == ("To apply: execute=True, confirm='ab12' in the notebook, or --execute --confirm ab12 "
                                  "on the command line")
    data = copy_sample_data(tmp_path / "zeptoclaw")
    args = ["restore", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"), "--backend", "none",
            "--process-pattern", "no-such-gateway-" + uuid.uuid4().hex]
    assert main(args) == 0
    out = capsys.readouterr().out
    plan_id = out.split("plan id: ")[1].split()[0]
    assert f"--execute --confirm {plan_id}" in out
    d = decide({"verdict": "leak", "severity": "catastrophic", "growth_bytes_per_hour": 2**30})
    text = " ".join(d.next_steps)
    assert "below" not in text and "--execute --confirm" in text and "zcnb rollback" in text


def test_restore_dry_run_without_a_user_manager_still_prints_the_plan(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Default --backend systemd on a host with no user manager: the dry run is still useful."""
    data = copy_sample_data(tmp_path / "zeptoclaw")
    env_runtime = os.environ.pop("XDG_RUNTIME_DIR", None)
    try:
        rc = main(["restore", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"),
                   "--process-pattern", "no-such-gateway-" + uuid.uuid4().hex])
    finally:
        if env_runtime is not None:
            os.environ["XDG_RUNTIME_DIR"] = env_runtime
    out = capsys.readouterr().out
    if "did not answer" not in out:
        pytest.skip("a systemd user manager answers on this host")
    assert rc == 0 and "plan id:" in out and "--backend none" in out


# -- H4 end to end: a reused incident folder in a shared parent -----------------------------------------------------

@pytest.mark.slow
def test_run_incident_in_a_reused_folder_keeps_modes_links_and_foreign_index(tmp_path: Path) -> None:
    from zcnb.report import run_incident

    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o755)
    foreign = "<html>somebody else's index</html>\n"
    (parent / "index.html").write_text(foreign)
    outside = tmp_path / "tool"
    outside.write_text("#!/bin/sh\n")
    outside.chmod(0o755)
    inc = parent / "incident"
    inc.mkdir()
    inc.chmod(0o755)
    (inc / "notes.txt").write_text("kept as it is")
    (inc / "notes.txt").chmod(0o644)
    (inc / "tool-link").symlink_to(outside)
    time.sleep(2.5)  # older than the run's start minus its 2 s tolerance
    with pytest.warns(UserWarning, match="mode 755"):
        run = run_incident(incident_dir=inc, stages=(), progress=False)
    assert run.report_html is not None and mode(run.report_html) == 0o600
    assert mode(inc) == 0o755 and mode(parent) == 0o755
    assert mode(outside) == 0o755 and mode(inc / "notes.txt") == 0o644
    assert (parent / "index.html").read_text() == foreign
