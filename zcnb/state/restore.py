"""Restore the state from a backup with zero data loss: stage, verify, swap, quarantine, verify.

Nothing is ever deleted except zcnb's own staging copy of a backup, and that only when its content proves
the backup holds all of it (:func:`zcnb.state.staging.discard_copy`). The current state is moved (renamed)
into ``backups/corrupt-<YYYYmmdd-HHMMSS>-<id>/state``; the swap itself is one atomic
``renameat2(RENAME_EXCHANGE)`` where the filesystem supports it, so at every instant either the old or the
new state is complete at the state path. One restore, resume or undo of a state dir runs at a time (a lock
next to it, :func:`zcnb.state.crashlog.lock_state`). A crash log next to the state dir (the restore journal)
records progress: :func:`resume_restore` finishes an interrupted restore, ``undo_restore`` reverts it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, apply_hint, require_confirmation
from ..config import Settings, load_settings
from ..exceptions import BackupInvalid, StateError, UnsafePath
from ..locks import HeldLock
from .apply import DEFAULT_UNIT, StepHook, run_restore
from .backups import BackupInfo, backups_path, resolve_backup, state_path
from .crashlog import (
    CRASH_LOG_VERSION,
    crash_log_path,
    lock_state,
    phase,
    read_crash_log,
    refuse_if_locked,
    save_crash_log,
)
from .gateway import check_gateway, gateway_notes, gateway_pattern, gateway_step, refuse_if_running
from .tree import CopyFile, same_filesystem
from .verified import verify_for_restore
from .verify import VerifyResult

__all__ = ["DEFAULT_UNIT", "StepHook", "check_state_dir", "restore_state", "resume_restore", "unique_stamp"]

_SPACE_MARGIN = 64 * 1024


def _now() -> datetime:
    return datetime.now(UTC)


def unique_stamp(now: datetime | None = None) -> str:
    """``<YYYYmmdd-HHMMSS>-<6 hex>``: dated like the runbook's names, unique even within one second."""
    return f"{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


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


@dataclass(frozen=True)
class _Planned:
    """A restore worked out: the verified backup, where the old state goes, and the plan to confirm."""

    info: BackupInfo
    vr: VerifyResult
    qbase: Path | None
    plan: Plan
    details: dict[str, Any]


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
    The previous state goes to ``quarantine_dir`` (default ``<backups_dir>/corrupt-<YYYYmmdd-HHMMSS>-<id>``)/state.
    Refuses while another process restores (or undoes a restore of) the same state dir.
    """
    if settings is None and (state_dir is None or backups_dir is None or not process_pattern):
        settings = load_settings()  # once, for whichever folder (or the process pattern) was not given
    pattern = gateway_pattern(process_pattern, settings)
    state, base = state_path(state_dir, settings), backups_path(backups_dir, settings)
    started = _now()
    if not execute:
        refuse_if_locked(state)
        p = _plan(backup, state, base, quarantine_dir, service, unit, pattern, stop_gateway=stop_gateway)
        return _dry_run(p.plan, started, p.details, service, unit, pattern, stop_gateway=stop_gateway)
    with lock_state(state, action="restore") as held:
        p = _plan(backup, state, base, quarantine_dir, service, unit, pattern, stop_gateway=stop_gateway, held=held)
        require_confirmation(p.plan, execute=execute, confirm=confirm)
        p.details["gateway_active"] = refuse_if_running(service, unit, pattern, stop_gateway=stop_gateway)
        _check_space(state, p.vr.size_bytes)
        j = _journal(p, state, base, unit, pattern, stop_gateway=stop_gateway, started=started, now=now)
        if held.stale is not None:
            p.details["stale_lock"] = held.stale.to_dict()
        return run_restore(j, p.plan, started, service=service, copy_file=copy_file, on_step=on_step,
                           details=p.details, note=held.stale_note())


def _plan(backup: str | os.PathLike[str] | BackupInfo, state: Path, base: Path,
          quarantine_dir: str | os.PathLike[str] | None, service: Any, unit: str, pattern: str, *, stop_gateway: bool,
          held: HeldLock | None = None) -> _Planned:
    info, vr, note = _usable_backup(backup, base, state, held)
    qbase, qtext = _quarantine_base(quarantine_dir, base, state, info)
    plan = _restore_plan(info, vr, state, qtext, service, unit, pattern, stop_gateway=stop_gateway)
    details: dict[str, Any] = {"backup": info.to_dict(), "verify": vr.to_dict(), "state_dir": str(state),
                               "quarantine": qtext}
    if note:
        details["verify_note"] = note
    return _Planned(info, vr, qbase, plan, details)


def _journal(p: _Planned, state: Path, base: Path, unit: str, pattern: str, *, stop_gateway: bool,
             started: datetime, now: datetime | None) -> dict[str, Any]:
    """The crash log of this restore, saved: unique staging name, the quarantine folder made (reserved) now."""
    stamp = unique_stamp(now)
    if p.qbase is not None:
        quarantine = p.qbase
        os.makedirs(quarantine, mode=0o700, exist_ok=True)
    else:
        quarantine = base / f"corrupt-{stamp}"
        os.mkdir(quarantine, 0o700)  # exclusive: no other restore can pick the same folder
    j: dict[str, Any] = {
        "version": CRASH_LOG_VERSION, "action": "restore", "status": "in_progress", "plan_id": p.plan.plan_id,
        "state_dir": str(state), "backup": str(p.info.path), "content": str(p.info.content_path),
        "staging": str(state.parent / f".zcnb-staging-{stamp}"), "quarantine": str(quarantine),
        "quarantine_made": p.qbase is None, "state_ino": os.lstat(state).st_ino,
        "hashes": dict(p.vr.hashes), "hash_algo": p.vr.algo, "digest": p.vr.digest, "stop_gateway": stop_gateway, "unit": unit,
        "stopped_gateway": False, "started_at": started.isoformat(), "process_pattern": pattern,
    }
    save_crash_log(j, step="planned")
    return j


def _usable_backup(backup: str | os.PathLike[str] | BackupInfo, base: Path, state: Path,
                   held: HeldLock | None = None) -> tuple[BackupInfo, VerifyResult, str]:
    """The backup to restore, verified; refuses while an unfinished restore of ``state`` is recorded."""
    info = resolve_backup(backup, backups_dir=base)
    check_state_dir(state)
    j_old = read_crash_log(state)
    if j_old and j_old.get("status") in ("in_progress", "undoing"):
        died = f"; {held.stale_note()} (it stopped half-way)" if held is not None and held.stale is not None else ""
        raise StateError(f"an unfinished restore of {state} is recorded in {crash_log_path(state)} (step {j_old.get('step')}){died}",
                         hint="finish it with `zcnb restore resume` or revert it with `zcnb restore undo`", path=str(state))
    vr, note = verify_for_restore(info.path, state, reuse=held is not None)
    if vr.link_problems:
        raise UnsafePath(f"backup {info.name} holds unsafe symlinks: {'; '.join(vr.link_problems)}",
                         hint="pick another backup or fix the links by hand", path=str(info.path))
    if not vr.ok:
        raise BackupInvalid(f"backup {info.name} failed verification: {'; '.join(vr.problems)}",
                            hint="pick another backup (`zcnb backup list`, `zcnb backup verify NAME`)", path=str(info.path))
    return info, vr, note


def _inside(path: Path, folder: Path) -> bool:
    a, b = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([a, b]) == b


def _quarantine_base(quarantine_dir: str | os.PathLike[str] | None, base: Path, state: Path,
                     info: BackupInfo) -> tuple[Path | None, str]:
    """The quarantine folder given (None: a dated one in the backups folder) and how the plan names it."""
    qbase = Path(os.path.abspath(Path(quarantine_dir).expanduser())) if quarantine_dir is not None else None
    if qbase is not None:
        for inner, what in ((state, "the state dir"), (info.path, "the backup being restored")):
            if _inside(qbase, inner):
                raise UnsafePath(f"quarantine folder {qbase} is inside {what} {inner}: the old state would be moved into "
                                 "a tree the restore replaces or reads", hint="pass a folder outside both, e.g. next to "
                                 "the backups (the default: backups/corrupt-<ts>)", path=str(qbase))
        if os.path.lexists(qbase / "state"):
            raise StateError(f"quarantine folder {qbase} already holds a state/", hint="pass a new quarantine folder", path=str(qbase))
    qparent = qbase.parent if qbase is not None else base
    if not same_filesystem(qparent, state.parent):
        raise StateError(f"quarantine {qbase or base} is on another filesystem than the state dir {state}: moving the state aside would be a copy, not a rename",
                         hint="pass --quarantine-dir on the state dir's filesystem", path=str(qparent))
    return qbase, str(qbase) if qbase is not None else f"{base}/corrupt-<YYYYmmdd-HHMMSS>-<id>"


def _restore_plan(info: BackupInfo, vr: VerifyResult, state: Path, qtext: str, service: Any, unit: str, pattern: str,
                  *, stop_gateway: bool) -> Plan:
    staging_text = f"{state.parent}/.zcnb-staging-<YYYYmmdd-HHMMSS>-<id>"
    steps = [f"verify backup {info.path} ({vr.file_count} files, {vr.algo} tree {vr.digest[:12]})",
             gateway_step(service, unit, pattern, stop_gateway=stop_gateway)]
    steps += [f"copy {info.content_path} -> {staging_text}, hashing every byte copied; flush it to disk",
              f"verify the staging copy: its {vr.algo} hashes equal the backup's, names, sizes and times unchanged",
              f"swap {staging_text} <-> {state} (atomic rename exchange)",
              f"move the previous state -> {qtext}/state (rename; nothing is deleted)",
              f"chmod 700 {state}", f"verify {state} is the verified staging copy (same files, unchanged)"]
    if stop_gateway and service is not None:
        steps.append(f"start {unit} again if this restore stopped it (also when the restore fails)")
    return Plan("restore-state", str(state), tuple(steps))


def _dry_run(plan: Plan, started: datetime, details: dict[str, Any], service: Any, unit: str, pattern: str, *,
             stop_gateway: bool) -> ActionResult:
    gw = check_gateway(service, unit, pattern, fallback=True)
    details.update(gateway_active=gw.running, gateway_check=gw.to_dict())
    notes = gateway_notes(gw, service, unit, stop_gateway=stop_gateway)
    if details.get("verify_note"):
        notes.append(str(details["verify_note"]) + ".")
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
    if not execute:
        refuse_if_locked(state)
        return _resume(state, execute=False, confirm=confirm, service=service, copy_file=copy_file, on_step=on_step)
    with lock_state(state, action="restore resume") as held:
        return _resume(state, execute=True, confirm=confirm, service=service, copy_file=copy_file, on_step=on_step,
                       note=held.stale_note())


def _resume(state: Path, *, execute: bool, confirm: str | None, service: Any, copy_file: CopyFile | None,
            on_step: StepHook | None, note: str = "") -> ActionResult:
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
    return run_restore(j, plan, started, service=service, copy_file=copy_file, on_step=on_step,
                       details={"resumed_from": ph, "backup": j["backup"], "state_dir": str(state)}, note=note)

