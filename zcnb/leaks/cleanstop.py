"""Make a gateway that ignores SIGTERM until accept() fails exit cleanly (its leak report is printed then).

The real ZeptoClaw gateway's accept loop retries on EINTR and looks at its shutdown flag only when accept()
*fails*; a connection after SIGTERM is served normally. Two ways make accept() fail from outside:

* ``shutdown-socket`` (preferred): take a duplicate of the gateway's listening socket with ``pidfd_getfd``
  (Linux >= 5.6, ptrace permission: same user or root) and ``shutdown(SHUT_RDWR)`` it. accept() returns EINVAL,
  the loop sees the flag and ends; nothing else in the process is touched, so its own state save still runs.
* ``fd-limit`` (fallback): lower the process's RLIMIT_NOFILE soft limit below the fds it holds, then one
  connection: accept() fails with EMFILE. The limit is restored as soon as the process has exited or the loop
  has ended, but the gateway's state save (which opens a file) fails with ``error.ProcessFdQuotaExceeded``.

Either way SIGTERM goes first and its delivery is checked (``/proc/PID/status`` pending masks) before accept()
is made to fail: a failing accept() without the flag set makes the real gateway spin printing ``Accept error``.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ConfigError

__all__ = ["METHODS", "CleanStop", "clean_stop", "listening_fds", "pidfd_getfd_available", "state_save_outcome"]

METHODS = ("auto", "shutdown-socket", "fd-limit", "connect")
_SYS_PIDFD_GETFD = 438  # same number on every Linux architecture (unified syscall table since 5.x)
_STATE_SAVE = re.compile(r"Failed to save state on shutdown: (error\.\w+)")


@dataclass(frozen=True)
class CleanStop:
    """How the stop went: the method that ran, whether the process exited, and when."""

    pid: int
    method: str  # the method that ran: shutdown-socket | fd-limit | connect | sigterm (exited on it alone) | none
    exited: bool
    waited_s: float
    steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    fallback_reason: str | None = None  # why the preferred method did not run
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "method": self.method, "exited": self.exited, "waited_s": round(self.waited_s, 3),
                "steps": list(self.steps), "notes": list(self.notes), "fallback_reason": self.fallback_reason,
                **self.details}


def _alive(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _socket_inodes(pid: int, port: int | None) -> set[str]:
    """Inodes of TCP sockets in LISTEN state (on ``port`` when given) in ``pid``'s network namespace."""
    out: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if len(f) < 10 or f[3] != "0A":
                        continue
                    if port is None or int(f[1].rsplit(":", 1)[1], 16) == port:
                        out.add(f[9])
        except OSError:
            continue
    return out


def listening_fds(pid: int, port: int | None = None) -> list[int]:
    """The fd numbers of ``pid``'s listening TCP sockets (on ``port`` when given), from /proc."""
    inodes = _socket_inodes(pid, port)
    fds: list[int] = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m and m.group(1) in inodes:
            fds.append(int(name))
    return sorted(fds)


def pidfd_getfd_available() -> str | None:
    """None when pidfd_getfd can be used here, else why not."""
    if not hasattr(os, "pidfd_open"):
        return "os.pidfd_open is missing (needs Linux >= 5.3 and Python >= 3.9)"
    rel = os.uname().release.split(".")
    try:
        if (int(rel[0]), int(re.match(r"\d+", rel[1]).group())) < (5, 6):  # type: ignore[union-attr]
            return f"the kernel is {os.uname().release}; pidfd_getfd needs Linux >= 5.6"
    except (ValueError, AttributeError, IndexError):
        pass
    return None


def _dup_from(pid: int, fd: int) -> socket.socket:
    """A socket object on a duplicate of ``pid``'s ``fd`` (pidfd_getfd). Raises OSError."""
    pidfd = os.pidfd_open(pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        new = libc.syscall(ctypes.c_long(_SYS_PIDFD_GETFD), ctypes.c_int(pidfd), ctypes.c_int(fd), ctypes.c_uint(0))
        if new < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return socket.socket(fileno=int(new))
    finally:
        os.close(pidfd)


def _signal_pending(pid: int, sig: int) -> bool | None:
    """True while ``sig`` is still pending for ``pid`` (not yet handled); None when unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            masks = {k: v.strip() for k, _, v in (line.partition(":") for line in fh) if k in ("SigPnd", "ShdPnd")}
    except OSError:
        return None
    bit = 1 << (sig - 1)
    return any(int(v, 16) & bit for v in masks.values()) if masks else None


def _wait_delivered(pid: int, sig: int, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = _signal_pending(pid, sig)
        if pending is None:
            time.sleep(0.1)
            return True
        if not pending:
            time.sleep(0.02)  # the handler runs right after the kernel dequeues the signal
            return True
        time.sleep(0.01)
    return False


def _connect(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass  # connect and close: a request (even a 401) could itself leak on the real gateway
        return None
    except OSError as exc:
        return f"connect to {host}:{port} failed ({exc.strerror or exc})"


def _wait_exit(pid: int, deadline: float, on_tick: Callable[[], None] | None = None) -> bool:
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        if on_tick is not None:
            on_tick()
        time.sleep(0.02)
    return not _alive(pid)


_ACCEPT_SYSCALLS = {"x86_64": {"43", "288"}, "aarch64": {"202", "242"}}


def _in_accept(pid: int) -> bool | None:
    """True while ``pid``'s main thread is blocked in accept()/accept4(); None when that cannot be read."""
    import platform

    nums = _ACCEPT_SYSCALLS.get(platform.machine())
    try:
        with open(f"/proc/{pid}/syscall", encoding="ascii") as fh:
            first = fh.read().split(" ", 1)[0].strip()
    except OSError:
        first = ""
    if nums and first and first != "running":
        return first in nums
    try:
        with open(f"/proc/{pid}/wchan", encoding="ascii") as fh:
            return "accept" in fh.read()
    except OSError:
        return None


def _wait_while_writing(pid: int, hard_deadline: float, idle_s: float = 15.0) -> tuple[bool, float | None]:
    """Wait while ``pid`` is out of accept() and its read+write count keeps growing (it reads its debug info to
    symbolize, then writes a record); (exited, extra seconds waited), or (False, None) when it is idle (blocked
    in accept(), or no read/write for ``idle_s``: generous, a loaded host stalls it for seconds)."""
    t0 = time.monotonic()
    last = _writes(pid, "both")
    if last is None or _in_accept(pid):
        return not _alive(pid), None
    quiet_since = time.monotonic()
    progressed = False
    outputs = _output_files(pid)
    while time.monotonic() < hard_deadline:
        if not _alive(pid):
            return True, time.monotonic() - t0
        now = _writes(pid, "both")
        if now is not None and now != last:
            if _spinning_on_accept(outputs):
                break  # the output it writes is its accept loop's errors (SIGTERM never seen), not a report
            last, quiet_since, progressed = now, time.monotonic(), True
        elif time.monotonic() - quiet_since > idle_s or _in_accept(pid):
            break
        time.sleep(0.05)
    return not _alive(pid), (time.monotonic() - t0) if progressed else None


_ACCEPT_ERROR = b"Accept error: "  # http_server.zig prints this when accept() fails and the loop goes on


def _output_files(pid: int, most: int = 16) -> dict[str, int]:
    """The regular files the process has open for writing (its log: stderr redirected, or a log file it
    opened itself): path -> size now."""
    out: dict[str, int] = {}
    try:
        fds = sorted(os.listdir(f"/proc/{pid}/fd"), key=lambda x: int(x) if x.isdigit() else 1 << 30)
    except OSError:
        return out
    for fd in fds:
        try:
            path = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as fh:
                flags = next((int(line.split()[1], 8) for line in fh if line.startswith("flags:")), 0)
            st = os.stat(path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode) and flags & 0o3 in (os.O_WRONLY, os.O_RDWR):
            out[path] = st.st_size
            if len(out) >= most:
                break
    return out


def _spinning_on_accept(outputs: dict[str, int]) -> bool:
    """Whether what was appended to these files since last time holds accept() errors (read at most 64 KiB
    each); updates the sizes."""
    seen = False
    for path, size in list(outputs.items()):
        try:
            with open(path, "rb") as fh:
                end = fh.seek(0, os.SEEK_END)
                if end <= size:
                    continue
                fh.seek(max(size, end - 65536))
                seen = seen or _ACCEPT_ERROR in fh.read(end - max(size, end - 65536))
                outputs[path] = end
        except OSError:
            continue
    return seen


def _writes(pid: int, field: str = "syscw") -> int | None:
    """``syscw`` of /proc/PID/io (write syscalls so far; ``field="both"``: reads + writes); None when unreadable."""
    names = ("syscr:", "syscw:") if field == "both" else (f"{field}:",)
    total = None
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(names):
                    total = (total or 0) + int(line.split()[1])
    except (OSError, ValueError):
        return None
    return total


def _fd_limit_wait(proc: Any, old: tuple[int, int], host: str, port: int, deadline: float,
                   notes: list[str]) -> tuple[bool, int]:
    """Connect while the limit is low, and give the limit back the moment the process has left accept():
    the leak report's stack traces need to open the binary's debug info (with the limit still low every frame
    prints as ``???``). If accept() won the race (the connection was served), lower it again and retry."""
    import psutil

    low = proc.rlimit(psutil.RLIMIT_NOFILE)
    tries = 0
    lowered = True
    while time.monotonic() < deadline:
        if not _alive(proc.pid):
            break
        if lowered:
            tries += 1
            writes = _writes(proc.pid)
            problem = _connect(host, port)
            if problem:
                notes.append(problem)
            # Wait until it has left accept() *and* done something after it (its first write is the state-save
            # warning): the wake-up alone comes before accept() tries to take an fd.
            while (time.monotonic() < deadline and _alive(proc.pid)
                   and (_in_accept(proc.pid) is True or (writes is not None and _writes(proc.pid) == writes))):
                time.sleep(0.0003)
            # left accept(): give the limit back at once (the stack traces of the report need to open files)
            try:
                proc.rlimit(psutil.RLIMIT_NOFILE, old)
            except psutil.Error:
                break
            lowered = False
            settle = time.monotonic() + 1.0
            while time.monotonic() < settle and _alive(proc.pid) and not _in_accept(proc.pid):
                time.sleep(0.005)
        elif _in_accept(proc.pid) and listening_fds(proc.pid, port) and tries < 5:
            try:  # back in accept(): the connection was served before the limit bit; lower and try again
                proc.rlimit(psutil.RLIMIT_NOFILE, low)
            except psutil.Error:
                break
            lowered = True
        else:
            time.sleep(0.01)
    if lowered:
        try:
            proc.rlimit(psutil.RLIMIT_NOFILE, old)
        except psutil.Error:
            pass
    return not _alive(proc.pid), tries


def plan_steps(pid: int, *, port: int, host: str = "127.0.0.1", method: str = "auto", timeout_s: float) -> tuple[str, ...]:
    """The exact steps :func:`clean_stop` takes (``auto``: the shutdown-socket steps, with the fallback named)."""
    if method not in METHODS:
        raise ConfigError(f"unknown stop method {method!r}", hint=f"use one of: {', '.join(METHODS)}")
    steps = [f"kill -TERM {pid}; wait until /proc/{pid}/status shows it delivered (the handler sets the shutdown flag)"]
    if method in ("auto", "shutdown-socket"):
        steps.append(f"pidfd_getfd(pid {pid}, its listening socket on port {port}) and shutdown(SHUT_RDWR) the "
                     "duplicate: accept() fails, the loop ends; the process's own state save still runs")
        if method == "auto":
            steps.append("if pidfd_getfd is refused (kernel < 5.6, no ptrace permission): lower its RLIMIT_NOFILE "
                         f"soft limit below its open fds, connect once to {host}:{port} (accept() fails with EMFILE), "
                         "restore the limit; the gateway's state save is then skipped (ProcessFdQuotaExceeded)")
    elif method == "fd-limit":
        steps.append(f"lower pid {pid}'s RLIMIT_NOFILE soft limit below its open fds, connect once to {host}:{port} "
                     "(accept() fails with EMFILE), restore the limit; the gateway's state save is then skipped")
    else:
        steps.append(f"connect once to {host}:{port} (wakes an accept loop that checks its flag after each accept)")
    steps.append(f"wait up to {timeout_s:g} s for pid {pid} to exit; then kill -KILL {pid} (the leak report is then lost)")
    return tuple(steps)


def clean_stop(pid: int, *, port: int, host: str = "127.0.0.1", method: str = "auto", timeout_s: float = 10.0,
               kill_after: bool = True, report_grace_s: float = 600.0) -> CleanStop:
    """SIGTERM ``pid`` and make its accept() fail so it exits cleanly; SIGKILL after ``timeout_s`` if asked.

    A gateway with many leaks prints its report for a long time (about 4 ms per record for the real one:
    8,000 records take ~30 s). When the timeout comes while the process has left accept() and its write
    count still grows, the wait goes on as long as it keeps writing (at most ``report_grace_s`` more):
    killing it then would cut the very report the stop is for.

    ``method``: ``auto`` (shutdown-socket, else fd-limit), ``shutdown-socket``, ``fd-limit`` or ``connect``
    (SIGTERM + one connection only: for programs that check their flag after every accept).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown stop method {method!r}", hint=f"use one of: {', '.join(METHODS)}")
    import psutil

    t0 = time.monotonic()
    deadline = t0 + timeout_s
    steps: list[str] = []
    notes: list[str] = []
    details: dict[str, Any] = {}
    fallback: str | None = None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return CleanStop(pid, "none", True, 0.0, (), ("the process was already gone",))
    steps.append(f"kill -TERM {pid}")
    if not _wait_delivered(pid, signal.SIGTERM):
        notes.append("SIGTERM still pending after 2 s (the process may be stopped or blocking it)")
    if _wait_exit(pid, time.monotonic() + 0.05):
        return CleanStop(pid, "sigterm", True, time.monotonic() - t0, tuple(steps),
                         ("the process exited on SIGTERM alone",))
    ran = "connect"
    if method in ("auto", "shutdown-socket"):
        why = pidfd_getfd_available()
        fds = listening_fds(pid, port) if why is None else []
        if why is None and not fds:
            why = f"no listening socket on port {port} found in /proc/{pid}/fd"
        if why is None:
            try:
                for fd in fds:
                    with _dup_from(pid, fd) as dup:
                        dup.shutdown(socket.SHUT_RDWR)
                ran = "shutdown-socket"
                steps.append(f"pidfd_getfd({pid}, fd {','.join(map(str, fds))}) + shutdown(SHUT_RDWR)")
            except OSError as exc:
                why = f"pidfd_getfd on pid {pid} was refused ({exc.strerror or exc}; needs the same user or root)"
        if ran != "shutdown-socket":
            fallback = why
            if method == "shutdown-socket":
                notes.append(f"shutdown-socket could not run: {why}")
            else:
                method = "fd-limit"
    if method == "fd-limit":
        ran = "fd-limit"
        try:
            proc = psutil.Process(pid)
            old = proc.rlimit(psutil.RLIMIT_NOFILE)
            held = proc.num_fds()
            proc.rlimit(psutil.RLIMIT_NOFILE, (max(held - 1, 1), old[1]))
        except psutil.NoSuchProcess:
            return CleanStop(pid, "sigterm", True, time.monotonic() - t0, tuple(steps),
                             ("the process exited on SIGTERM alone",))
        except psutil.Error as exc:
            raise ConfigError(f"cannot change the open-files limit of pid {pid} ({exc})",
                              hint="run as the gateway's user (or root); or pass method='connect'") from None
        steps.append(f"prlimit --pid {pid} --nofile={max(held - 1, 1)}:{old[1]} (holds {held} fds)")
        details["fd_limit"] = {"held": held, "lowered_to": max(held - 1, 1), "restored_to": old[0]}
        exited, tries = _fd_limit_wait(proc, old, host, port, deadline, notes)
        steps.append(f"connect to {host}:{port} ({tries}x); restore the limit to {old[0]} as soon as pid {pid} "
                     "has left accept()")
        notes.append("the open-files limit was lowered: the gateway's own state save on shutdown is skipped "
                     "(error.ProcessFdQuotaExceeded); back the state up first")
        details["fd_limit"]["connections"] = tries
    else:
        if ran == "connect":
            problem = _connect(host, port)
            steps.append(f"connect once to {host}:{port}")
            if problem:
                notes.append(problem)
        exited = _wait_exit(pid, deadline)
    if not exited and ran in ("shutdown-socket", "fd-limit") and report_grace_s > 0:
        exited, extra = _wait_while_writing(pid, time.monotonic() + report_grace_s)
        if extra is not None:
            details["still_writing_after_timeout_s"] = round(extra, 2)
            notes.append(f"pid {pid} had left accept() and was still writing (its leak report) at the {timeout_s:g} s "
                         f"timeout: waited {extra:.1f} s more while its output kept growing")
    waited = time.monotonic() - t0
    if not exited and kill_after:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        steps.append(f"kill -KILL {pid}")
        notes.append(f"pid {pid} did not exit within {timeout_s:g} s of SIGTERM ({ran}): SIGKILLed; "
                     "the allocator's exit-time leak report is LOST")
        _wait_exit(pid, time.monotonic() + 5.0)
    return CleanStop(pid=pid, method=ran, exited=exited, waited_s=waited, steps=tuple(steps), notes=tuple(notes),
                     fallback_reason=fallback, details=details)


def state_save_outcome(log_text: str, method: str) -> str:
    """One sentence on the gateway's own state save at shutdown, from the log text written after the stop."""
    m = _STATE_SAVE.search(log_text)
    if m and m.group(1) == "error.ProcessFdQuotaExceeded":
        return "the gateway's state save was skipped: it failed with error.ProcessFdQuotaExceeded (the lowered fd limit)"
    if m:
        return (f"the gateway's state save ran and failed with {m.group(1)} (the gateway's own error; the stop "
                f"method {method} leaves its fds alone)")
    if method == "fd-limit":
        return ("the gateway's state save was probably skipped: the fd limit stayed lowered until it exited (no "
                "state-save message in the log to confirm)")
    return "the gateway's state save ran (no failure in the log)"
