"""Revert a restore: put the quarantined state back, keeping what it replaces."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, apply_hint, require_confirmation
from ..config import Settings
from ..exceptions import StateError, UnsafePath, ZcnbError
from ..files import ensure_private_dir, write_json
from .apply import discard_staging
from .backups import state_path
from .crashlog import CRASH_LOG_VERSION, lock_state, phase, read_crash_log, refuse_if_locked, save_crash_log
from .gateway import check_gateway, gateway_notes, gateway_pattern, gateway_step, refuse_if_running
from .restore import DEFAULT_UNIT, StepHook, check_state_dir, unique_stamp
from .tree import exchange_paths, fsync_dir, hash_tree, tree_digest

__all__ = ["undo_restore"]


def _now() -> datetime:
    return datetime.now(UTC)


def undo_restore(*, state_dir: str | os.PathLike[str] | None = None, quarantine_dir: str | os.PathLike[str] | None = None,
                 service: Any = None, unit: str = DEFAULT_UNIT, stop_gateway: bool = False, execute: bool = False,
                 confirm: str | None = None, settings: Settings | None = None, on_step: StepHook | None = None,
                 now: datetime | None = None, process_pattern: str | None = None) -> ActionResult:
    """Undo the last restore of ``state_dir`` (or put ``quarantine_dir``/state back).

    Whatever is live is kept in ``<quarantine's parent>/corrupt-<YYYYmmdd-HHMMSS>-<id>-undo/state``.
    An interrupted restore is reverted too: before its swap only the staging copy is dropped.
    Like the restore, it refuses while the gateway runs; without a service manager it looks for a
    process matching ``process_pattern`` (default: the settings'), and while another process holds the
    state dir's lock.
    """
    state = state_path(state_dir, settings)
    if not execute:
        refuse_if_locked(state)
        return _undo(state, quarantine_dir, service, unit, stop_gateway=stop_gateway, execute=False, confirm=confirm,
                     settings=settings, on_step=on_step, now=now, process_pattern=process_pattern)
    with lock_state(state, action="restore undo") as held:
        res = _undo(state, quarantine_dir, service, unit, stop_gateway=stop_gateway, execute=True, confirm=confirm,
                    settings=settings, on_step=on_step, now=now, process_pattern=process_pattern)
        note = held.stale_note()
        return res if not note else dataclasses.replace(res, message=f"{res.message} ({note})")


def _undo(state: Path, quarantine_dir: str | os.PathLike[str] | None, service: Any, unit: str, *, stop_gateway: bool,
          execute: bool, confirm: str | None, settings: Settings | None, on_step: StepHook | None,
          now: datetime | None, process_pattern: str | None) -> ActionResult:
    j = _restore_to_undo(state, quarantine_dir, unit)
    ph = phase(j) if j.get("status") == "in_progress" else "quarantined"
    started = _now()
    if ph == "start":
        return _drop_unfinished_restore(j, state, started, execute=execute, confirm=confirm)
    u = _Undo.of(j, state, ph, pattern=gateway_pattern(process_pattern or j.get("process_pattern"), settings))
    plan = _undo_plan(u, service, unit, stop_gateway=stop_gateway)
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        gw = check_gateway(service, unit, u.pattern, fallback=True)
        return _planned(plan, started, {"phase": ph, "quarantine": str(u.qstate), "gateway_active": gw.running,
                                        "gateway_check": gw.to_dict()},
                        gateway_notes(gw, service, unit, stop_gateway=stop_gateway, action="undo"))
    commands: list[str] = []
    stopped = refuse_if_running(service, unit, u.pattern, stop_gateway=stop_gateway, action="undo")
    if stopped:
        commands += list(getattr(service.stop(unit), "commands", ()))
    try:
        ok = _swap_back(u, on_step or (lambda name: None), now=now)
    except (OSError, StateError) as exc:
        raise _undo_failed(exc, state, service, unit, stopped=stopped) from None
    if stopped:
        commands += list(getattr(service.start(unit), "commands", ()))
    return _undo_result(u, plan, started, commands, ok)


def _restore_to_undo(state: Path, quarantine_dir: str | os.PathLike[str] | None, unit: str) -> dict[str, Any]:
    """The restore's crash log (a manual one for a given quarantine folder); refuses what cannot be undone."""
    j = read_crash_log(state)
    if quarantine_dir is not None:
        q = Path(os.path.abspath(Path(quarantine_dir).expanduser()))
        real_q, real_state = os.path.realpath(q), os.path.realpath(state)
        if os.path.commonpath([real_q, real_state]) == real_state:
            raise UnsafePath(f"quarantine folder {q} is inside the state dir {state}",
                             hint="pass the corrupt-* folder in the backups folder that the restore moved the state to",
                             path=str(q))
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
    return j


def _drop_unfinished_restore(j: dict[str, Any], state: Path, started: datetime, *, execute: bool,
                             confirm: str | None) -> ActionResult:
    """A restore interrupted before its swap never touched the state: undoing it drops the staging copy."""
    plan = Plan("undo-restore", str(state), (f"remove the unfinished staging copy {j['staging']} (a copy of the backup; {state} was never touched)",
                                             "mark the restore as undone"))
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        return _planned(plan, started, {"phase": "start"})
    kept = discard_staging(j)  # deleted only when proven a copy of the backup, else moved into the quarantine folder
    if j.get("quarantine_made"):
        try:
            os.rmdir(j["quarantine"])  # the folder reserved for that restore, when still empty
        except OSError:
            pass
    j["status"] = "undone"
    save_crash_log(j, step="undone")
    return ActionResult("undo-restore", str(state), False, "ok", started_at=started, finished_at=_now(), commands=plan.steps,
                        plan_id=plan.plan_id, message=f"unfinished restore dropped; {state} was never changed.{kept}",
                        details={"phase": "start"})


@dataclass
class _Undo:
    """One undo: the crash log ``j``, where the old state is (``old_src``) and where the replaced one goes."""

    j: dict[str, Any]
    state: Path
    phase: str
    qstate: Path  # the quarantined old state
    old_src: Path  # where the old state is now (the staging path when the restore stopped after its swap)
    undo: dict[str, Any]  # recorded in the crash log once the undo starts: undo_dir, old_ino, old_hashes
    undo_dir: Path
    undo_text: str
    old_hashes: dict[str, str]
    pattern: str

    @classmethod
    def of(cls, j: dict[str, Any], state: Path, ph: str, *, pattern: str) -> _Undo:
        qstate = Path(j["quarantine"]) / "state"
        old_src = Path(j["staging"]) if ph == "swapped" else qstate
        undo = j.get("undo") or {}
        if not undo and not os.path.isdir(old_src):
            raise StateError(f"the quarantined state {old_src} is missing", hint="look for it in the backups folder (corrupt-*)", path=str(old_src))
        if undo:
            undo_dir, undo_text = Path(undo["undo_dir"]), str(undo["undo_dir"])
        else:
            check_state_dir(state)
            undo_dir, undo_text = Path(), f"{Path(j['quarantine']).parent}/corrupt-<YYYYmmdd-HHMMSS>-<id>-undo"
        return cls(j, state, ph, qstate, old_src, undo, undo_dir, undo_text, undo.get("old_hashes") or hash_tree(old_src),
                   pattern)


def _undo_plan(u: _Undo, service: Any, unit: str, *, stop_gateway: bool) -> Plan:
    steps = [gateway_step(service, unit, u.pattern, stop_gateway=stop_gateway)]
    if u.phase == "swapped":
        steps.append(f"finish the interrupted restore: move {u.old_src} -> {u.qstate}")
    steps += [f"swap {u.qstate} <-> {u.state} (atomic rename exchange)", f"move the replaced state -> {u.undo_text}/state",
              f"chmod 700 {u.state}", f"verify {u.state} matches the quarantined copy (sha256 tree {tree_digest(u.old_hashes)[:12]})"]
    if stop_gateway and service is not None:
        steps.append(f"start {unit} again if this undo stopped it")
    return Plan("undo-restore", str(u.state), tuple(steps))


def _swap_back(u: _Undo, step: StepHook, *, now: datetime | None) -> bool:
    """Put the quarantined state back and keep the replaced one; every step is idempotent. True = verified."""
    j, state, qstate = u.j, u.state, u.qstate
    if not u.undo:
        undo_dir = Path(j["quarantine"]).parent / f"corrupt-{unique_stamp(now)}-undo"
        u.undo_dir = undo_dir
        u.undo = {"undo_dir": str(undo_dir), "old_ino": os.lstat(u.old_src).st_ino, "old_hashes": u.old_hashes}
        j["undo"], j["status"] = u.undo, "undoing"
        save_crash_log(j, step="undo_planned")
    if u.phase == "swapped" and os.path.lexists(u.old_src):
        step("undo.quarantine")
        ensure_private_dir(qstate.parent)
        os.rename(u.old_src, qstate)
    moved = u.undo_dir / "state"
    live_is_old = os.path.lexists(state) and os.lstat(state).st_ino == u.undo["old_ino"]
    if not live_is_old:
        step("undo.swap")
        if not os.path.lexists(state):
            os.rename(qstate, state)
        elif not exchange_paths(qstate, state):
            ensure_private_dir(u.undo_dir)
            os.rename(state, moved)
            os.rename(qstate, state)
        fsync_dir(state.parent)
        save_crash_log(j, step="undo_swapped")
    if os.path.lexists(qstate) and not os.path.lexists(moved):
        step("undo.keep_replaced")
        ensure_private_dir(u.undo_dir)
        os.rename(qstate, moved)
        fsync_dir(u.undo_dir)
    step("undo.verify")
    os.chmod(state, 0o700)
    ok = hash_tree(state) == u.old_hashes
    j["status"] = "undone" if ok else "undoing"
    save_crash_log(j, step="undone" if ok else "undo_verify_failed")
    return ok


def _undo_failed(exc: OSError | StateError, state: Path, service: Any, unit: str, *, stopped: bool) -> StateError:
    """The error of a stopped undo; a gateway this undo stopped is started again while the state is in place."""
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
    return StateError(f"undo of the restore of {state} stopped: {reason}.{extra}",
                      hint="fix the cause, then run `zcnb restore undo` again: it continues where it stopped",
                      path=str(state))


def _undo_result(u: _Undo, plan: Plan, started: datetime, commands: list[str], ok: bool) -> ActionResult:
    moved = u.undo_dir / "state"
    if os.path.isdir(u.undo_dir):
        write_json(u.undo_dir / "restore-journal.json", u.j)
    msg = (f"put {u.j['quarantine']}/state back into {u.state}; the replaced state is kept in {moved}" if ok
           else f"{u.state} does not match the quarantined copy after the undo; inspect {moved}")
    return ActionResult("undo-restore", str(u.state), False, "ok" if ok else "failed", started_at=started, finished_at=_now(),
                        commands=plan.steps + tuple(commands), plan_id=plan.plan_id, message=msg,
                        details={"phase": u.phase, "replaced_kept_in": str(moved) if os.path.lexists(moved) else None,
                                 "verified": ok})


def _planned(plan: Plan, started: datetime, details: dict[str, Any], notes: list[str] | None = None) -> ActionResult:
    return ActionResult(plan.action, plan.target, True, "planned", started_at=started, finished_at=_now(),
                        commands=plan.steps, plan_id=plan.plan_id, details=details,
                        message=" ".join([f"dry run: nothing was changed. {apply_hint(plan.plan_id)} (undoes the restore)."]
                                         + (notes or [])))
