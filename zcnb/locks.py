"""Exclusive locks between zcnb processes: one restore per state dir, one appending sampler per CSV.

A lock is a small file next to what it protects, held with ``flock(LOCK_EX)`` on an open file
description: the kernel drops it when the holder exits, however it exits (SIGKILL included), so a dead
holder never blocks anybody. While held, the file says who holds it (pid, process start time, action,
start time), for the "another restore (pid N, started T) holds the lock" message. A clean release deletes
the file (while still holding the lock); a file that still names a holder when the lock is taken was left by
a holder that died (a *stale* lock): :attr:`HeldLock.stale` says who, so the caller can tell the user.

Because released files are deleted, a process may lock a file that was unlinked between its ``open`` and
its ``flock``: after locking, it checks that the path still names the inode it locked, and starts over if not.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .exceptions import ZcnbError

__all__ = ["HeldLock", "LockHolder", "acquire_lock", "lock_holder", "lock_open_file"]


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock: ``pid``, what for (``action``) and since when (``started``, ISO 8601 UTC)."""

    pid: int
    action: str
    started: str
    proc_start: float | None = None  # the holder's process start time (tells a reused pid apart)

    @property
    def alive(self) -> bool:
        """True while the process that took the lock still runs (a reused pid does not count)."""
        import psutil

        try:
            created = psutil.Process(self.pid).create_time()
        except psutil.NoSuchProcess:
            return False
        except (psutil.Error, OSError, ValueError):
            return _pid_exists(self.pid)
        return self.proc_start is None or abs(created - self.proc_start) < 1.0

    def describe(self) -> str:
        return f"{self.action} (pid {self.pid}, started {self.started})"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "action": self.action, "started": self.started, "proc_start": self.proc_start}


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(raw: bytes) -> LockHolder | None:
    try:
        data = json.loads(raw.decode("utf-8"))
        return LockHolder(int(data["pid"]), str(data["action"]), str(data["started"]),
                          float(data["proc_start"]) if data.get("proc_start") is not None else None)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096)


def lock_holder(path: str | os.PathLike[str]) -> LockHolder | None:
    """Who holds the lock at ``path`` right now (None: nobody, or only a dead holder's leftover).

    For dry runs and messages: reads what the holder wrote and checks that its process still runs. It does
    not touch the lock itself (a probe that took the lock, even briefly, could make a real holder fail).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        holder = _parse(_read_fd(fd))
    finally:
        os.close(fd)
    return holder if holder is not None and holder.alive else None


@dataclass
class HeldLock:
    """A lock this process holds; release it with :meth:`release` or use it as a context manager."""

    path: Path
    fd: int
    holder: LockHolder
    stale: LockHolder | None  # the holder named by a lock file left behind by a process that died

    def release(self) -> None:
        """Delete the lock file (still holding the lock, so nobody else can be using it), then drop the lock."""
        if self.fd < 0:
            return
        try:
            if _same_file(self.fd, self.path):
                os.unlink(self.path)
        except OSError:
            pass  # a read-only folder now: the next holder reports a stale lock, which is true enough
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1

    def stale_note(self) -> str:
        """A sentence for messages when a dead holder's lock was taken over ('' otherwise)."""
        if self.stale is None:
            return ""
        state = "no longer running" if not self.stale.alive else "running, but no longer holding it"
        return f"a stale lock of {self.stale.describe()}, {state}, was taken over"

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_lock(path: str | os.PathLike[str], *, action: str, target: str, error: type[ZcnbError],
                 hint: str = "wait until it has finished, then run the command again") -> HeldLock:
    """Take the exclusive lock at ``path`` without waiting, or raise ``error`` naming who holds it.

    ``action`` says what this process is doing (``restore``, ``restore undo``, ``sample --append``); ``target``
    names what is protected, for the message. The file is created 0600 when missing; a symlink is refused.
    """
    p = Path(path)
    me = LockHolder(os.getpid(), action, datetime.now(UTC).isoformat(timespec="seconds"), _own_start())
    while True:
        fd = _lock_fd(p, target, error)
        if fd is None:
            holder = _wait_for_holder(p)
            who = holder.describe() if holder is not None else "zcnb process (just starting)"
            raise error(f"another {who} holds the lock on {target}; nothing was changed",
                        hint=hint + f" (lock file {p})", path=str(p),
                        holder_pid=holder.pid if holder is not None else None)
        if _same_file(fd, p):
            break
        os.close(fd)  # we locked a file its holder deleted on release: take the new one
    stale = _parse(_read_fd(fd))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me.to_dict()).encode(), 0)
    except OSError:
        pass  # the lock is held all the same; only the message of a competing process is vaguer
    return HeldLock(p, fd, me, stale)


def _wait_for_holder(p: Path, timeout_s: float = 1.0) -> LockHolder | None:
    """The holder of the lock at ``p``; it writes who it is right after locking, so wait a moment for that."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        holder = lock_holder(p)
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.01)


def lock_open_file(fd: int, path: str | os.PathLike[str], *, action: str, error: type[ZcnbError],
                   hint: str = "wait until it has finished, then run the command again") -> None:
    """Take the exclusive lock of the open file ``fd`` itself (no lock file: nothing extra on a full disk), or
    raise ``error`` naming the holder, found in ``/proc/locks`` ("another sample (pid N, started T) ...").
    The lock lasts until ``fd`` is closed."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _flock_holder(fd)
        who = f"zcnb {action} process"
        if pid is not None:
            who = f"{action} (pid {pid}, started {_started(pid)})"
        raise error(f"another {who} holds the lock on {path}; nothing was written", hint=hint, path=str(path),
                    holder_pid=pid) from None


def _flock_holder(fd: int) -> int | None:
    """The pid holding a flock on ``fd``'s file, from ``/proc/locks`` (None when it cannot be told)."""
    st = os.fstat(fd)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if "->" in parts:
                    continue  # a waiter, not a holder
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == dev and parts[4].isdigit():
                    return int(parts[4])
    except OSError:
        pass
    return None


def _started(pid: int) -> str:
    import psutil

    try:
        return datetime.fromtimestamp(psutil.Process(pid).create_time(), UTC).isoformat(timespec="seconds")
    except (psutil.Error, OSError, ValueError):
        return "at an unknown time"


def _lock_fd(p: Path, target: str, error: type[ZcnbError]) -> int | None:
    """An fd holding the flock of ``p``, or None when another process holds it."""
    try:
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise error(f"cannot open the lock file {p} for {target}: {exc.strerror or exc}",
                    hint="check that the folder is writable and that the lock file is a plain file", path=str(p)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _same_file(fd: int, p: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(p, follow_symlinks=False)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _own_start() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001  the start time only refines messages
        return None
