"""The steps of a confirmed restore, driven by its crash log: stop, stage, swap, quarantine, chmod, verify, start.

Every step is idempotent given :func:`zcnb.state.crashlog.phase` (read from the filesystem), so a restore
killed at any instant is finished by ``resume`` or reverted by ``undo``. The caller holds the state dir's lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan
from ..exceptions import StateError, ZcnbError
from ..files import ensure_private_dir, write_json
from .crashlog import crash_log_path, phase, save_crash_log
from .gateway import gateway_active, process_running
from .staging import Fingerprint, discard_copy, fingerprint, stage_copy, staged_matches
from .tree import CopyFile, exchange_paths, fsync_dir, hash_tree, sync_filesystem

__all__ = ["DEFAULT_UNIT", "STEPS", "StepHook", "discard_staging", "hash_algo", "run_restore"]

DEFAULT_UNIT = "zeptoclaw-gateway.service"
#: ``on_step(name)`` is called before each step; fault tests block in it to kill the process there.
StepHook = Callable[[str], None]
STEPS = ("stop_gateway", "stage", "stage.partial", "verify_staging", "swap", "quarantine", "chmod", "verify",
         "start_gateway", "done")


def _now() -> datetime:
    return datetime.now(UTC)


def run_restore(j: dict[str, Any], plan: Plan, started: datetime, *, service: Any, copy_file: CopyFile | None,
                on_step: StepHook | None, details: dict[str, Any], note: str = "") -> ActionResult:
    """Apply (or continue) the restore recorded in the crash log ``j``; ``note`` is added to the message."""
    try:
        done = _drive(j, service=service, copy_file=copy_file, on_step=on_step)
    except (OSError, StateError) as exc:
        raise _start_again_after_failure(j, service, _failed(j, exc)) from None
    details = {**details, **done, "quarantine": j["quarantine"], "journal": str(crash_log_path(Path(j["state_dir"])))}
    ok = done["verified"]
    msg = (f"restored {j['backup']} into {j['state_dir']}; previous state kept in {j['quarantine']}/state" if ok else
           f"restore finished but {j['state_dir']} does not match the backup: {done['mismatch'][:5]}; undo with `zcnb restore undo`")
    return ActionResult(plan.action, j["state_dir"], False, "ok" if ok else "failed", started_at=started,
                        finished_at=_now(), commands=plan.steps + tuple(done["commands"]), plan_id=plan.plan_id,
                        message=msg + (f" ({note})" if note else ""), details=details)


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


def hash_algo(j: dict[str, Any]) -> str:
    """The algorithm of the crash log's hashes (journals written before it was recorded: sha256)."""
    return str(j.get("hash_algo") or "sha256")


def discard_staging(j: dict[str, Any]) -> str:
    """Get rid of the restore's staging copy: deleted only when proven a copy of the backup, else moved into the
    quarantine folder. Returns a sentence for messages ('' when it was deleted or absent)."""
    state = Path(j["state_dir"])
    never = {j["state_ino"]} if j.get("state_ino") is not None else set()
    if os.path.lexists(state):
        never.add(os.lstat(state).st_ino)
    how, where = discard_copy(Path(j["staging"]), expected=j["hashes"], source=Path(j["content"]),
                              aside=Path(j["quarantine"]) / "unverified-staging", never=never, algo=hash_algo(j))
    return "" if how != "moved" else (f" The staging copy could not be proven a copy of the backup, so it was kept "
                                      f"in {where} (delete it once you have checked it).")


def _failed(j: dict[str, Any], exc: OSError | StateError) -> StateError:
    """Before the swap the live state is untouched: the staging copy goes (see :func:`discard_staging`)."""
    ph = phase(j)
    if isinstance(exc, StateError):
        reason, hint = exc.message, exc.hint or "fix the cause, then run the restore again"
        if ph != "start":
            return exc
    else:
        reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        hint = "free space / fix the cause, then run the restore again"
    if ph != "start":
        return StateError(f"restore interrupted after the swap: {reason}. The new state is in place, the previous one in {j['staging'] if ph == 'swapped' else j['quarantine']}",
                          hint="fix the cause, then `zcnb restore resume` (or `zcnb restore undo`)", path=j["state_dir"])
    kept = ""
    try:
        kept = discard_staging(j)
        if j.get("quarantine_made"):
            try:
                os.rmdir(j["quarantine"])  # only when empty: the folder reserved for this restore
            except OSError:
                pass
        j["status"], j["error"] = "failed", reason
        save_crash_log(j, step="aborted")
    except OSError:
        pass  # e.g. still a full disk: the crash log says in_progress; resume or undo finish from the filesystem
    return StateError(f"restore stopped before touching the state: {reason}. {j['state_dir']} is unchanged.{kept}",
                      hint=hint, path=j["state_dir"])


def _drive(j: dict[str, Any], *, service: Any, copy_file: CopyFile | None, on_step: StepHook | None) -> dict[str, Any]:
    """Run the remaining steps; every step is idempotent given :func:`phase`."""
    def step(name: str) -> None:
        if on_step is not None:
            on_step(name)

    state, staging, qdir = Path(j["state_dir"]), Path(j["staging"]), Path(j["quarantine"])
    commands: list[str] = []
    exchanged, staged = None, None
    ph = phase(j)
    if ph == "start":
        step("stop_gateway")
        commands += _stop_for_restore(j, service)
        staged = _stage(j, copy_file, step)
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
    return _verify_and_start(j, service, step, commands, exchanged, staged)


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


def _stage(j: dict[str, Any], copy_file: CopyFile | None, step: StepHook) -> Fingerprint:
    """Copy the backup next to the state dir, hashing as it copies, and check the copy; returns its fingerprint.

    A staging copy left by an interrupted run is used when it hashes equal to the backup, else discarded.
    """
    staging, expected, algo = Path(j["staging"]), j["hashes"], hash_algo(j)
    step("stage")
    copy, reused = None, None
    if os.path.lexists(staging):
        if hash_tree(staging, algo) == expected:
            if not sync_filesystem(staging):  # what the dead run wrote may not be on disk yet
                fsync_dir(staging)
            reused = fingerprint(staging)
        else:
            discard_staging(j)
    if not os.path.lexists(staging):
        def created() -> None:
            j["staging_ino"] = os.lstat(staging).st_ino
            save_crash_log(j, step="staging")

        copy = stage_copy(Path(j["content"]), staging, expected=expected, copy_file=copy_file,
                          after_first_file=lambda: step("stage.partial"), on_created=created, algo=algo)
    j["staging_ino"] = os.lstat(staging).st_ino
    save_crash_log(j, step="staged")
    step("verify_staging")
    fp = fingerprint(staging)
    bad = staged_matches(fp, copy) if copy is not None else sorted(set(fp.items()) ^ set((reused or {}).items()))
    if bad:
        raise StateError(f"the staging copy does not match the backup (changed after it was copied: {str(bad[:3])[:200]})",
                         hint="verify the backup again, then retry", path=str(staging))
    return fp


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


def _check_live(j: dict[str, Any], staged: Fingerprint | None) -> tuple[list[str], int]:
    """Does the state equal the backup? The staged tree of this run: same inodes, sizes and times as verified
    while staging (nothing changed since its bytes were hashed); otherwise (a resumed run): the hash (the
    journal's algorithm) of every file."""
    state, expected = Path(j["state_dir"]), j["hashes"]
    if staged is not None and os.lstat(state).st_ino == j.get("staging_ino"):
        live = fingerprint(state)
        bad = sorted(k for k in set(live) | set(staged) if live.get(k) != staged.get(k))
        return bad, sum(1 for v in live.values() if v[0] == "f")
    got = hash_tree(state, hash_algo(j))
    return (sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k)),
            sum(1 for h in got.values() if h.startswith("f:")))


def _verify_and_start(j: dict[str, Any], service: Any, step: StepHook, commands: list[str],
                      exchanged: bool | None, staged: Fingerprint | None) -> dict[str, Any]:
    """Check the state against the backup, start a gateway this restore stopped, and close the crash log."""
    step("verify")
    mismatch, files = _check_live(j, staged)
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
    return {"verified": not mismatch, "mismatch": mismatch, "files": files, "exchange": exchanged,
            "gateway_stopped": bool(j.get("stopped_gateway")), "gateway_started": started_again, "commands": commands}
