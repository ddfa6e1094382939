"""One request budget per gateway, shared by every zcnb process of this user on this host.

The real gateway answers 100 authenticated requests per 60 s and then *crashes* (Debug build) on the 101st, so
zcnb must never be the one to send it: every request zcnb sends to a gateway (the sampler's /metrics scrapes,
``zcnb health``, preflight, restart health waits, notebooks and reports, which all go through those) first
takes a slot from a ledger kept per ``host:port``. A caller that finds no free slot waits for one (up to its
own deadline) or gives up *without sending*, and says so.

The ledger is a file of fixed-size records (wall time, kind, pid, caller) in a private per-user runtime folder
(``$ZCNB_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/zcnb``, else ``/tmp/zcnb-UID``; 0700, owned by the user),
appended under ``flock``. The kernel drops a flock when its holder dies, however it dies, so a crashed
holder blocks nobody; a record cut short by a crash is dropped on the next write. A sliding window: a slot
is free when fewer than ``limit`` records of that kind are younger than ``window_s``. The wall clock is the
one the gateway's own limiter uses; a record "from the future" (the clock went back) keeps counting until it
is old, which errs on the side of sending less.

Kinds: ``T`` = a request with a token (what the gateway counts), ``U`` = a token-less request (the gateway
does not count it, but on the real gateway each one leaks memory): its own count, against the same limit.
Priority: a *background* caller (the sampler's polling) may fill the window only up to ``limit - reserve``
(a quarter of it), so that a person's ``zcnb health`` or preflight still finds a slot while a sampler runs.
"""

from __future__ import annotations

import fcntl
import math
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import Settings, load_settings
from ..exceptions import ConfigError, RequestBudgetExhausted
from ..locks import lock_open_file

__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW_S", "BudgetEntry", "BudgetUsage", "Grant", "RequestBudget",
           "budget_for_url", "runtime_dir"]

DEFAULT_LIMIT = 60
DEFAULT_WINDOW_S = 60.0
GATEWAY_LIMIT = 100  # the real gateway's own limit per token and 60 s (request 101 crashes its Debug build)
_CALLER_W = 32
RECORD_SIZE = 64  # "%17.6f %c %10d %-32s\n"
_ROTATE_AT = 4096 * RECORD_SIZE  # then the ledger is moved to .1 and keeps only the current window
_LOCK_WAIT_S = 10.0


def runtime_dir(settings: Settings | None = None) -> Path:
    """The private per-user runtime folder (created 0700); refused when another user owns it or others may
    write to it (a ledger there could be forged or removed)."""
    s = settings if settings is not None else load_settings()
    if s.runtime_dir is not None:
        path = Path(s.runtime_dir)
    elif os.environ.get("XDG_RUNTIME_DIR") and os.path.isdir(os.environ["XDG_RUNTIME_DIR"]):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "zcnb"
    else:
        # /tmp itself, not $TMPDIR: the ledger is host-wide, so two zcnb processes with different TMPDIRs
        # (a notebook kernel, a test, a shell) must still find the same one.
        path = Path("/tmp") / f"zcnb-{os.getuid()}"
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the runtime folder {path}: {exc.strerror or exc}",
                          hint="set runtime_dir (ZCNB_RUNTIME_DIR) to a private folder you own", path=str(path)) from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        why = ("is not a folder (a symlink?)" if not stat.S_ISDIR(st.st_mode) else
               f"belongs to uid {st.st_uid}" if st.st_uid != os.getuid() else
               f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})")
        raise ConfigError(f"the runtime folder {path} {why}: the request ledger is not kept there",
                          hint="remove it, or set runtime_dir (ZCNB_RUNTIME_DIR) to a private (0700) folder you own",
                          path=str(path))
    return path


def _gateway_key(host: str, port: int) -> str:
    h = host.strip("[]").lower()
    if h in ("localhost", "127.0.0.1", "::1", "ip6-localhost"):
        h = "localhost"  # one gateway on loopback, whichever name reaches it
    return f"{h}:{int(port)}"


@dataclass(frozen=True)
class BudgetEntry:
    """One request in the ledger."""

    at: float  # wall clock, epoch seconds
    kind: str  # "T" (with a token) | "U" (token-less)
    pid: int
    caller: str


@dataclass(frozen=True)
class Grant:
    """A slot taken: how long the caller waited for it and how full the window was after it."""

    waited_s: float
    used: int
    limit: int
    key: str

    def note(self) -> str:
        """A sentence for output when the caller had to wait ('' when it did not)."""
        if self.waited_s < 0.05:
            return ""
        return (f"waited {self.waited_s:.1f} s for the request budget of {self.key} ({self.limit} per window, "
                "shared by every zcnb process)")


@dataclass(frozen=True)
class BudgetUsage:
    """The window right now: slots used per kind, and when the next one frees."""

    key: str
    limit: int
    window_s: float
    used: int
    unauth_used: int
    next_free_s: float
    ledger: str
    callers: dict[str, int]

    def describe(self) -> str:
        text = (f"{self.key}: {self.used} of {self.limit} requests with a token used in the last "
                f"{self.window_s:g} s by zcnb processes")
        if self.unauth_used:
            text += f", {self.unauth_used} token-less"
        if self.next_free_s > 0:
            text += f"; next slot in {self.next_free_s:.1f} s"
        return text + f" (ledger {self.ledger})"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "limit": self.limit, "window_s": self.window_s, "used": self.used,
                "unauth_used": self.unauth_used, "next_free_s": round(self.next_free_s, 3), "ledger": self.ledger,
                "callers": dict(self.callers)}


def _record(at: float, kind: str, pid: int, caller: str) -> bytes:
    name = "".join(ch if 32 < ord(ch) < 127 else "_" for ch in caller)[:_CALLER_W] or "-"
    line = f"{at:17.6f} {kind} {pid:10d} {name:<{_CALLER_W}}"
    return (line[:RECORD_SIZE - 1] + "\n").encode("ascii")  # a fixed size is what lets readers seek to the tail


def _parse(rec: bytes) -> BudgetEntry | None:
    try:
        at, kind, pid, caller = rec.decode("ascii").split(None, 3)
        if kind not in ("T", "U"):
            return None
        return BudgetEntry(float(at), kind, int(pid), caller.strip())
    except (ValueError, UnicodeDecodeError):
        return None


_T, _U = ord("T"), ord("U")


@dataclass(frozen=True)
class _Window:
    raw: bytes  # the window's records as stored, oldest first
    token: list[float]  # times of the "T" records, oldest first
    unauth: list[float]  # times of the "U" records


def _entries(data: bytes) -> list[BudgetEntry]:
    return [e for e in (_parse(data[i:i + RECORD_SIZE]) for i in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE))
            if e is not None]


class RequestBudget:
    """The shared budget of one gateway (``host:port``): :meth:`acquire` before every request."""

    def __init__(self, host: str, port: int, *, limit: int = DEFAULT_LIMIT, window_s: float = DEFAULT_WINDOW_S,
                 folder: str | os.PathLike[str] | None = None, caller: str = "zcnb",
                 clock: Callable[[], float] = time.time, lock_wait_s: float = _LOCK_WAIT_S) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"request budget {limit!r} is not a positive whole number",
                              hint=f"e.g. request_budget = {DEFAULT_LIMIT} (the real gateway crashes past "
                                   f"{GATEWAY_LIMIT} per 60 s)")
        if not (isinstance(window_s, int | float) and math.isfinite(window_s) and window_s > 0):
            raise ConfigError(f"request budget window {window_s!r} s is not a positive number of seconds",
                              hint="e.g. request_budget_window_s = 60 (the gateway's window)")
        self.key = _gateway_key(host, port)
        self.limit, self.window_s, self.caller = limit, float(window_s), caller
        self.reserve = limit // 4  # kept free of background polling for interactive callers
        base = Path(folder) if folder is not None else runtime_dir()
        self.path = base / "budget" / (self.key.replace(":", "_").replace("/", "_") + ".ledger")
        self._clock = clock
        self.lock_wait_s = lock_wait_s  # a holder that keeps the ledger locked this long is stopped or stuck
        self._fd = -1
        self._fd_pid = 0

    def __repr__(self) -> str:
        return f"RequestBudget({self.key!r}, limit={self.limit}, window_s={self.window_s:g})"

    # -- the ledger file ------------------------------------------------------------------------------
    def _open(self) -> int:
        if self._fd >= 0 and self._fd_pid == os.getpid():
            return self._fd
        self._fd = -1  # a forked child must not share its parent's open file (and so its flock): its own
        os.makedirs(self.path.parent, mode=0o700, exist_ok=True)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._fd_pid = os.getpid()
        except OSError as exc:
            raise ConfigError(f"cannot open the request ledger {self.path}: {exc.strerror or exc}",
                              hint="check the runtime folder (runtime_dir / ZCNB_RUNTIME_DIR)", path=str(self.path)) from None
        return self._fd

    def _lock(self) -> int:
        """The ledger's fd, flocked; reopened when the file was rotated away under us."""
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    # names the holder (pid, start) from /proc/locks; raises unless it let go just now
                    lock_open_file(fd, self.path, action=f"request ledger user (locked > {self.lock_wait_s:g} s)",
                                   error=RequestBudgetExhausted,
                                   hint="a stopped or stuck zcnb process holds the ledger: resume or end it; "
                                        "no request is sent meanwhile")
                    fcntl.flock(fd, fcntl.LOCK_UN)  # lock_open_file took it after all: start over cleanly
                    continue
                time.sleep(0.002)
                continue
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
            except OSError:
                same = False
            if same:
                return fd
            os.close(fd)  # rotated: the lock on the old inode is dropped with it
            self._fd = -1

    def _tail(self, fd: int, now: float) -> _Window:
        """The records younger than the window (and any from the future), oldest first; cuts a torn record.

        On the hot path: only the time and kind of each record are read (slices of the raw bytes), no decoding.
        """
        size = os.fstat(fd).st_size
        if size % RECORD_SIZE:
            size -= size % RECORD_SIZE
            os.ftruncate(fd, size)  # a writer died mid-record: drop the piece
        oldest = now - self.window_s
        times: dict[int, list[float]] = {_T: [], _U: []}
        parts: list[bytes] = []
        n = 2 * self.limit + 16
        end = size
        while end > 0:
            start = max(0, end - n * RECORD_SIZE)
            data = os.pread(fd, end - start, start)
            i = len(data) - RECORD_SIZE
            while i >= 0:
                kind = data[i + 18]
                try:
                    at = float(data[i:i + 17])
                except ValueError:
                    at = now  # unreadable: count it, to be safe
                if kind not in times:
                    kind, at = _T, now
                if at <= oldest:
                    break
                times[kind].append(at)
                i -= RECORD_SIZE
            parts.append(data[i + RECORD_SIZE:])
            if i >= 0:
                break
            end, n = start, n * 2
        for v in times.values():
            v.reverse()
        return _Window(b"".join(reversed(parts)), times[_T], times[_U])

    def _rotate(self, fd: int, keep: bytes, mine: bytes) -> None:
        """Move the ledger to ``.1`` and start a new one holding the current window (still under the lock)."""
        tmp = self.path.with_name(self.path.name + f".new{os.getpid()}")
        hist = self.path.with_name(self.path.name + ".1")
        nfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(nfd, keep + mine)
        finally:
            os.close(nfd)
        try:
            os.unlink(hist)
        except FileNotFoundError:
            pass
        os.link(self.path, hist)
        os.replace(tmp, self.path)

    # -- the budget -----------------------------------------------------------------------------------
    def _cap(self, kind: str, background: bool) -> int:
        return max(1, self.limit - self.reserve) if background else self.limit

    def _free_in(self, mine: list[float], cap: int, now: float) -> float:
        """Seconds until fewer than ``cap`` of the times ``mine`` (oldest first) are inside the window."""
        if len(mine) < cap:
            return 0.0
        # the window must lose len - cap + 1 records: the (len - cap)-th oldest must age out
        return max(0.0, min(mine[len(mine) - cap], now) + self.window_s - now) + 0.001

    def try_acquire(self, *, token: bool = True, background: bool = False, caller: str | None = None) -> float:
        """Take a slot if one is free now: 0.0 when taken, else the seconds until one frees (nothing recorded)."""
        return self._try(token, background, caller)[0]

    def _try(self, token: bool, background: bool, caller: str | None) -> tuple[float, int]:
        """(seconds until a slot frees, 0.0 = taken; records of this kind in the window, this one included)."""
        kind = "T" if token else "U"
        fd = self._lock()
        try:
            now = self._clock()
            win = self._tail(fd, now)
            mine = win.unauth if kind == "U" else win.token
            wait = self._free_in(mine, self._cap(kind, background), now)
            if wait > 0:
                return wait, len(mine)
            used = len(mine)
            rec = _record(now, kind, os.getpid(), caller or self.caller)
            if os.fstat(fd).st_size >= _ROTATE_AT:
                self._rotate(fd, win.raw, rec)
            else:
                os.write(fd, rec)
            return 0.0, used + 1
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def acquire(self, *, token: bool = True, wait_s: float = 0.0, background: bool = False,
                caller: str | None = None, sleep: Callable[[float], Any] = time.sleep) -> Grant:
        """Take a slot, waiting up to ``wait_s`` for one; :class:`RequestBudgetExhausted` (nothing sent) if none.

        ``sleep`` may return True to give up early (a sampler's stop event: ``event.wait``).
        """
        t0 = time.monotonic()
        deadline = t0 + max(0.0, wait_s)
        while True:
            wait, used = self._try(token, background, caller)
            if wait == 0.0:
                return Grant(time.monotonic() - t0, used, self.limit, self.key)
            left = deadline - time.monotonic()
            if wait > left:
                who = "token-less requests" if not token else "requests"
                raise RequestBudgetExhausted(
                    f"request budget of {self.key} used up ({self.limit} {who} per {self.window_s:g} s, shared by "
                    f"every zcnb process{'; background polling keeps ' + str(self.reserve) + ' free' if background else ''}"
                    f"): next slot in {wait:.1f} s, so the request was not sent",
                    key=self.key, reason="budget", next_free_s=round(wait, 3),
                    hint="wait and try again, poll less often (--metrics-interval, --interval), or raise "
                         f"request_budget (--request-budget, ZCNB_REQUEST_BUDGET) up to well under the gateway's "
                         f"{GATEWAY_LIMIT}")
            if sleep(min(wait, max(0.0, left))) is True:
                raise RequestBudgetExhausted(f"stopped while waiting for the request budget of {self.key}: not sent",
                                             key=self.key, reason="budget", hint="nothing to do")

    def next_free_s(self, *, token: bool = True, background: bool = False) -> float:
        """Seconds until a slot of this kind frees (0.0: one is free now); takes nothing."""
        fd = self._lock()
        try:
            now = self._clock()
            kind = "T" if token else "U"
            win = self._tail(fd, now)
            return self._free_in(win.unauth if kind == "U" else win.token, self._cap(kind, background), now)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def usage(self) -> BudgetUsage:
        """The current window."""
        fd = self._lock()
        try:
            now = self._clock()
            win = self._tail(fd, now)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        callers: dict[str, int] = {}
        for e in _entries(win.raw):
            callers[e.caller] = callers.get(e.caller, 0) + 1
        return BudgetUsage(self.key, self.limit, self.window_s, len(win.token), len(win.unauth),
                           self._free_in(win.token, self.limit, now), str(self.path), callers)

    def history(self) -> list[BudgetEntry]:
        """Every record still on disk (the rotated ``.1`` file first), oldest first: for audits and tests."""
        out: list[BudgetEntry] = []
        for p in (self.path.with_name(self.path.name + ".1"), self.path):
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                continue
            out += _entries(data)
        return out

    def close(self) -> None:
        if self._fd >= 0 and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = -1


_CACHE: dict[tuple[str, int, float, str], RequestBudget] = {}


def budget_for_url(url: str, *, settings: Settings | None = None, caller: str = "zcnb") -> RequestBudget:
    """The budget of the gateway behind ``url`` with the settings' ``request_budget`` per
    ``request_budget_window_s`` (one open ledger per process and gateway, reused)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"URL {parts.scheme}://{parts.hostname}... has an invalid port",
                          hint="use e.g. http://127.0.0.1:18789") from None
    s = settings if settings is not None else load_settings()
    folder = str(runtime_dir(s))
    key = (_gateway_key(parts.hostname or "localhost", port), s.request_budget, s.request_budget_window_s, folder)
    budget = _CACHE.get(key)
    if budget is None:
        budget = _CACHE[key] = RequestBudget(parts.hostname or "localhost", port, limit=s.request_budget,
                                             window_s=s.request_budget_window_s, folder=folder, caller=caller)
    return budget
