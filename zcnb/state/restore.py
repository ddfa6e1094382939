"""Restore the state from a backup with zero data loss: stage, verify, swap, quarantine, verify.

Nothing is ever deleted except zcnb's own staging copy of a backup. The current state is moved
(renamed) into ``backups/corrupt-<YYYYmmdd-HHMMSS>/state``; the swap itself is one atomic
``renameat2(RENAME_EXCHANGE)`` where the filesystem supports it, so at every instant either the
old or the new state is complete at the state path. A crash log next to the state dir (the restore
journal, :mod:`zcnb.state.crashlog`) records progress: :func:`resume_restore` finishes an interrupted
restore, ``undo_restore`` reverts it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, apply_hint, require_confirmation
from ..config import Settings, load_settings
from ..exceptions import BackupInvalid, StateError, UnsafePath, ZcnbError
from ..files import ensure_private_dir, write_json
from .backups import BackupInfo, backups_path, resolve_backup, state_path
from .crashlog import CRASH_LOG_VERSION, crash_log_path, phase, read_crash_log, save_crash_log
from .gateway import (
    check_gateway,
    gateway_active,
    gateway_notes,
    gateway_pattern,
    gateway_step,
    process_running,
    refuse_if_running,
)
from .tree import CopyFile, copy_tree, exchange_paths, fsync_dir, hash_tree, same_filesystem, symlink_problems
from .verify import VerifyResult, verify_backup

__all__ = ["DEFAULT_UNIT", "StepHook", "restore_state", "resume_restore"]

DEFAULT_UNIT = "zeptoclaw-gateway.service"
#: ``on_step(name)`` is called before each step; fault tests block in it to kill the process there.
StepHook = Callable[[str], None]
STEPS = ("stop_gateway", "stage", "stage.partial", "verify_staging", "swap", "quarantine", "chmod", "verify",
         "start_gateway", "done")
_SPACE_MARGIN = 64 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


def check_state_dir(state: Path) -> None:
    """The state dir must be a real folder whose parent is on the same filesystem (renames stay atomic)."""
    if state.is_symlink():
        raise UnsafePath(f"state dir {state} is a symlink", hint="pass the real folder it points to", path=str(state))
    if not state.is_dir():
        raise StateError(f"state dir {state} does not exist",
                         hint=f"check the path (--state-dir); to restore into an empty place run: mkdir -m 700 {state}", path=str(state))
    if os.stat(state).st_dev != os.stat(state.parent).st_dev:
        raise StateError(f"state dir {state} is a mount point: its staging/quarantine siblings would be on another filesystem, so the swap cannot be an atomic rename",
                         hint="restore by hand inside the mount, or mount its parent folder instead", path=str(state))


def _quarantine_for(base: Path, stamp: str) -> Path:
    q, n = base / f"corrupt-{stamp}", 1
    while os.path.lexists(q):
        n += 1
        q = base / f"corrupt-{stamp}-{n}"
    return q


def restore_state(backup: str | os.PathLike[str] | BackupInfo = "latest", *,
                  state_dir: str | os.PathLike[str] | None = None, backups_dir: str | os.PathLike[str] | None = None,
                  quarantine_dir: str | os.PathLike[str] | None = None, service: Any = None, unit: str = DEFAULT_UNIT,
                  stop_gateway: bool = False, execute: bool = False, confirm: str | None = None,
                  settings: Settings | None = None, copy_file: CopyFile | None = None, on_step: StepHook | None = None,
                  now: datetime | None = None, process_pattern: str | None = None) -> ActionResult:
    """Restore ``backup`` ("latest", a name in ``backups_dir``, or a path inside it) into ``state_dir``.

    Dry run unless ``execute=True`` and ``confirm`` equals the plan id. Refuses while ``service``
    reports ``unit`` active, unless ``stop_gateway=True`` (then it stops it, and starts it again after,
    also when the restore fails). Without a service manager it looks for a running gateway process
    (``process_pattern``, default the settings' ``process_pattern``) and refuses when one runs.
    The previous state goes to ``quarantine_dir`` (default ``<backups_dir>/corrupt-<YYYYmmdd-HHMMSS>``)/state.
    """
    if settings is None and (state_dir is None or backups_dir is None or not process_pattern):
        settings = load_settings()  # once, for whichever folder (or the process pattern) was not given
    pattern = gateway_pattern(process_pattern, settings)
    state, base = state_path(state_dir, settings), backups_path(backups_dir, settings)
    info, vr = _usable_backup(backup, base, state)
    qbase, qtext = _quarantine_base(quarantine_dir, base, state)
    plan = _restore_plan(info, vr, state, qtext, service, unit, pattern, stop_gateway=stop_gateway)
    started = _now()
    details: dict[str, Any] = {"backup": info.to_dict(), "verify": vr.to_dict(), "state_dir": str(state),
                               "quarantine": qtext}
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        return _dry_run(plan, started, details, service, unit, pattern, stop_gateway=stop_gateway)
    details["gateway_active"] = refuse_if_running(service, unit, pattern, stop_gateway=stop_gateway)
    _check_space(state, vr.size_bytes)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    j: dict[str, Any] = {
        "version": CRASH_LOG_VERSION, "action": "restore", "status": "in_progress", "plan_id": plan.plan_id,
        "state_dir": str(state), "backup": str(info.path), "content": str(info.content_path),
        "staging": str(state.parent / f".zcnb-staging-{stamp}"),
        "quarantine": str(qbase if qbase is not None else _quarantine_for(base, stamp)),
        "hashes": dict(vr.hashes), "digest": vr.digest, "stop_gateway": stop_gateway, "unit": unit,
        "stopped_gateway": False, "started_at": started.isoformat(), "process_pattern": pattern,
    }
    save_crash_log(j, step="planned")
    return _execute(j, plan, started, service=service, copy_file=copy_file, on_step=on_step, details=details)


def _usable_backup(backup: str | os.PathLike[str] | BackupInfo, base: Path, state: Path) -> tuple[BackupInfo, VerifyResult]:
    """The backup to restore, verified; refuses while an unfinished restore of ``state`` is recorded."""
    info = resolve_backup(backup, backups_dir=base)
    check_state_dir(state)
    j_old = read_crash_log(state)
    if j_old and j_old.get("status") in ("in_progress", "undoing"):
        raise StateError(f"an unfinished restore of {state} is recorded in {crash_log_path(state)} (step {j_old.get('step')})",
                         hint="finish it with `zcnb restore resume` or revert it with `zcnb restore undo`", path=str(state))
    links = symlink_problems(info.content_path)
    if links:
        raise UnsafePath(f"backup {info.name} holds unsafe symlinks: {'; '.join(links)}",
                         hint="pick another backup or fix the links by hand", path=str(info.path))
    vr = verify_backup(info.path)
    if not vr.ok:
        raise BackupInvalid(f"backup {info.name} failed verification: {'; '.join(vr.problems)}",
                            hint="pick another backup (`zcnb backup list`, `zcnb backup verify NAME`)", path=str(info.path))
    return info, vr


def _quarantine_base(quarantine_dir: str | os.PathLike[str] | None, base: Path, state: Path) -> tuple[Path | None, str]:
    """The quarantine folder given (None: a dated one in the backups folder) and how the plan names it."""
    qbase = Path(quarantine_dir).expanduser() if quarantine_dir is not None else None
    if qbase is not None and os.path.lexists(qbase / "state"):
        raise StateError(f"quarantine folder {qbase} already holds a state/", hint="pass a new quarantine folder", path=str(qbase))
    qparent = qbase.parent if qbase is not None else base
    if not same_filesystem(qparent, state.parent):
        raise StateError(f"quarantine {qbase or base} is on another filesystem than the state dir {state}: moving the state aside would be a copy, not a rename",
                         hint="pass --quarantine-dir on the state dir's filesystem", path=str(qparent))
    return qbase, str(qbase) if qbase is not None else f"{base}/corrupt-<YYYYmmdd-HHMMSS>"


def _restore_plan(info: BackupInfo, vr: VerifyResult, state: Path, qtext: str, service: Any, unit: str, pattern: str,
                  *, stop_gateway: bool) -> Plan:
    staging_text = f"{state.parent}/.zcnb-staging-<YYYYmmdd-HHMMSS>"
    steps = [f"verify backup {info.path} ({vr.file_count} files, sha256 tree {vr.digest[:12]})",
             gateway_step(service, unit, pattern, stop_gateway=stop_gateway)]
    steps += [f"copy {info.content_path} -> {staging_text}", "verify the staging copy against the backup's sha256 hashes",
              f"swap {staging_text} <-> {state} (atomic rename exchange)",
              f"move the previous state -> {qtext}/state (rename; nothing is deleted)",
              f"chmod 700 {state}", f"verify {state} matches the backup (sha256)"]
    if stop_gateway and service is not None:
        steps.append(f"start {unit} again if this restore stopped it (also when the restore fails)")
    return Plan("restore-state", str(state), tuple(steps))


def _dry_run(plan: Plan, started: datetime, details: dict[str, Any], service: Any, unit: str, pattern: str, *,
             stop_gateway: bool) -> ActionResult:
    gw = check_gateway(service, unit, pattern, fallback=True)
    details.update(gateway_active=gw.running, gateway_check=gw.to_dict())
    notes = gateway_notes(gw, service, unit, stop_gateway=stop_gateway)
    return ActionResult("restore-state", plan.target, True, "planned", started_at=started, finished_at=_now(),
                        commands=plan.steps, plan_id=plan.plan_id, details=details,
                        message=" ".join([f"dry run: nothing was changed. {apply_hint(plan.plan_id)}."] + notes))


def _check_space(state: Path, size_bytes: int) -> None:
    need = size_bytes + _SPACE_MARGIN
    free = shutil.disk_usage(state.parent).free
    if free < need:
        raise StateError(f"not enough free space next to {state}: the staging copy needs ~{need} bytes, {free} are free",
                         hint="free some space, then retry; nothing was changed", path=str(state))


def resume_restore(*, state_dir: str | os.PathLike[str] | None = None, service: Any = None, execute: bool = False,
                   confirm: str | None = None, settings: Settings | None = None, copy_file: CopyFile | None = None,
                   on_step: StepHook | None = None) -> ActionResult:
    """Finish a restore that was interrupted (crash, kill, full disk) from where the filesystem stands."""
    state = state_path(state_dir, settings)
    j = read_crash_log(state)
    if not j or j.get("status") != "in_progress":
        raise StateError(f"no unfinished restore recorded for {state}",
                         hint="nothing to resume; `zcnb restore` starts a new one", path=str(state))
    ph = phase(j)
    steps = (f"resume restore {j['plan_id']} of {j['backup']} into {state} from phase '{ph}'",
             f"then: {'stage, verify, swap, ' if ph == 'start' else ''}{'quarantine, ' if ph != 'quarantined' else ''}chmod 700, verify")
    plan = Plan("resume-restore", str(state), steps)
    started = _now()
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        return ActionResult("resume-restore", str(state), True, "planned", started_at=started, finished_at=_now(),
                            commands=plan.steps, plan_id=plan.plan_id, details={"phase": ph, "journal": j["plan_id"]},
                            message=f"dry run: nothing was changed. {apply_hint(plan.plan_id)} (finishes the restore).")
    return _execute(j, plan, started, service=service, copy_file=copy_file, on_step=on_step,
                    details={"resumed_from": ph, "backup": j["backup"], "state_dir": str(state)})


def _execute(j: dict[str, Any], plan: Plan, started: datetime, *, service: Any, copy_file: CopyFile | None,
             on_step: StepHook | None, details: dict[str, Any]) -> ActionResult:
    try:
        done = _drive(j, service=service, copy_file=copy_file, on_step=on_step)
    except OSError as exc:
        raise _start_again_after_failure(j, service, _abort_before_swap(j, exc)) from None
    except StateError as exc:
        raise _start_again_after_failure(j, service, exc) from None
    details = {**details, **done, "quarantine": j["quarantine"], "journal": str(crash_log_path(Path(j["state_dir"])))}
    ok = done["verified"]
    msg = (f"restored {j['backup']} into {j['state_dir']}; previous state kept in {j['quarantine']}/state" if ok else
           f"restore finished but {j['state_dir']} does not match the backup: {done['mismatch'][:5]}; undo with `zcnb restore undo`")
    return ActionResult(plan.action, j["state_dir"], False, "ok" if ok else "failed", started_at=started,
                        finished_at=_now(), commands=plan.steps + tuple(done["commands"]), plan_id=plan.plan_id,
                        message=msg, details=details)


def _start_again_after_failure(j: dict[str, Any], service: Any, err: StateError) -> StateError:
    """A failed restore must not leave the gateway stopped: start it again if this restore stopped it.

    Not when the state dir is missing (a crash between the fallback renames): a gateway started there would
    make a fresh empty state; the error then says it was left stopped and that ``resume`` fixes the state.
    """
    if not j.get("stopped_gateway") or service is None or j.get("started_again"):
        return err
    unit = j.get("unit", DEFAULT_UNIT)
    if not os.path.isdir(j["state_dir"]):
        extra = f" {unit} was stopped by this restore and is left stopped: {j['state_dir']} is missing until the restore is resumed."
    else:
        try:
            service.start(unit)
            j["started_again"] = True
            extra = f" {unit} was stopped by this restore and has been started again."
        except (ZcnbError, OSError) as exc:
            extra = f" {unit} was stopped by this restore and could NOT be started again ({exc}): start it by hand."
        try:
            save_crash_log(j)
        except OSError:
            pass  # a full disk: the crash log keeps its last state; the message says what happened
    return StateError(err.message + extra, hint=err.hint, path=j["state_dir"], unit=unit)


def _abort_before_swap(j: dict[str, Any], exc: OSError) -> StateError:
    """An I/O error (e.g. disk full): before the swap the live state is untouched, so drop the staging copy."""
    ph = phase(j)
    reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
    if ph == "start":
        staging = Path(j["staging"])
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)  # only zcnb's copy of the backup: frees the space it took
        j["status"], j["error"] = "failed", reason
        try:
            save_crash_log(j, step="aborted")
        except OSError:
            pass  # the crash log says in_progress at worst; resume/undo handle that
        return StateError(f"restore stopped before touching the state: {reason}. {j['state_dir']} is unchanged",
                          hint="free space / fix the cause, then run the restore again", path=j["state_dir"])
    return StateError(f"restore interrupted after the swap: {reason}. The new state is in place, the previous one in {j['staging'] if ph == 'swapped' else j['quarantine']}",
                      hint="fix the cause, then `zcnb restore resume` (or `zcnb restore undo`)", path=j["state_dir"])


def _drive(j: dict[str, Any], *, service: Any, copy_file: CopyFile | None, on_step: StepHook | None) -> dict[str, Any]:
    """Run the remaining steps; every step is idempotent given :func:`phase`."""
    def step(name: str) -> None:
        if on_step is not None:
            on_step(name)

    state, staging, qdir = Path(j["state_dir"]), Path(j["staging"]), Path(j["quarantine"])
    commands: list[str] = []
    exchanged = None
    ph = phase(j)
    if ph == "start":
        step("stop_gateway")
        commands += _stop_for_restore(j, service)
        _stage(j, copy_file, step)
        exchanged = _swap(j, step)
        ph = phase(j)
        save_crash_log(j, step="swapped")
    if ph == "swapped":
        step("quarantine")
        ensure_private_dir(qdir)
        os.rename(staging, qdir / "state")
        fsync_dir(qdir)
        save_crash_log(j, step="quarantined")
    if not os.path.lexists(state) and os.path.lexists(staging):
        os.rename(staging, state)  # crash between the two fallback renames
    step("chmod")
    os.chmod(state, 0o700)
    return _verify_and_start(j, service, step, commands, exchanged)


def _stop_for_restore(j: dict[str, Any], service: Any) -> list[str]:
    """Refuse a running gateway without a manager; stop it through the manager when asked to."""
    unit = j.get("unit", DEFAULT_UNIT)
    if service is None and j.get("process_pattern"):
        gw = process_running(j["process_pattern"])
        if gw.running:
            raise StateError(f"the gateway is running ({gw.detail}; found in {gw.how}): nothing was changed",
                             hint="stop the gateway first, or pass a service manager with stop_gateway=True", unit=unit)
    if not gateway_active(service, unit):
        return []
    if not j.get("stop_gateway"):
        raise StateError(f"{unit} is running", hint="stop it or resume with the service manager and stop_gateway", unit=unit)
    out = service.stop(unit)
    j["stopped_gateway"] = True
    save_crash_log(j, step="stopped_gateway")
    return list(getattr(out, "commands", ()))


def _stage(j: dict[str, Any], copy_file: CopyFile | None, step: StepHook) -> None:
    """Copy the backup next to the state dir and check it against the backup's hashes."""
    staging, expected = Path(j["staging"]), j["hashes"]
    step("stage")
    if os.path.lexists(staging) and hash_tree(staging) != expected:
        shutil.rmtree(staging)  # zcnb's own unfinished copy of the backup; the backup still has it all
    if not os.path.lexists(staging):
        copy_tree(Path(j["content"]), staging, copy_file=copy_file, after_first_file=lambda: step("stage.partial"))
    j["staging_ino"] = os.lstat(staging).st_ino
    save_crash_log(j, step="staged")
    step("verify_staging")
    if hash_tree(staging) != expected:
        raise StateError("the staging copy does not match the backup (did the backup change?)",
                         hint="verify the backup again, then retry", path=str(staging))


def _swap(j: dict[str, Any], step: StepHook) -> bool:
    """Put the staging copy in place of the state: one rename exchange, or two renames where there is none."""
    state, staging, qdir = Path(j["state_dir"]), Path(j["staging"]), Path(j["quarantine"])
    step("swap")
    save_crash_log(j, step="swapping")
    exchanged = exchange_paths(staging, state)
    if not exchanged:
        # No RENAME_EXCHANGE here: two renames; phase() repairs a crash between them.
        ensure_private_dir(qdir)
        os.rename(state, qdir / "state")
        os.rename(staging, state)
    fsync_dir(state.parent)
    return exchanged


def _verify_and_start(j: dict[str, Any], service: Any, step: StepHook, commands: list[str],
                      exchanged: bool | None) -> dict[str, Any]:
    """Check the state against the backup, start a gateway this restore stopped, and close the crash log."""
    expected: dict[str, str] = j["hashes"]
    step("verify")
    got = hash_tree(Path(j["state_dir"]))
    mismatch = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
    started_again = False
    if j.get("stopped_gateway") and service is not None:
        step("start_gateway")
        out = service.start(j.get("unit", DEFAULT_UNIT))
        commands += list(getattr(out, "commands", ()))
        started_again = j["started_again"] = True
    step("done")
    j["status"] = "done" if not mismatch else "in_progress"
    save_crash_log(j, step="verified" if not mismatch else "verify_failed")
    write_json(Path(j["quarantine"]) / "restore-journal.json", j)
    return {"verified": not mismatch, "mismatch": mismatch, "files": sum(1 for h in got.values() if h.startswith("f:")),
            "exchange": exchanged, "gateway_stopped": bool(j.get("stopped_gateway")), "gateway_started": started_again,
            "commands": commands}
