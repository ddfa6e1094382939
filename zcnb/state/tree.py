"""File-tree primitives for backups and restores: safe names, content hashes, copies, atomic swaps."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import StateError, UnsafePath

_blake3: Any
try:  # BLAKE3 (the ``blake3`` package): a cryptographic hash, ~5x sha256's speed here; optional
    import blake3 as _blake3
except ImportError:  # pragma: no cover - the sha256 fallback is tested by taking the module away
    _blake3 = None

__all__ = [
    "CONTENT_HASH",
    "CopyFile",
    "Entry",
    "content_hash",
    "copy_file_durable",
    "exchange_paths",
    "file_hash",
    "file_sha256",
    "fsync_dir",
    "hash_available",
    "hash_entries",
    "hash_tree",
    "nearest_existing",
    "new_hash",
    "read_hash",
    "read_hashes",
    "run_parallel",
    "safe_child",
    "same_filesystem",
    "symlink_problems",
    "sync_filesystem",
    "tree_digest",
    "walk_tree",
    "workers_for",
]

#: ``copy_file(src, dst)``: copy one regular file; injectable so tests can simulate a full disk.
CopyFile = Callable[[Path, Path], None]

_RENAME_EXCHANGE = 2
_CHUNK = 1 << 20
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


#: The hash a restore verifies a backup with and checks its staging copy against (recorded with the hashes, in
#: the verification record and the crash log): ``blake3`` when the package is installed, else ``sha256``.
#: Manifests (``sha256sum`` format) and the manifest that ``make_backup`` writes stay sha256.
CONTENT_HASH = "blake3" if _blake3 is not None else "sha256"


def content_hash() -> str:
    """:data:`CONTENT_HASH`, looked up when called (tests take blake3 away to check the sha256 fallback)."""
    return "blake3" if _blake3 is not None else "sha256"


def hash_available(algo: str) -> bool:
    """Can this process compute ``algo`` (``sha256`` always; ``blake3`` with the package)?"""
    return algo == "sha256" or (algo == "blake3" and _blake3 is not None)


def new_hash(algo: str = "sha256") -> Any:
    """A fresh hash object (``update``, ``hexdigest``) of ``algo``: ``sha256`` or ``blake3``."""
    if algo == "sha256":
        return hashlib.sha256()
    if algo == "blake3" and _blake3 is not None:
        return _blake3.blake3()
    raise StateError(f"hash algorithm {algo!r} is not available here",
                     hint="install the blake3 package (requirements.txt)" if algo == "blake3" else None)


def file_hash(path: str | os.PathLike[str], algo: str = "sha256") -> str:
    """Hex digest of ``algo`` over the file at ``path``."""
    h = new_hash(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return str(h.hexdigest())


def file_sha256(path: Path) -> str:
    return file_hash(path, "sha256")


@dataclass(frozen=True)
class Entry:
    """One entry of a tree walk: relative POSIX path, kind (``f`` file, ``d`` folder, ``l`` symlink), size."""

    rel: str
    path: str
    kind: str
    size: int = 0
    target: str = ""  # a symlink's text
    ino: int = 0
    mtime_ns: int = 0  # files only
    ctime_ns: int = 0  # files only: changes with every write, chmod or rename of the inode (not settable by utime)
    dev: int = 0  # files only: the device of the inode (with ``ino``, the file's identity)


def walk_tree(root: str | os.PathLike[str]) -> list[Entry]:
    """Every entry under ``root`` (not ``root`` itself), parents before children, names sorted; links not followed.

    Raises :class:`StateError` for special files (sockets, devices, FIFOs), which no state should hold, and
    ``OSError`` for an unreadable folder.
    """
    out: list[Entry] = []
    _walk(os.fspath(root), "", out)
    return out


def _walk(folder: str, rel_dir: str, out: list[Entry]) -> None:
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    subdirs = []
    for e in entries:
        rel = f"{rel_dir}{e.name}"
        if e.is_symlink():
            out.append(Entry(rel, e.path, "l", target=os.readlink(e.path), ino=e.inode()))
        elif e.is_dir(follow_symlinks=False):
            out.append(Entry(rel, e.path, "d", ino=e.inode()))
            subdirs.append((e.path, rel + "/"))
        elif e.is_file(follow_symlinks=False):
            st = e.stat(follow_symlinks=False)
            out.append(Entry(rel, e.path, "f", st.st_size, ino=e.inode(), mtime_ns=st.st_mtime_ns,
                             ctime_ns=st.st_ctime_ns, dev=st.st_dev))
        else:
            raise StateError(f"{e.path} is not a regular file, folder or symlink", hint="remove it from the tree first",
                             path=e.path)
    for path, rel in subdirs:
        _walk(path, rel, out)


def read_hashes(path: str, algos: tuple[str, ...] = ("sha256",), *, keep: bool = False) -> tuple[list[str], bytes | None]:
    """Digests of each of ``algos`` over the file at ``path`` (never following a symlink), all from one read,
    and, with ``keep``, its bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        hs, parts = [new_hash(a) for a in algos], []
        while True:
            buf = os.read(fd, _CHUNK)
            if not buf:
                break
            for h in hs:
                h.update(buf)
            if keep:
                parts.append(buf)
    finally:
        os.close(fd)
    return [str(h.hexdigest()) for h in hs], (b"".join(parts) if keep else None)


def read_hash(path: str, *, keep: bool = False, algo: str = "sha256") -> tuple[str, bytes | None]:
    """``algo`` digest of the file at ``path`` (never following a symlink) and, with ``keep``, its bytes."""
    digests, data = read_hashes(path, (algo,), keep=keep)
    return digests[0], data


def hash_entries(entries: list[Entry], *, on_bytes: Callable[[Entry, bytes], None] | None = None,
                 want: Callable[[Entry], bool] | None = None, algo: str = "sha256",
                 sha256_of: Callable[[Entry], bool] | None = None,
                 sha256_out: dict[str, str] | None = None) -> dict[str, str]:
    """:func:`hash_tree`'s map (``algo`` digests) for walked ``entries``; files are read once, in parallel when
    there is much to read.

    ``on_bytes(entry, data)`` receives the bytes of the files ``want(entry)`` selects (e.g. JSON to parse).
    ``sha256_out[rel]`` receives ``f:<sha256>`` of the files ``sha256_of(entry)`` selects (e.g. those a
    ``sha256sum`` manifest lists), computed from the same read.
    """
    out = {e.rel: ("d" if e.kind == "d" else "l:" + e.target) for e in entries if e.kind != "f"}
    files = [e for e in entries if e.kind == "f"]
    new_hash(algo)  # unavailable: fail before any thread starts

    def one(e: Entry) -> tuple[str, list[str], bytes | None]:
        keep = on_bytes is not None and want is not None and want(e)
        also = algo != "sha256" and sha256_out is not None and sha256_of is not None and sha256_of(e)
        digests, data = read_hashes(e.path, (algo, "sha256") if also else (algo,), keep=keep)
        return e.rel, digests, data

    results = run_parallel(one, files, total_bytes=sum(e.size for e in files))
    by_rel = {e.rel: e for e in files}
    for rel, digests, data in results:
        out[rel] = "f:" + digests[0]
        if sha256_out is not None and (algo == "sha256" or len(digests) > 1):
            sha256_out[rel] = "f:" + digests[-1]
        if data is not None and on_bytes is not None:
            on_bytes(by_rel[rel], data)
    return out


def hash_tree(root: Path, algo: str = "sha256") -> dict[str, str]:
    """Map of relative POSIX path -> ``f:<digest>`` (file; ``algo``, sha256 by default), ``l:<target>`` (symlink)
    or ``d`` (folder).

    Raises :class:`StateError` for special files (sockets, devices, FIFOs), which no state should hold.
    """
    return hash_entries(walk_tree(root), algo=algo)


_T = TypeVar("_T")
_R = TypeVar("_R")


def workers_for(count: int, total_bytes: int) -> int:
    """Threads worth using for ``count`` files of ``total_bytes``: several only for big files (sha256 and large
    reads release the GIL); many small files go faster one by one (parallel creates in one folder contend for its
    lock: 2,000 files of 2 KiB took 1.60 s with one thread, 2.03 s with two, 2.06 s with four on this machine)."""
    if count < 2 or total_bytes < count * (256 << 10):
        return 1
    return max(1, min(4, (os.cpu_count() or 1) * 2, count))


def run_parallel(fn: Callable[[_T], _R], items: list[_T], *, total_bytes: int) -> list[_R]:
    """``[fn(x) for x in items]``, spread over a few threads in batches; every call has ended when it returns.

    The first exception is raised only after all batches finished, so no thread still writes when the
    caller cleans up.
    """
    workers = workers_for(len(items), total_bytes)
    if workers == 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor, wait

    step = max(1, min(256, len(items) // (workers * 4) or 1))
    batches = [items[i:i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zcnb-tree") as pool:
        futures = [pool.submit(lambda b: [fn(x) for x in b], b) for b in batches]
        wait(futures)
    out: list[_R] = []
    for f in futures:
        out.extend(f.result())  # re-raises the first failure, in order
    return out


def tree_digest(hashes: Mapping[str, str]) -> str:
    """One sha256 over a :func:`hash_tree` map: equal digests = equal trees."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(f"{rel}\0{hashes[rel]}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def symlink_problems(root: Path, *, entries: list[Entry] | None = None) -> list[str]:
    """Symlinks under ``root`` that are absolute or resolve outside ``root`` (``entries``: its walk, if made).

    Each link is checked twice: its text taken literally (``a/../..``), and fully resolved the way the
    kernel would (``os.path.realpath`` from the link's folder, following chains of links), so
    ``p/q/x -> d/../..`` with ``p/q/d -> ../../t`` is caught although its text stays inside.
    """
    root_abs = os.path.abspath(root)
    root_real = os.path.realpath(root)
    links = [(e.path, e.target) for e in entries if e.kind == "l"] if entries is not None else _links(root)
    problems = []
    for p, target in links:
        dirpath = os.path.dirname(p)
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


def _links(root: Path) -> list[tuple[str, str]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                out.append((p, os.readlink(p)))
    return out


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


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames, creations) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: str | os.PathLike[str]) -> bool:
    """Flush everything written to ``path``'s filesystem (Linux ``syncfs``): one call instead of an fsync per file.

    Returns False where ``syncfs`` is missing (the caller then fsyncs file by file); an I/O error raises ``OSError``.
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int]
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            if err in (errno.ENOSYS, errno.EOPNOTSUPP):
                return False
            raise OSError(err, os.strerror(err), os.fspath(path))
    finally:
        os.close(fd)
    return True


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
