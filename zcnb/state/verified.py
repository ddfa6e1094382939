"""Verify a backup once per restore: the dry run reads every byte, the confirmed run reuses that verification
while the backup folder is provably unchanged.

A dry run of a restore always runs the full :func:`zcnb.state.verify.verify_backup` (every file read, hashed,
JSON parsed, manifest checked) and, when the backup is valid, saves a *verification record*: the result
(hashes included) and the backup folder's fingerprint -- every entry's name, kind, size, inode, mtime and
ctime (a write, truncate, chmod or rename changes the ctime, and ``utime`` cannot set it back), the folder's
own device and inode. The confirmed run walks the backup (one ``lstat`` per entry, no reading) and reuses the
record when the fingerprint is equal; otherwise it verifies again in full.

Reuse never lets unverified bytes in: the staging copy is still hashed file by file and must equal the
recorded (verified) hashes, so a backup whose content changed without its fingerprint changing stops the
restore before the swap, exactly as a backup changed after a full verification does.

Records live in ``$XDG_CACHE_HOME/zcnb/verified/`` (default ``~/.cache``), one per state dir, mode 0600 in a
0700 folder; a record not owned by this user or writable by others is ignored. Records older than 30 days
are removed when a new one is written (at most once an hour).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import StateError
from .tree import content_hash, walk_tree
from .verify import VerifyResult, verify_backup

__all__ = ["RECORD_VERSION", "backup_fingerprint", "record_path", "verify_for_restore"]

RECORD_VERSION = 2  # 2: the hashes' algorithm is recorded (``result.algo``)
_MAX_AGE_S = 30 * 86400
_PRUNE_EVERY_S = 3600


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zcnb" / "verified"


def record_path(state: Path) -> Path:
    """Where the verification record for restores into ``state`` is kept."""
    key = hashlib.sha256(os.fsencode(os.path.realpath(state))).hexdigest()[:32]
    return _cache_dir() / f"{key}.json"


def backup_fingerprint(root: Path) -> dict[str, list[Any]] | None:
    """Name -> [kind, size, inode, mtime_ns, ctime_ns, link target, device] of every entry of the backup folder
    ``root`` (``.``: the folder's device and inode); None when it cannot be walked (the full verification reports
    why). A file's (device, inode, size, mtime, ctime) changes with any write to it: ctime is set by the kernel
    on every write, truncate, chmod or rename and cannot be set back by ``utime``."""
    try:
        st = os.stat(root)
        entries = walk_tree(root)
    except (OSError, StateError):
        return None
    fp: dict[str, list[Any]] = {".": ["d", 0, st.st_ino, st.st_dev, 0, ""]}
    for e in entries:
        fp[e.rel] = [e.kind, e.size, e.ino, e.mtime_ns, e.ctime_ns, e.target, e.dev]
    return fp


def _load(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    return data if isinstance(data, dict) and data.get("version") == RECORD_VERSION else None


def _result(rec: dict[str, Any], root: Path) -> VerifyResult | None:
    r = rec.get("result")
    if not isinstance(r, dict) or not isinstance(r.get("hashes"), dict):
        return None
    try:
        return VerifyResult(path=root, layout=r["layout"], content_path=Path(r["content_path"]),
                            warnings=tuple(r["warnings"]), file_count=int(r["file_count"]),
                            size_bytes=int(r["size_bytes"]), json_checked=int(r["json_checked"]),
                            manifest=r["manifest"], manifest_checked=int(r["manifest_checked"]), digest=r["digest"],
                            hashes=r["hashes"], algo=str(r["algo"]),
                            reused_from=str(rec.get("verified_at", "")) or "unknown")
    except (KeyError, TypeError, ValueError):
        return None


def _save(path: Path, root: Path, fp: dict[str, list[Any]], vr: VerifyResult, started: datetime) -> str:
    """Write the record; '' on success, else why not (the next run then verifies in full)."""
    rec = {"version": RECORD_VERSION, "backup": str(root), "verified_at": started.isoformat(), "fingerprint": fp,
           "result": {"layout": vr.layout, "content_path": str(vr.content_path), "warnings": list(vr.warnings),
                      "file_count": vr.file_count, "size_bytes": vr.size_bytes, "json_checked": vr.json_checked,
                      "manifest": vr.manifest, "manifest_checked": vr.manifest_checked, "digest": vr.digest,
                      "hashes": dict(vr.hashes), "algo": vr.algo}}
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_record(path, (json.dumps(rec, separators=(",", ":")) + "\n").encode("utf-8"))
        _prune(path.parent)
    except OSError as exc:
        return f"the verification record could not be saved ({exc.strerror or exc}): the confirmed run verifies again"
    return ""


def _write_record(path: Path, data: bytes) -> None:
    """Atomically (tmp + rename), mode 0600, without an fsync: the record is a cache; after a crash it is the old
    one, the new one, or an empty or unreadable file, which is ignored (the confirmed run then verifies in full)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(folder: Path) -> None:
    """Remove records older than 30 days; at most once an hour (a marker file's mtime says when it last ran), so a
    dry run does not stat every record of a large cache."""
    now = time.time()
    mark = folder / ".pruned"
    try:
        if 0 <= now - mark.stat().st_mtime < _PRUNE_EVERY_S:
            return
    except OSError:
        pass
    try:
        mark.touch(mode=0o600)
        os.utime(mark)
    except OSError:
        pass
    for p in folder.glob("*.json"):
        try:
            if now - p.stat().st_mtime > _MAX_AGE_S:
                p.unlink()
        except OSError:
            pass


def verify_for_restore(path: Path, state: Path, *, reuse: bool) -> tuple[VerifyResult, str]:
    """The backup at ``path`` verified for a restore into ``state``, and a note ('' when nothing to say).

    ``reuse=False`` (a dry run): full verification, saved as the record when valid. ``reuse=True`` (the confirmed
    run): the record when the backup's fingerprint is unchanged, else a full verification.
    """
    root = Path(os.path.abspath(path))
    rpath = record_path(state)
    before = backup_fingerprint(root)
    if reuse and before is not None:
        rec = _load(rpath)
        if rec is not None and rec.get("backup") == str(root) and rec.get("fingerprint") == before:
            vr = _result(rec, root)
            if vr is not None and vr.algo == content_hash():  # else: hashed another way (blake3 since removed)
                return vr, ""
    started = datetime.now(UTC)
    vr = verify_backup(root)
    note = ""
    if vr.ok and not reuse:
        if before is None:
            note = "the backup folder could not be walked for its fingerprint: the confirmed run verifies again"
        elif backup_fingerprint(root) != before:
            note = "the backup changed while it was verified: the confirmed run verifies again"
        else:
            note = _save(rpath, root, before, vr, started)
    return vr, note
