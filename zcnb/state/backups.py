"""Discover, list, resolve and create backups (runbook layout and plain ``~/.zeptoclaw`` copies)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..actions import ActionResult, Plan, apply_hint, require_confirmation
from ..config import Settings, load_settings
from ..exceptions import BackupInvalid, StateError, UnsafePath
from ..files import ensure_private_dir, write_private
from ..units import format_duration
from .crashlog import lock_state
from .staging import stage_copy
from .tree import file_sha256, fsync_dir, safe_child
from .verify import MANIFEST_NAMES, content_root, detect_layout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BackupInfo", "BackupList", "backups_path", "list_backups", "make_backup", "resolve_backup", "state_path"]

_STAMP = re.compile(r"(\d{8}-\d{6})")
QUARANTINE_PREFIX = "corrupt-"


def _created(path: Path) -> tuple[datetime, str]:
    m = _STAMP.search(path.name)
    if m:
        try:
            # The runbook names backups with `date +%Y%m%d-%H%M%S`: local time.
            return datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").astimezone(UTC), "name"
        except ValueError:
            pass
    return datetime.fromtimestamp(path.stat().st_mtime, UTC), "mtime"


@dataclass(frozen=True)
class BackupInfo:
    """One backup folder as found on disk."""

    name: str
    path: Path
    layout: str  # "runbook" | "zeptoclaw-home"
    content_path: Path
    created: datetime
    created_from: str  # "name" | "mtime"
    size_bytes: int
    file_count: int
    commit: str | None
    has_manifest: bool
    quarantine: bool
    age_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.path), "layout": self.layout, "content_path": str(self.content_path),
            "created": self.created.isoformat(), "created_from": self.created_from, "size_bytes": self.size_bytes,
            "file_count": self.file_count, "commit": self.commit, "has_manifest": self.has_manifest,
            "quarantine": self.quarantine, "age_s": self.age_s,
        }

    def _repr_markdown_(self) -> str:
        kind = "quarantine copy" if self.quarantine else "backup"
        return (f"{kind} `{self.name}` ({self.layout}), created {self.created.isoformat(timespec='seconds')} "
                f"({format_duration(self.age_s)} ago), {self.file_count} files, {self.size_bytes} bytes, "
                f"commit `{self.commit or 'unknown'}`, manifest: {'yes' if self.has_manifest else 'no'}")


class BackupList(list[BackupInfo]):
    """Backups newest first, with a table view for notebooks."""

    def latest(self) -> BackupInfo:
        """The newest backup that is not a quarantine (``corrupt-*``) copy."""
        for b in self:
            if not b.quarantine:
                return b
        raise StateError("no backup found (quarantine copies are never picked as 'latest')",
                         hint="check the backups folder or create one with `zcnb backup create`")

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        cols = ["name", "layout", "created", "age", "size_bytes", "file_count", "commit", "has_manifest", "quarantine"]
        rows = [{**{k: b.to_dict()[k] for k in cols if k not in ("created", "age")},
                 "created": b.created, "age": format_duration(b.age_s)} for b in self]
        return pd.DataFrame(rows, columns=cols)

    def to_dict(self) -> list[dict[str, Any]]:
        return [b.to_dict() for b in self]

    def _repr_html_(self) -> str:
        if not self:
            return "<p>No backups found.</p>"
        return str(self.to_frame().to_html(index=False, escape=True))


def _tree_size(path: Path) -> tuple[int, int]:
    size = count = 0
    stack = [os.fspath(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        size += e.stat(follow_symlinks=False).st_size
                        count += 1
        except OSError:
            continue  # an unreadable folder: verify_backup reports it
    return size, count


def _info(path: Path, now: datetime) -> BackupInfo | None:
    layout = detect_layout(path)
    if layout not in ("runbook", "zeptoclaw-home"):
        return None
    created, source = _created(path)
    size, count = _tree_size(path)
    commit = None
    if (path / "commit.txt").is_file():
        commit = (path / "commit.txt").read_text(encoding="utf-8", errors="replace").strip()[:64] or None
    return BackupInfo(
        name=path.name, path=path, layout=layout, content_path=content_root(path, layout), created=created,
        created_from=source, size_bytes=size, file_count=count, commit=commit,
        has_manifest=any((path / m).is_file() for m in MANIFEST_NAMES),
        quarantine=path.name.startswith(QUARANTINE_PREFIX), age_s=(now - created).total_seconds(),
    )


def backups_path(backups_dir: str | os.PathLike[str] | None, settings: Settings | None) -> Path:
    """``backups_dir`` with ``~`` expanded, else the configured one (settings are loaded only when needed)."""
    if backups_dir is not None:
        return Path(backups_dir).expanduser()
    return (settings or load_settings()).backups_dir


def state_path(state_dir: str | os.PathLike[str] | None, settings: Settings | None) -> Path:
    """``state_dir`` made absolute, else the configured one (settings are loaded only when needed)."""
    path = Path(state_dir).expanduser() if state_dir is not None else (settings or load_settings()).state_dir
    return Path(os.path.abspath(path))


def list_backups(backups_dir: str | os.PathLike[str] | None = None, *, settings: Settings | None = None,
                 now: datetime | None = None) -> BackupList:
    """All backups under ``backups_dir`` (default: the settings' ``backups`` folder), newest first."""
    base = backups_path(backups_dir, settings)
    if not base.is_dir():
        raise StateError(f"backups folder {base} does not exist", hint="pass --backups-dir / backups_dir, or set ZCNB_DATA_DIR", path=str(base))
    now = now or datetime.now(UTC)
    found = []
    for entry in sorted(base.iterdir()):
        # Hidden folders are zcnb's own work in progress; symlinked entries could lead anywhere.
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        info = _info(entry, now)
        if info is not None:
            found.append(info)
    found.sort(key=lambda b: (b.created, b.name), reverse=True)
    return BackupList(found)


def resolve_backup(backup: str | os.PathLike[str] | BackupInfo = "latest", *,
                   backups_dir: str | os.PathLike[str] | None = None, settings: Settings | None = None) -> BackupInfo:
    """``latest``, a folder name, or a path inside ``backups_dir`` -> :class:`BackupInfo`."""
    if isinstance(backup, BackupInfo):
        return backup
    base = backups_path(backups_dir, settings)
    text = os.fspath(backup)
    if text == "latest":
        return list_backups(base).latest()
    if os.sep in text or text.startswith("~"):
        candidate = Path(text).expanduser()
        candidate = candidate if candidate.is_absolute() else base / candidate
        real, real_base = os.path.realpath(candidate), os.path.realpath(base)
        if os.path.commonpath([real, real_base]) != real_base or real == real_base:
            raise UnsafePath(f"backup path {text} is not inside the backups folder {base}",
                             hint="restore only from the backups folder (pass --backups-dir if it lives elsewhere)", path=text)
        candidate = Path(real)
    else:
        candidate = safe_child(base, text)
        if candidate.is_symlink():
            raise UnsafePath(f"backup {text} is a symlink", hint="restore from a real folder inside the backups folder", path=text)
    if not candidate.is_dir():
        names = ", ".join(b.name for b in list_backups(base)[:5]) if base.is_dir() else "none"
        raise StateError(f"no backup named {text!r} in {base}", hint=f"newest backups: {names or 'none'}; or use 'latest'", path=text)
    info = _info(candidate, datetime.now(UTC))
    if info is None:
        raise BackupInvalid(f"{candidate} is not a recognised backup (no state/, no config.json)",
                            hint="pick one from `zcnb backup list`", path=str(candidate))
    return info


def _manifest_bytes(hashes: dict[str, str], prefix: str = "") -> bytes:
    """``sha256sum`` lines for every file of ``hashes`` (names kept byte for byte, even when not UTF-8)."""
    text = "".join(f"{h[2:]}  {prefix}{rel}\n" for rel, h in sorted(hashes.items()) if h.startswith("f:"))
    return text.encode("utf-8", "surrogateescape")


def make_backup(state_dir: str | os.PathLike[str] | None = None, *, backups_dir: str | os.PathLike[str] | None = None,
                binaries: Sequence[str | os.PathLike[str]] = (), commit: str | None = None,
                settings: Settings | None = None, execute: bool = False, confirm: str | None = None,
                now: datetime | None = None) -> ActionResult:
    """Create ``backups/<YYYYmmdd-HHMMSS>/{state/,<binaries>,commit.txt,MANIFEST.sha256}`` (dry run by default)."""
    if settings is None and (state_dir is None or backups_dir is None):
        settings = load_settings()  # once, for whichever folder was not given
    src = Path(state_dir).expanduser() if state_dir is not None else state_path(None, settings)
    base = backups_path(backups_dir, settings)
    if not src.is_dir():
        raise StateError(f"state folder {src} does not exist", hint="pass the live state dir (--state-dir)", path=str(src))
    bins = [Path(b).expanduser() for b in binaries]
    for b in bins:
        if not b.is_file():
            raise StateError(f"binary {b} does not exist", hint="pass the gateway binary path(s) with --binary", path=str(b))
    names = [b.name for b in bins]
    if len(set(names)) != len(names) or {"state", "commit.txt", *MANIFEST_NAMES} & set(names):
        raise StateError(f"binary names clash in the backup folder: {names}", hint="pass binaries with distinct names")
    steps = [f"mkdir -m 700 {base}/<YYYYmmdd-HHMMSS> (built as a hidden .zcnb-partial-* folder, renamed when complete)",
             f"copy {src} -> <backup>/state"]
    steps += [f"copy {b} -> <backup>/{b.name}" for b in bins]
    steps += [f"write <backup>/commit.txt ({commit or 'unknown'})", "write <backup>/MANIFEST.sha256 (sha256 of every file)"]
    plan = Plan("make-backup", str(src), tuple(steps))
    started = datetime.now(UTC)
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        return ActionResult("make-backup", str(src), True, "planned", started_at=started, finished_at=started,
                            commands=plan.steps, message=f"dry run: nothing was changed. {apply_hint(plan.plan_id)} (creates the backup).",
                            plan_id=plan.plan_id)
    with lock_state(Path(os.path.abspath(src)), action="backup"):
        final, files = _write_backup(src, base, bins, commit, now)
    return ActionResult("make-backup", str(src), False, "ok", started_at=started, finished_at=datetime.now(UTC),
                        commands=plan.steps, message=f"backup written to {final}", plan_id=plan.plan_id,
                        details={"backup": str(final), "files": files})


def _write_backup(src: Path, base: Path, bins: list[Path], commit: str | None, now: datetime | None) -> tuple[Path, int]:
    """Build the backup in a hidden ``.zcnb-partial-*`` folder and rename it when complete; a failed one is removed
    (it is only a copy: the state it was copied from is untouched)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    ensure_private_dir(base)
    final = base / stamp
    if os.path.lexists(final):
        raise StateError(f"backup {final} already exists", hint="wait a second and retry (names are per second)", path=str(final))
    partial = base / f".zcnb-partial-{stamp}-{secrets.token_hex(3)}"
    try:
        os.mkdir(partial, 0o700)
        copied = stage_copy(src, partial / "state", expected=None)
        hashes = {f"state/{rel}": h for rel, h in copied.hashes.items()}
        for b in bins:
            shutil.copy2(b, partial / b.name)
            hashes[b.name] = "f:" + file_sha256(partial / b.name)
        write_private(partial / "commit.txt", (commit or "unknown") + "\n")
        hashes["commit.txt"] = "f:" + file_sha256(partial / "commit.txt")
        write_private(partial / "MANIFEST.sha256", _manifest_bytes(hashes))
        os.rename(partial, final)
        fsync_dir(base)
    except (OSError, StateError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        reason = exc.message if isinstance(exc, StateError) else f"{exc.strerror or exc} ({exc.filename or ''})"
        raise StateError(f"backup failed: {reason}; the incomplete copy was removed ({src} was not changed)",
                         hint="free space or fix permissions, then retry", path=str(partial)) from None
    return final, sum(1 for h in hashes.values() if h.startswith("f:"))
