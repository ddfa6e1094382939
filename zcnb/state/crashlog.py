"""The restore journal: a crash log (a small JSON file next to the state dir, written atomically at every step)
that lets a rerun finish or revert a restore interrupted by a crash, a kill or a full disk."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import StateError
from ..files import read_json, write_private
from ..locks import HeldLock, acquire_lock, lock_holder

__all__ = ["CRASH_LOG_VERSION", "crash_log_path", "lock_path", "lock_state", "phase", "read_crash_log", "refuse_if_locked",
           "save_crash_log"]

CRASH_LOG_VERSION = 1


def crash_log_path(state_dir: Path) -> Path:
    """Next to the state dir (same filesystem, survives the swap): ``.zcnb-restore-<name>.json``."""
    return state_dir.parent / f".zcnb-restore-{state_dir.name}.json"


def read_crash_log(state_dir: Path) -> dict[str, Any] | None:
    p = crash_log_path(state_dir)
    if not p.exists():
        return None
    try:
        data = read_json(p)
    except (ValueError, OSError) as exc:
        raise StateError(f"restore journal {p} is unreadable ({exc})",
                         hint="inspect it by hand; the quarantine and staging folders it names are intact", path=str(p)) from None
    if not isinstance(data, dict) or data.get("version") != CRASH_LOG_VERSION:
        raise StateError(f"restore journal {p} has an unknown format", hint="inspect it by hand", path=str(p))
    return data


def save_crash_log(j: dict[str, Any], *, step: str | None = None) -> None:
    if step is not None:
        j["step"] = step
        j.setdefault("history", []).append([step, datetime.now(UTC).isoformat()])
    j["updated_at"] = datetime.now(UTC).isoformat()
    # Compact JSON: the C encoder (an indented dump runs the pure-Python one, ~10x slower on thousands of hashes).
    write_private(crash_log_path(Path(j["state_dir"])), json.dumps(j, separators=(",", ":"), default=str) + "\n")


def _ino(p: Path) -> int | None:
    return os.lstat(p).st_ino if os.path.lexists(p) else None


def phase(j: dict[str, Any]) -> str:
    """Where an interrupted restore stands, read from the filesystem (not trusted from the crash log).

    ``start``: the old state is live, staging absent or unverified; ``swapped``: the new state is live,
    the old one sits in the staging path; ``quarantined``: the old state is in the quarantine folder.
    """
    state, staging, qstate = Path(j["state_dir"]), Path(j["staging"]), Path(j["quarantine"]) / "state"
    if os.path.lexists(qstate):
        return "quarantined"
    staging_ino = j.get("staging_ino")
    if os.path.lexists(staging):
        return "swapped" if staging_ino is not None and _ino(state) == staging_ino else "start"
    if staging_ino is not None and _ino(state) == staging_ino:
        return "quarantined"
    return "start"


def lock_path(state_dir: Path) -> Path:
    """The lock of restores of ``state_dir``, next to its crash log: ``.zcnb-lock-<name>``."""
    return state_dir.parent / f".zcnb-lock-{state_dir.name}"


def lock_state(state_dir: Path, *, action: str) -> HeldLock:
    """Hold the lock of ``state_dir`` for a whole restore, resume, undo or backup; :class:`StateError` when
    another process holds it ("another restore (pid N, started T) holds the lock on ...").

    When the lock was busy but no holder could be named, the holder may have finished (and released it) before
    its record was read -- a restore of a small state takes a few milliseconds: try once more; a holder still
    there is then named, or the lock is taken."""
    hint = "wait until it has finished (its result is then in the restore journal), then run the command again"
    try:
        return acquire_lock(lock_path(state_dir), action=action, target=str(state_dir), error=StateError, hint=hint)
    except StateError as exc:
        if exc.context.get("holder_pid", 0) is not None:
            raise
    return acquire_lock(lock_path(state_dir), action=action, target=str(state_dir), error=StateError, hint=hint)


def refuse_if_locked(state_dir: Path) -> None:
    """Dry runs: refuse to plan while another process restores ``state_dir`` (the plan would be of a moving target)."""
    holder = lock_holder(lock_path(state_dir))
    if holder is not None:
        raise StateError(f"another {holder.describe()} holds the lock on {state_dir}: it is changing the state now",
                         hint="wait until it has finished, then run the dry run again", path=str(state_dir),
                         holder_pid=holder.pid)
