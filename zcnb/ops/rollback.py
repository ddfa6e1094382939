"""Rollback (runbook "Rollback"): stop all -> restore binaries (old ones kept) -> restore state -> start -> verify.

Binaries are restored here; the state part goes through :func:`zcnb.state.restore_state`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, apply_hint, require_confirmation
from ..config import Secret
from ..exceptions import BackupInvalid, ServiceError, StateError, UnsafePath
from ..files import ensure_private_dir, make_unique_dir
from ..incident import Incident
from ..service.base import ServiceManager
from ..service.control import check_health, record, restart_order
from ..state.tree import file_sha256, hash_tree, tree_digest

__all__ = ["backup_binaries", "plan_rollback", "resolve_rollback_backup", "rollback", "rollback_demo_tree"]

_NOT_BINARIES = {"commit.txt", "MANIFEST.sha256", "MANIFEST", "SHA256SUMS", "sha256sums.txt"}
_NAME_RE = re.compile(r"^\d{8}-\d{6}$")


def resolve_rollback_backup(backup: str, backups_dir: str | os.PathLike[str]) -> Path:
    """``latest`` or a ``YYYYmmdd-HHMMSS`` folder name inside ``backups_dir`` (nothing else: no paths, no ``..``)."""
    base = Path(backups_dir).expanduser()
    if not base.is_dir():
        raise StateError(f"backups folder {base} does not exist", hint="pass --backups-dir", path=str(base))
    if backup == "latest":
        names = sorted(p.name for p in base.iterdir() if _NAME_RE.match(p.name) and p.is_dir() and not p.is_symlink())
        if not names:
            raise StateError(f"no dated backups (YYYYmmdd-HHMMSS) in {base}", hint="make one with `zcnb backup`")
        backup = names[-1]
    if not _NAME_RE.match(backup):
        raise UnsafePath(f"backup name {backup!r} is not a dated folder name (YYYYmmdd-HHMMSS)",
                         hint="pass just the folder name, e.g. 20261128-100000, or 'latest'", path=backup)
    path = base / backup
    if path.is_symlink() or not path.is_dir():
        raise StateError(f"no backup folder {backup} in {base}",
                         hint="list them with `zcnb backup list`", path=str(path))
    return path


def backup_binaries(backup_dir: str | os.PathLike[str]) -> list[Path]:
    """The binaries in a backup folder: its top-level regular files other than commit.txt and manifests."""
    d = Path(backup_dir)
    return sorted(p for p in d.iterdir()
                  if p.is_file() and not p.is_symlink() and p.name not in _NOT_BINARIES and not p.name.startswith("."))


def _manifest(backup_dir: Path) -> dict[str, str]:
    for name in ("MANIFEST.sha256", "SHA256SUMS", "sha256sums.txt", "MANIFEST"):
        p = backup_dir / name
        if p.is_file():
            out = {}
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    out[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
            return out
    return {}


def _check_backup(backup_dir: Path) -> tuple[list[Path], str]:
    bins = backup_binaries(backup_dir)
    if not bins:
        present = ", ".join(sorted(p.name for p in backup_dir.iterdir())) or "nothing"
        raise BackupInvalid(f"backup {backup_dir.name} holds no binaries (it has: {present}); nothing was changed",
                            hint="pick a backup made with the gateway binary (`zcnb backup --binary PATH`)",
                            path=str(backup_dir))
    sums = _manifest(backup_dir)
    for b in bins:
        if b.name in sums and sums[b.name] != file_sha256(b):
            raise BackupInvalid(f"binary {b.name} in backup {backup_dir.name} does not match its checksum; nothing was changed",
                                hint="the backup is damaged: pick an older one", path=str(b))
    commit_file = backup_dir / "commit.txt"
    commit = commit_file.read_text(encoding="utf-8", errors="replace").strip() if commit_file.is_file() else "unknown"
    return bins, commit


def _live_text(target: Path) -> str:
    """What is at a live binary's path, for the plan: its sha256, or the symlink and what it points to."""
    if target.is_symlink():
        link = os.readlink(target)
        content = f"sha256 {file_sha256(target)[:16]}" if target.is_file() else "dangling"
        return f"symlink -> {link} ({content})"
    return f"sha256 {file_sha256(target)[:16]}"


def _keep(target: Path, kept: Path) -> str:
    """Keep what is at ``target`` in ``kept``: a regular file is copied (mode, times), a symlink as the link itself."""
    if target.is_symlink():
        link = os.readlink(target)
        os.symlink(link, kept)
        return f"kept the symlink {target} -> {link} as {kept} (the link itself; its target is not touched)"
    shutil.copy2(target, kept)
    return f"kept {target} as {kept}"


def _put_back(kept: Path, target: Path) -> None:
    """Undo an install from the kept copy (tmp + rename), recreating a kept symlink as a symlink."""
    if kept.is_symlink():
        tmp = target.with_name(f".{target.name}.zcnb-tmp")
        if os.path.lexists(tmp):
            tmp.unlink()
        os.symlink(os.readlink(kept), tmp)
        os.replace(tmp, target)
    else:
        _install(kept, target)


def plan_rollback(manager: ServiceManager, *, backup: str, backups_dir: str | os.PathLike[str],
                  bin_dir: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None,
                  restore_state: bool = True, order: Sequence[str] | None = None,
                  health_timeout_s: float = 30.0) -> Plan:
    """The exact rollback steps; raises (changing nothing) when the backup is unusable.

    The steps name the sha256 of every backup binary, of every live binary it replaces and the backup
    state's tree digest, so the plan id confirms exactly this content: if a binary or the backup's state
    changes after the dry run, the id changes and the old confirmation is refused.
    """
    bdir = resolve_rollback_backup(backup, backups_dir)
    bins, commit = _check_backup(bdir)
    dest = Path(bin_dir).expanduser()
    if not dest.is_dir():
        raise StateError(f"binary folder {dest} does not exist", hint="pass --bin-dir (where the live binaries are)",
                         path=str(dest))
    units = restart_order(manager, order)
    steps = [c for u in reversed(units) for c in manager.commands_for("stop", u)]
    keep = Path(backups_dir).expanduser() / "replaced-<timestamp>"
    for b in bins:
        live = dest / b.name
        if os.path.lexists(live):
            how = "the link itself" if live.is_symlink() else "cp -p"
            steps.append(f"keep {live} ({_live_text(live)}) as {keep / b.name} ({how})")
        steps.append(f"install {b} (sha256 {file_sha256(b)[:16]}) -> {live} (tmp + rename; sha256 checked)")
    if restore_state and (bdir / "state").is_dir():
        digest = tree_digest(hash_tree(bdir / "state"))
        steps.append(f"zcnb.state.restore_state({bdir.name}, sha256 tree {digest[:16]}) -> "
                     f"{state_dir or 'the configured state dir'} (current state quarantined, never deleted)")
    elif restore_state:
        steps.append(f"state: backup {bdir.name} has no state/ folder: state left as it is")
    for u in units:
        steps += list(manager.commands_for("start", u))
        if manager.health_check(u) is not None:
            steps.append(f"verify health of {u} (timeout {health_timeout_s:.0f} s)")
    return Plan("rollback", f"{bdir.name} (commit {commit})", tuple(steps))


def _now() -> datetime:
    return datetime.now(UTC)


def _install(src: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.zcnb-tmp")
    if os.path.lexists(tmp):
        tmp.unlink()  # zcnb's own leftover temp name; never write through a link left there
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    if file_sha256(dest) != file_sha256(src):
        raise StateError(f"{dest} differs from {src} after the copy", hint="check the disk", path=str(dest))


def _restore_state(backup: str, backups_dir: Path, state_dir: Path | None, manager: ServiceManager,
                   unit: str) -> ActionResult:
    from .. import state as zstate  # written by the state stage; imported late so the CLI stays light

    # The rollback stopped the services already; the manager lets restore_state confirm that the gateway is
    # stopped (without one it would look for any process matching the gateway's name on the host).
    kwargs: dict[str, Any] = {"backups_dir": backups_dir, "service": manager, "unit": unit}
    if state_dir is not None:
        kwargs["state_dir"] = state_dir
    dry = zstate.restore_state(backup, **kwargs)
    res: ActionResult = zstate.restore_state(backup, execute=True, confirm=dry.plan_id, **kwargs)
    return res


def rollback(manager: ServiceManager, *, backup: str, backups_dir: str | os.PathLike[str],
             bin_dir: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None,
             restore_state: bool = True, execute: bool = False, confirm: str | None = None,
             token: Secret | None = None, order: Sequence[str] | None = None, timeout_s: float = 30.0,
             health_timeout_s: float = 30.0, incident: Incident | str | os.PathLike[str] | None = None) -> ActionResult:
    """Roll back binaries (+ state) to ``backup``; dry run unless ``execute`` and ``confirm`` = the plan id."""
    plan = plan_rollback(manager, backup=backup, backups_dir=backups_dir, bin_dir=bin_dir, state_dir=state_dir,
                         restore_state=restore_state, order=order, health_timeout_s=health_timeout_s)
    started = _now()
    units = restart_order(manager, order)
    first = check_health(manager, units[0], token=token, timeout_s=2.0, once=True)
    before = first.summary() if first else None
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        res = ActionResult("rollback", plan.target, True, "planned", started_at=started, finished_at=_now(),
                           commands=plan.steps, plan_id=plan.plan_id, health_before=before,
                           message=f"dry run: nothing was changed. {apply_hint(plan.plan_id)}")
        record(incident, res)
        return res
    bdir = resolve_rollback_backup(backup, backups_dir)
    bins, commit = _check_backup(bdir)
    run = _Rollback(bdir, commit, replaced_dir=bdir.parent / f"replaced-{started.strftime('%Y%m%d-%H%M%S')}")
    try:
        _stop_all(manager, units, run, timeout_s=timeout_s)
        # Named per second: a second rollback in the same second gets replaced-<ts>-2, never the first one's folder.
        run.replaced_dir = make_unique_dir(run.replaced_dir)
        run.details["replaced_dir"] = str(run.replaced_dir)
        _install_binaries(bins, Path(bin_dir).expanduser(), run)
        if restore_state and (bdir / "state").is_dir():
            _restore_backup_state(bdir, Path(state_dir) if state_dir else None, manager, units[0], run)
        _start_all(manager, units, run, token=token, timeout_s=timeout_s, health_timeout_s=health_timeout_s)
    except (ServiceError, StateError) as exc:
        run.outcome = "failed" if not run.installed else "partial"
        run.message = f"{exc}. Done so far: {'; '.join(run.done) or 'nothing'}"
    after = run.details["health"].get(units[0])
    res = ActionResult("rollback", plan.target, False, run.outcome, started_at=started, finished_at=_now(),
                       commands=tuple(run.done), plan_id=plan.plan_id, health_before=before,
                       health_after=f"{after['state']} after {after['elapsed_s']:.1f} s" if after else None,
                       message=run.message or f"rolled back to {bdir.name} (commit {commit}); replaced binaries kept in "
                                              f"{run.replaced_dir}", details=run.details)
    record(incident, res)
    return res


@dataclass
class _Rollback:
    """What an applied rollback did so far (for its result, also when it stops half-way)."""

    backup: Path
    commit: str
    replaced_dir: Path  # where the replaced binaries are kept
    done: list[str] = field(default_factory=list)
    installed: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"
    message: str = ""

    def __post_init__(self) -> None:
        self.details.update(backup=str(self.backup), commit=self.commit, health={})


def _stop_all(manager: ServiceManager, units: Sequence[str], run: _Rollback, *, timeout_s: float) -> None:
    for u in reversed(units):
        out = manager.stop(u, timeout_s=timeout_s)
        run.done += list(out.commands) + [f"WARNING: {w}" for w in out.warnings]


def _install_binaries(bins: Sequence[Path], dest: Path, run: _Rollback) -> None:
    """Keep each live binary, install the backup's; on an error put the kept ones back (never a mix of versions)."""
    try:
        for b in bins:
            target = dest / b.name
            if os.path.lexists(target):
                run.done.append(_keep(target, run.replaced_dir / b.name))
            _install(b, target)
            run.installed.append(target)
            run.done.append(f"installed {b} -> {target}")
    except OSError as exc:
        for t in run.installed:
            if os.path.lexists(run.replaced_dir / t.name):
                _put_back(run.replaced_dir / t.name, t)
        raise StateError(f"binary restore failed ({exc.strerror or exc}); the previous binaries were put back, "
                         "services are stopped", hint="fix the cause, then rerun the rollback", path=str(dest)) from None


def _restore_backup_state(bdir: Path, state_dir: Path | None, manager: ServiceManager, unit: str,
                          run: _Rollback) -> None:
    sres = _restore_state(bdir.name, bdir.parent, state_dir, manager, unit)
    run.details["state_restore"] = sres.to_dict()
    run.done.append(f"state restored from {bdir.name}: {sres.outcome}")
    if not sres.ok:
        raise StateError(f"state restore {sres.outcome}: {sres.message}; binaries ARE rolled back, services stopped",
                         hint="see zcnb restore / stage 04, then start the services")


def _start_all(manager: ServiceManager, units: Sequence[str], run: _Rollback, *, token: Secret | None,
               timeout_s: float, health_timeout_s: float) -> None:
    """Start in order and check each unit's health; stop at the first unhealthy one (outcome ``partial``)."""
    for u in units:
        out = manager.start(u, timeout_s=timeout_s)
        run.done += list(out.commands)
        h = check_health(manager, u, token=token, timeout_s=health_timeout_s)
        if h is not None:
            run.details["health"][u] = h.to_dict()
            if not h.healthy:
                run.outcome, run.message = "partial", f"rolled back, but {u} is {h.state} after start ({h.detail}). {h.advice}"
                return


def rollback_demo_tree(dest: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """A temp copy of the state stage's bundled sample tree plus a live ``bin/`` folder (for stage 06's replay).

    Returns ``{"root", "state_dir", "backups_dir", "bin_dir"}``; the live binary is the newest backup's binary
    with a different version line, so a rollback visibly replaces it.
    """
    from ..state import copy_sample_data

    root = copy_sample_data(dest)
    bin_dir = ensure_private_dir(root / "bin")
    live = bin_dir / "zeptoclaw-gateway"
    live.write_text("#!/bin/sh\n# live build (sample data for zcnb)\necho \"zeptoclaw-gateway ffffeeee00 (live)\"\n",
                    encoding="utf-8")
    live.chmod(0o700)
    return {"root": root, "state_dir": root / "state", "backups_dir": root / "backups", "bin_dir": bin_dir}
