"""The staging copy of a restore, and the only way zcnb ever gets rid of one.

:func:`stage_copy` copies a verified backup and hashes every file while it is copied (each file read once
into a buffer, the bytes written are the bytes hashed, with the algorithm of the verified hashes: blake3, or
sha256 for older records); every hash is checked against the backup's verified hashes. Files are copied by a few threads; one
``syncfs`` makes the whole copy durable (an fsync per file where there is no ``syncfs``). :func:`fingerprint` records what was staged (names, kinds, sizes, mtimes, inodes), so the
state can be checked after the swap without reading every byte again.

:func:`discard_copy` deletes a tree only when its content proves the backup holds all of it (every file
equal to, or a truncated start of, the backup's file); anything else (which may be the only copy of an old
state) is moved aside, never deleted.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import StateError
from .tree import CopyFile, Entry, file_hash, fsync_dir, new_hash, run_parallel, sync_filesystem, walk_tree

__all__ = ["Fingerprint", "StagedCopy", "discard_copy", "fingerprint", "stage_copy", "staged_matches"]

_CHUNK = 1 << 20
#: rel -> (kind, size, inode, mtime_ns, link target): equal fingerprints = the very same, unchanged entries.
Fingerprint = dict[str, tuple[str, int, int, int, str]]


@dataclass(frozen=True)
class StagedCopy:
    """What :func:`stage_copy` wrote: hashes (``hash_tree`` format) of the bytes written, file count and bytes."""

    hashes: dict[str, str]
    files: int
    bytes: int
    mtimes: dict[str, int]  # rel -> source mtime_ns given to the copy


def stage_copy(src: Path, dst: Path, *, expected: Mapping[str, str] | None, copy_file: CopyFile | None = None,
               after_first_file: Callable[[], None] | None = None,
               on_created: Callable[[], None] | None = None, algo: str = "sha256") -> StagedCopy:
    """Copy ``src`` into the new folder ``dst``, hashing while copying; raise :class:`StateError` when the copy's
    hashes differ from ``expected`` (the backup changed since it was verified; None: nothing to compare).

    ``on_created()`` runs right after ``dst`` is made (the caller records its inode); ``after_first_file()``
    after the first file (fault tests stop there). ``copy_file(src, dst)`` replaces the built-in copy of one
    file (tests fill the disk with it); the copy is then hashed by reading it back.
    """
    entries = walk_tree(src)
    os.mkdir(dst, 0o700)
    if on_created is not None:
        on_created()
    hashes: dict[str, str] = {}
    for e in entries:
        d = os.path.join(dst, e.rel)
        if e.kind == "d":
            os.mkdir(d, 0o700)
            hashes[e.rel] = "d"
        elif e.kind == "l":
            os.symlink(e.target, d)
            hashes[e.rel] = "l:" + e.target
    files = [e for e in entries if e.kind == "f"]
    synced = copy_file is None and _has_syncfs()
    one = _copier(dst, copy_file, fsync_each=not synced, algo=algo)
    results = []
    if files:
        first = min(range(len(files)), key=lambda i: files[i].size)  # copied alone: the smallest
        results.append(one(files[first]))
        if after_first_file is not None:
            after_first_file()
        results += run_parallel(one, files[:first] + files[first + 1:], total_bytes=sum(e.size for e in files))
    total = 0
    for rel, digest, size in results:
        hashes[rel] = "f:" + digest
        total += size
    _folder_modes(src, dst, entries)
    if not (synced and sync_filesystem(dst)):
        for folder in [dst, *(Path(dst, e.rel) for e in entries if e.kind == "d")]:
            fsync_dir(folder)
    bad = [] if expected is None else sorted(k for k in set(hashes) | set(expected) if hashes.get(k) != expected.get(k))
    if bad:
        raise StateError(f"the staging copy does not match the backup (did the backup change?): {', '.join(bad[:5])}",
                         hint="verify the backup again, then retry", path=str(dst))
    return StagedCopy(hashes, len(files), total, {e.rel: e.mtime_ns for e in files})


def _has_syncfs() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "syncfs")
    except OSError:
        return False


def _copier(dst: Path, copy_file: CopyFile | None, *, fsync_each: bool,
            algo: str) -> Callable[[Entry], tuple[str, str, int]]:
    new_hash(algo)  # unavailable: fail before the first file

    def injected(e: Entry) -> tuple[str, str, int]:
        d = Path(dst, e.rel)
        assert copy_file is not None
        copy_file(Path(e.path), d)
        return e.rel, file_hash(d, algo), os.lstat(d).st_size

    def builtin(e: Entry) -> tuple[str, str, int]:
        digest, size = copy_hashed(e.path, os.path.join(dst, e.rel), fsync=fsync_each, algo=algo)
        return e.rel, digest, size

    return injected if copy_file is not None else builtin


def copy_hashed(src: str, dst: str, *, fsync: bool = False, algo: str = "sha256") -> tuple[str, int]:
    """Copy one regular file to the new path ``dst`` (never overwriting, never following links), keeping mode,
    times and extended attributes; returns the ``algo`` digest and size of the bytes written to ``dst``. A failed
    copy is removed.

    The source is read once into one buffer; those bytes are hashed and the same bytes written (the hash is of
    exactly what was staged, and no copy offload -- ``copy_file_range``, block cloning -- is involved). From
    1 MiB on, the file's write-back to disk is started at once, so the final flush overlaps the rest of the copy.
    (Copying with ``copy_file_range`` and reading the copy back to hash it read the bytes twice and was slower:
    4 x 32 MiB, two threads, blake3: 47 ms against 39 ms.)
    """
    fi = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fi)
        fo = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            digest, size = _hash_and_write(fi, fo, st.st_size, algo)
            if size >= _BIG:
                _start_writeback(fo, 0, 0)  # the rest (from the last full step on)
            _copy_xattrs(fi, fo)
            os.fchmod(fo, stat.S_IMODE(st.st_mode))
            os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
            if fsync:
                os.fsync(fo)
        except BaseException:
            os.close(fo)
            fo = -1
            os.unlink(dst)
            raise
        finally:
            if fo >= 0:
                os.close(fo)
    finally:
        os.close(fi)
    return digest, size


def _hash_and_write(fi: int, fo: int, size_hint: int, algo: str = "sha256") -> tuple[str, int]:
    """Read ``fi`` into one buffer, hash those bytes and write the same bytes to ``fo``."""
    h, size, flushed = new_hash(algo), 0, 0
    buf = bytearray(_CHUNK if size_hint >= _CHUNK else size_hint + 1)
    view = memoryview(buf)
    while True:
        n = os.readv(fi, [buf])
        if not n:
            break
        chunk = view[:n]
        h.update(chunk)
        size += n
        while chunk:
            chunk = chunk[os.write(fo, chunk):]
        if size - flushed >= _WRITEBACK_STEP:
            _start_writeback(fo, flushed, size - flushed)
            flushed = size
    return str(h.hexdigest()), size


_BIG = 1 << 20  # files from this size on have their write-back started as soon as they are written
_WRITEBACK_STEP = int(os.environ.get("ZCNB_WB", str(8 << 20)))  # ... and every 8 MiB while they are written
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages now (``sync_file_range(SYNC_FILE_RANGE_WRITE)``), so
    the final flush overlaps with the rest of the copy; a no-op where the call is missing."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # advisory: a failure here is caught by the final syncfs/fsync


@functools.cache
def _sync_file_range() -> Any:
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


def _copy_xattrs(fi: int, fo: int) -> None:
    try:
        names = os.listxattr(fi)
    except OSError:
        return  # a filesystem without extended attributes
    for name in names:
        try:
            os.setxattr(fo, name, os.getxattr(fi, name))
        except OSError:
            pass  # e.g. security.* not settable by this user: the bytes are what a restore must keep


def _folder_modes(src: Path, dst: Path, entries: list[Entry]) -> None:
    """Folder modes and times last (deepest first): a read-only folder must not block the copy into it."""
    for e in reversed(entries):
        if e.kind == "d":
            st = os.lstat(e.path)
            d = os.path.join(dst, e.rel)
            os.chmod(d, stat.S_IMODE(st.st_mode))
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def fingerprint(root: Path) -> Fingerprint:
    """Names, kinds, sizes, inodes and mtimes of every entry under ``root`` (one lstat each, no reading)."""
    return {e.rel: (e.kind, e.size, e.ino, e.mtime_ns, e.target) for e in walk_tree(root)}


def staged_matches(fp: Fingerprint, copy: StagedCopy) -> list[str]:
    """Entries of a staged tree's fingerprint that differ from what :func:`stage_copy` wrote (sizes, mtimes,
    links, names): a file changed or was added or removed after its bytes were hashed."""
    bad = []
    for rel in sorted(set(fp) | set(copy.hashes)):
        h, got = copy.hashes.get(rel), fp.get(rel)
        if h is None or got is None:
            bad.append(rel)
        elif h.startswith("f:"):
            if got[0] != "f" or got[3] != copy.mtimes.get(rel):
                bad.append(rel)
        elif h != ("d" if got[0] == "d" else "l:" + got[4]):
            bad.append(rel)
    return bad


def discard_copy(path: Path, *, expected: Mapping[str, str], source: Path, aside: Path,
                 never: set[int], algo: str = "sha256") -> tuple[str, Path | None]:
    """Get rid of zcnb's copy of a backup at ``path``: ``("removed", None)`` when proven a copy, else
    ``("moved", where)`` (moved into the new folder ``aside``/…); ``("absent", None)`` when there is nothing.

    Proven = not one of the inodes in ``never`` (the live and the old state), and every entry matches
    ``expected`` (the backup's verified hashes) or, for a file cut short by a crash, is the start of the
    backup's file at ``source``/rel. ``algo``: the hash of ``expected``.
    """
    if not os.path.lexists(path):
        return "absent", None
    if os.lstat(path).st_ino not in never and _proven(path, expected, source, algo):
        shutil.rmtree(path)
        return "removed", None
    os.makedirs(aside, mode=0o700, exist_ok=True)
    where = aside / f"{path.name}-{secrets.token_hex(3)}"
    os.rename(path, where)
    return "moved", where


def _proven(path: Path, expected: Mapping[str, str], source: Path, algo: str) -> bool:
    try:
        entries = walk_tree(path)
    except (OSError, StateError):
        return False
    for e in entries:
        want = expected.get(e.rel)
        if want is None:
            return False
        if e.kind == "d":
            if want != "d":
                return False
        elif e.kind == "l":
            if want != "l:" + e.target:
                return False
        elif not want.startswith("f:") or not _same_or_prefix(e, want[2:], source / e.rel, algo):
            return False
    return True


def _same_or_prefix(e: Entry, digest: str, original: Path, algo: str) -> bool:
    try:
        if e.size == os.lstat(original).st_size:
            return file_hash(e.path, algo) == digest
        if e.size > os.lstat(original).st_size:
            return False
        with open(e.path, "rb") as a, open(original, "rb") as b:
            while True:
                x = a.read(_CHUNK)
                if not x:
                    return True
                if b.read(len(x)) != x:
                    return False
    except OSError:
        return False
