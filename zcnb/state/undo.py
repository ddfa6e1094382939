"""Revert a restore: put the quarantined state back, keeping what it replaces."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, apply_hint, require_confirmation
from ..config import Settings
from ..exceptions import StateError, ZcnbError
from ..files import ensure_private_dir, write_json
from .backups import state_path
from .crashlog import CRASH_LOG_VERSION, phase, read_crash_log, save_crash_log
from .gateway import check_gateway, gateway_notes, gateway_pattern, gateway_step, refuse_if_running
from .restore import DEFAULT_UNIT, StepHook, check_state_dir
from .tree import exchange_paths, fsync_dir, hash_tree, tree_digest

__all__ = ["undo_restore"]


def _now() -> datetime:
    return datetime.now(UTC)


def undo_restore(*, state_dir: str | os.PathLike[str] | None = None, quarantine_dir: str | os.PathLike[str] | None = None,
                 service: Any = None, unit: str = DEFAULT_UNIT, stop_gateway: bool = False, execute: bool = False,
                 confirm: str | None = None, settings: Settings | None = None, on_step: StepHook | None = None,
                 now: datetime | None = None, process_pattern: str | None = None) -> ActionResult:
    """Undo the last restore of ``state_dir`` (or put ``quarantine_dir``/state back).

    Whatever is live is kept in ``<quarantine's parent>/corrupt-<YYYYmmdd-HHMMSS>-undo/state``.
    An interrupted restore is reverted too: before its swap only the staging copy is dropped.
    Like the restore, it refuses while the gateway runs; without a service manager it looks for a
    process matching ``process_pattern`` (default: the settings').
    """
    state = state_path(state_dir, settings)
    j = read_crash_log(state)
    if quarantine_dir is not None:
        q = Path(os.path.abspath(Path(quarantine_dir).expanduser()))
        if j is None or Path(j["quarantine"]) != q:
            j = {"version": CRASH_LOG_VERSION, "action": "restore", "status": "done", "plan_id": "manual",
                 "state_dir": str(state), "staging": str(state.parent / ".zcnb-staging-none"), "quarantine": str(q),
                 "backup": "", "unit": unit}
    if j is None:
        raise StateError(f"no restore of {state} is recorded (no journal)",
                         hint="pass the quarantine folder to put back (--quarantine-dir backups/corrupt-...)", path=str(state))
    undo = j.get("undo") or {}
    if j.get("status") == "undone":
        raise StateError(f"the restore of {state} was already undone", hint=f"the replaced state is in {undo.get('undo_dir')}", path=str(state))
    if j.get("status") == "failed":
        raise StateError(f"the last restore of {state} stopped before the swap: nothing to undo", path=str(state))
    ph = phase(j) if j.get("status") == "in_progress" else "quarantined"
    started = _now()
    if ph == "start":
        plan = Plan("undo-restore", str(state), (f"remove the unfinished staging copy {j['staging']} (a copy of the backup; {state} was never touched)",
                                                 "mark the restore as undone"))
        if not require_confirmation(plan, execute=execute, confirm=confirm):
            return _planned(plan, started, {"phase": ph})
        if os.path.lexists(j["staging"]):
            shutil.rmtree(j["staging"])
        j["status"] = "undone"
        save_crash_log(j, step="undone")
        return ActionResult("undo-restore", str(state), False, "ok", started_at=started, finished_at=_now(), commands=plan.steps,
                            plan_id=plan.plan_id, message=f"unfinished restore dropped; {state} was never changed", details={"phase": ph})
    qstate = Path(j["quarantine"]) / "state"
    old_src = Path(j["staging"]) if ph == "swapped" else qstate
    if not undo and not os.path.isdir(old_src):
        raise StateError(f"the quarantined state {old_src} is missing", hint="look for it in the backups folder (corrupt-*)", path=str(old_src))
    if undo:
        undo_dir = Path(undo["undo_dir"])
        undo_text = str(undo_dir)
    else:
        check_state_dir(state)
        undo_dir = Path()
        undo_text = f"{Path(j['quarantine']).parent}/corrupt-<YYYYmmdd-HHMMSS>-undo"
    old_hashes = undo.get("old_hashes") or hash_tree(old_src)
    pattern = gateway_pattern(process_pattern or j.get("process_pattern"), settings)
    steps = [gateway_step(service, unit, pattern, stop_gateway=stop_gateway)]
    if ph == "swapped":
        steps.append(f"finish the interrupted restore: move {old_src} -> {qstate}")
    steps += [f"swap {qstate} <-> {state} (atomic rename exchange)", f"move the replaced state -> {undo_text}/state",
              f"chmod 700 {state}", f"verify {state} matches the quarantined copy (sha256 tree {tree_digest(old_hashes)[:12]})"]
    if stop_gateway and service is not None:
        steps.append(f"start {unit} again if this undo stopped it")
    plan = Plan("undo-restore", str(state), tuple(steps))
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        gw = check_gateway(service, unit, pattern, fallback=True)
        return _planned(plan, started, {"phase": ph, "quarantine": str(qstate), "gateway_active": gw.running,
                                        "gateway_check": gw.to_dict()},
                        gateway_notes(gw, service, unit, stop_gateway=stop_gateway, action="undo"))
    commands: list[str] = []
    step = on_step or (lambda name: None)
    stopped = False
    if refuse_if_running(service, unit, pattern, stop_gateway=stop_gateway, action="undo"):
        commands += list(getattr(service.stop(unit), "commands", ()))
        stopped = True
    try:
        if not undo:
            stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
            undo_dir, n = Path(j["quarantine"]).parent / f"corrupt-{stamp}-undo", 1
            while os.path.lexists(undo_dir):
                n += 1
                undo_dir = Path(j["quarantine"]).parent / f"corrupt-{stamp}-undo-{n}"
            undo = {"undo_dir": str(undo_dir), "old_ino": os.lstat(old_src).st_ino, "old_hashes": old_hashes}
            j["undo"], j["status"] = undo, "undoing"
            save_crash_log(j, step="undo_planned")
        if ph == "swapped" and os.path.lexists(old_src):
            step("undo.quarantine")
            ensure_private_dir(qstate.parent)
            os.rename(old_src, qstate)
        moved = undo_dir / "state"
        live_is_old = os.path.lexists(state) and os.lstat(state).st_ino == undo["old_ino"]
        if not live_is_old:
            step("undo.swap")
            if not os.path.lexists(state):
                os.rename(qstate, state)
            elif not exchange_paths(qstate, state):
                ensure_private_dir(undo_dir)
                os.rename(state, moved)
                os.rename(qstate, state)
            fsync_dir(state.parent)
            save_crash_log(j, step="undo_swapped")
        if os.path.lexists(qstate) and not os.path.lexists(moved):
            step("undo.keep_replaced")
            ensure_private_dir(undo_dir)
            os.rename(qstate, moved)
            fsync_dir(undo_dir)
        step("undo.verify")
        os.chmod(state, 0o700)
        got = hash_tree(state)
        ok = got == old_hashes
        j["status"] = "undone" if ok else "undoing"
        save_crash_log(j, step="undone" if ok else "undo_verify_failed")
    except (OSError, StateError) as exc:
        reason = exc.message if isinstance(exc, StateError) else f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        extra = ""
        if stopped:
            if os.path.isdir(state):
                try:
                    service.start(unit)
                    extra = f" {unit} was stopped by this undo and has been started again."
                except (ZcnbError, OSError) as start_exc:
                    extra = f" {unit} was stopped by this undo and could NOT be started again ({start_exc}): start it by hand."
            else:
                extra = f" {unit} was stopped by this undo and is left stopped: {state} is missing until the undo is rerun."
        raise StateError(f"undo of the restore of {state} stopped: {reason}.{extra}",
                         hint="fix the cause, then run `zcnb restore undo` again: it continues where it stopped",
                         path=str(state)) from None
    if stopped:
        commands += list(getattr(service.start(unit), "commands", ()))
    if os.path.isdir(undo_dir):
        write_json(undo_dir / "restore-journal.json", j)
    msg = (f"put {j['quarantine']}/state back into {state}; the replaced state is kept in {moved}" if ok
           else f"{state} does not match the quarantined copy after the undo; inspect {moved}")
    return ActionResult("undo-restore", str(state), False, "ok" if ok else "failed", started_at=started, finished_at=_now(),
                        commands=plan.steps + tuple(commands), plan_id=plan.plan_id, message=msg,
                        details={"phase": ph, "replaced_kept_in": str(moved) if os.path.lexists(moved) else None,
                                 "verified": ok})


def _planned(plan: Plan, started: datetime, details: dict[str, Any], notes: list[str] | None = None) -> ActionResult:
    return ActionResult(plan.action, plan.target, True, "planned", started_at=started, finished_at=_now(),
                        commands=plan.steps, plan_id=plan.plan_id, details=details,
                        message=" ".join([f"dry run: nothing was changed. {apply_hint(plan.plan_id)} (undoes the restore)."]
                                         + (notes or [])))
