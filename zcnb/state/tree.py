"""File-tree primitives for backups and restores: safe names, content hashes, copies, atomic swaps."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from ..exceptions import StateError, UnsafePath

__all__ = [
    "CopyFile",
    "copy_file_durable",
    "copy_tree",
    "exchange_paths",
    "file_sha256",
    "fsync_dir",
    "hash_tree",
    "nearest_existing",
    "safe_child",
    "same_filesystem",
    "symlink_problems",
    "tree_digest",
]

#: ``copy_file(src, dst)``: copy one regular file; injectable so tests can simulate a full disk.
CopyFile = Callable[[Path, Path], None]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def safe_child(base: Path, name: str, *, what: str = "backup") -> Path:
    """``base/name`` for a plain single-component ``name``; anything else raises :class:`UnsafePath`."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or ".." in Path(name).parts:
        raise UnsafePath(
            f"{what} name {name!r} is not a plain folder name inside {base}",
            hint="give just the folder name as listed by `zcnb backup list` (no '/', no '..'), or 'latest'",
            path=name,
        )
    return base / name


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor."""
    p = Path(os.path.abspath(path))
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def same_filesystem(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` (or their closest existing ancestors) are on one filesystem."""
    return os.stat(nearest_existing(a)).st_dev == os.stat(nearest_existing(b)).st_dev


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """Map of relative POSIX path -> ``f:<sha256>`` (file), ``l:<target>`` (symlink) or ``d`` (folder).

    Raises :class:`StateError` for special files (sockets, devices, FIFOs), which no state should hold.
    """
    root = Path(root)
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=_raise):
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "l:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "d"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = "f:" + file_sha256(p)
            else:
                raise StateError(f"{p} is not a regular file, folder or symlink", hint="remove it from the tree first", path=str(p))
    return out


def _raise(exc: OSError) -> None:
    raise exc


def tree_digest(hashes: Mapping[str, str]) -> str:
    """One sha256 over a :func:`hash_tree` map: equal digests = equal trees."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(f"{rel}\0{hashes[rel]}\n".encode())
    return h.hexdigest()


def symlink_problems(root: Path) -> list[str]:
    """Symlinks under ``root`` that are absolute or resolve outside ``root``.

    Each link is checked twice: its text taken literally (``a/../..``), and fully resolved the way the
    kernel would (``os.path.realpath`` from the link's folder, following chains of links), so
    ``p/q/x -> d/../..`` with ``p/q/d -> ../../t`` is caught although its text stays inside.
    """
    root_abs = os.path.abspath(root)
    root_real = os.path.realpath(root)
    problems = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                continue
            target = os.readlink(p)
            rel = os.path.relpath(p, root_abs)
            if os.path.isabs(target):
                problems.append(f"symlink {rel} -> {target} is absolute (it would point outside the restored state)")
                continue
            literal = os.path.normpath(os.path.join(os.path.abspath(dirpath), target))
            if os.path.commonpath([literal, root_abs]) != root_abs:
                problems.append(f"symlink {rel} -> {target} points outside the backup")
                continue
            resolved = os.path.realpath(os.path.join(os.path.realpath(dirpath), target))
            if os.path.commonpath([resolved, root_real]) != root_real:
                problems.append(f"symlink {rel} -> {target} resolves outside the backup (through other links, "
                                f"to {os.path.relpath(resolved, root_real)})")
    return problems


def copy_file_durable(src: Path, dst: Path) -> None:
    """Copy one file (never overwriting), fsync it, keep mode and times."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
    except BaseException:
        Path(dst).unlink(missing_ok=True)
        raise
    shutil.copystat(src, dst)


def copy_tree(src: Path, dst: Path, *, copy_file: CopyFile | None = None,
              after_first_file: Callable[[], None] | None = None) -> int:
    """Copy ``src`` into the new folder ``dst`` (must not exist); symlinks stay symlinks. Returns files copied."""
    copy = copy_file or copy_file_durable
    os.mkdir(dst, 0o700)
    count = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False, onerror=_raise):
        rel_dir = Path(dirpath).relative_to(src)
        for name in sorted(dirnames):
            s, d = Path(dirpath) / name, dst / rel_dir / name
            if os.path.islink(s):
                os.symlink(os.readlink(s), d)
            else:
                os.mkdir(d, 0o700)
        for name in sorted(filenames):
            s, d = Path(dirpath) / name, dst / rel_dir / name
            if os.path.islink(s):
                os.symlink(os.readlink(s), d)
                continue
            copy(s, d)
            count += 1
            if count == 1 and after_first_file is not None:
                after_first_file()
    # Folder modes last: a read-only folder in the source must not block the copy into it.
    for dirpath, dirnames, _ in os.walk(src, followlinks=False):
        for name in dirnames:
            s = Path(dirpath) / name
            if not os.path.islink(s):
                shutil.copystat(s, dst / Path(dirpath).relative_to(src) / name)
    fsync_dir(dst)
    return count


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames, creations) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange_paths(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False when the filesystem or kernel does not support it (the caller falls back
    to two renames); other failures raise ``OSError``.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))
