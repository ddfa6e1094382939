"""Find the gateway process and read its memory (psutil, cgroup).

Like the runbook's ``pgrep -f zeptoclaw-gateway`` but never matching zcnb's own
process, its ancestors (the shell that typed the pattern), its helper children, or
pytest; among the matches, a process whose executable (or argv[0]) is *named* by the
pattern wins over one that merely mentions it on its command line (``tail -f
zeptoclaw-gateway.log``, a script given the name as an argument, the simulator); when
several remain, :class:`~zcnb.exceptions.ProcessAmbiguous` lists them instead of
guessing. RSS/VMS come from ``/proc/PID/statm``; USS/PSS from ``smaps_rollup`` when
readable (else None, and the reading says why); the cgroup figure from
``memory.current`` (v2) or ``memory.usage_in_bytes`` (v1) of the process's cgroup.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

from ..config import check_unit
from ..exceptions import ConfigError, ProcessAccessDenied, ProcessAmbiguous, ProcessNotFound
from ..files import read_input
from ..redact import default_redactor
from ..units import format_bytes

__all__ = ["MemoryReading", "ProcessInfo", "ProcessQuery", "find_by_query", "find_process", "read_cgroup_limit",
           "read_cgroup_memory", "read_memory", "unit_main_pid"]

_SELF_MARKERS = re.compile(r"(^|[\s/])(py\.?test|pytest)(\s|$)|-m\s+pytest|(^|[\s/])zcnb(\s|$)|-m\s+zcnb(\s|$)")


@dataclass(frozen=True)
class ProcessQuery:
    """How to find the target: the first given of pid, pid_file, unit, pattern."""

    pid: int | None = None
    pid_file: str | None = None
    unit: str | None = None
    pattern: str | None = None
    exclude_children: bool = True
    exe_match_only: bool = False  # pattern: only a process whose executable / argv[0] is named by it

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("pid", self.pid), ("pid_file", self.pid_file), ("unit", self.unit),
                                          ("pattern", self.pattern)) if v]
        return " ".join(parts) or "(nothing)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProcessInfo:
    """The process found, how, and why this one (``reason``; ``passed_over``: other matches not taken)."""

    pid: int
    name: str
    cmdline: str
    create_time: float
    found_by: str
    candidates: int = 1  # processes the pattern matched (after zcnb's own were left out)
    exe: str = ""
    match: str = ""  # pattern: "executable" | "argv[0]" | "command line"; else the way it was given
    reason: str = ""
    passed_over: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: which process and why (samples header, preflight, report)."""
        text = f"pid {self.pid} ({self.exe or self.name}), found by {self.found_by}"
        if self.reason:
            text += f": {self.reason}"
        if self.passed_over:
            text += f"; passed over {len(self.passed_over)}: " + "; ".join(self.passed_over)
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed_over"] = list(self.passed_over)
        return d

    def _repr_markdown_(self) -> str:
        out = f"pid **{self.pid}** `{self.name}` found by {self.found_by}"
        if self.reason:
            out += f" ({self.reason})"
        out += f": `{self.cmdline[:200]}`"
        return out + "".join(f"\n- passed over {p}" for p in self.passed_over)


@dataclass(frozen=True)
class MemoryReading:
    """One memory reading of one process; None = not measured (see ``notes``)."""

    pid: int
    rss_bytes: int
    vms_bytes: int
    uss_bytes: int | None = None
    pss_bytes: int | None = None
    cgroup_bytes: int | None = None
    cgroup_path: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d

    def _repr_markdown_(self) -> str:
        def mib(v: int | None) -> str:
            return format_bytes(v, unit="MiB")
        rows = [("RSS", self.rss_bytes), ("VMS", self.vms_bytes), ("USS", self.uss_bytes), ("PSS", self.pss_bytes),
                (f"cgroup {self.cgroup_path or ''}", self.cgroup_bytes)]
        out = [f"**pid {self.pid}**", "", "| measure | value |", "|---|---|"]
        out += [f"| {k} | {mib(v)} |" for k, v in rows]
        return "\n".join(out + [f"- {n}" for n in self.notes])


def unit_main_pid(unit: str, *, timeout_s: float = 5.0) -> int:
    """MainPID of a systemd user unit via ``systemctl --user show -p MainPID --value``."""
    exe = shutil.which("systemctl")
    if exe is None:
        raise ProcessNotFound(f"cannot resolve unit {unit}: systemctl is not installed", unit=unit,
                              hint="give --pid, --pid-file or --pattern instead")
    try:
        proc = subprocess.run([exe, "--user", "show", "-p", "MainPID", "--value", "--", check_unit(unit)], capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ProcessNotFound(f"systemctl --user show {unit} did not answer in {timeout_s:g} s", unit=unit,
                              hint="give --pid, --pid-file or --pattern instead") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise ProcessNotFound(f"cannot read MainPID of {unit}: {reason}", unit=unit,
                              hint="no systemd user manager here? give --pid, --pid-file or --pattern instead")
    value = proc.stdout.strip()
    if not value.isdigit() or int(value) == 0:
        raise ProcessNotFound(f"unit {unit} is not running (MainPID={value or '?'})", unit=unit,
                              hint=f"start it (systemctl --user start {unit}) or check the unit name")
    return int(value)


def _read_pid_file(pid_file: str) -> int:
    text = read_input(pid_file, what="pid file", error=ProcessNotFound,
                      hint="is the gateway running? check the path").decode("utf-8", "replace").strip()
    first = text.split()[0] if text.split() else ""
    if not first.isdigit() or int(first) <= 0:
        raise ProcessNotFound(f"pid file {pid_file} does not hold a pid (starts {text[:30]!r})", path=pid_file,
                              hint="the service may be (re)starting: try again, or give --pid")
    return int(first)


def _info(pid: int, found_by: str, candidates: int = 1, *, match: str = "", reason: str = "",
          passed_over: tuple[str, ...] = ()) -> ProcessInfo:
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            name, create = p.name(), p.create_time()
            try:
                cmd = " ".join(p.cmdline())
            except psutil.AccessDenied:
                cmd = name
            exe = _exe(p)
        if p.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        raise ProcessNotFound(f"no process with pid {pid} ({found_by})", pid=pid,
                              hint="the gateway may have exited or restarted: check it, or use --pattern") from None
    except psutil.AccessDenied:
        raise ProcessAccessDenied(f"process {pid} exists but is not readable", pid=pid,
                                  hint="run zcnb as the gateway's user (or root)") from None
    return ProcessInfo(pid=pid, name=name, cmdline=_shown(cmd), create_time=create, found_by=found_by, candidates=candidates,
                       exe=exe, match=match or found_by.split(" ", 1)[0], reason=reason, passed_over=passed_over)


def _shown(cmdline: str) -> str:
    """A command line as zcnb may show or store it: tokens and keys on it redacted (``--token=...``, the
    gateway's own token, the settings' patterns); whitespace runs made one space."""
    return default_redactor().redact(" ".join(cmdline.split()))


def _exe(p: psutil.Process) -> str:
    """The executable's path ('' when not readable); a replaced binary's `` (deleted)`` suffix dropped."""
    try:
        exe = p.exe() or ""
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return ""
    return exe.removesuffix(" (deleted)")


def _excluded_pids(exclude_children: bool) -> set[int]:
    me = psutil.Process()
    out = {me.pid} | {p.pid for p in me.parents()}
    if exclude_children:
        try:
            out |= {c.pid for c in me.children(recursive=True)}
        except psutil.Error:
            pass
    return out


@dataclass(frozen=True)
class _Match:
    pid: int
    ppid: int
    create_time: float
    cmdline: str
    exe: str
    how: str  # "executable" | "argv[0]" | "command line"

    def line(self) -> str:
        when = datetime.fromtimestamp(self.create_time, UTC).isoformat(timespec="seconds") if self.create_time else "?"
        return f"pid {self.pid}, started {when}: {_shown(self.cmdline)[:160]}"


def _how(rx: re.Pattern[str], exe: str, argv: list[str]) -> str:
    """How a process matches: its executable's or argv[0]'s base name is named by the pattern, or only its command line."""
    if exe and rx.fullmatch(os.path.basename(exe)):
        return "executable"
    if argv and argv[0] and rx.fullmatch(os.path.basename(argv[0])):
        return "argv[0]"
    return "command line"


def _matches(rx: re.Pattern[str], exclude_children: bool) -> list[_Match]:
    skip = _excluded_pids(exclude_children)
    hits: list[_Match] = []
    for p in psutil.process_iter(["pid", "ppid", "cmdline", "name", "create_time", "exe"]):
        pid = p.info["pid"]
        if pid in skip:
            continue
        argv = p.info["cmdline"] or []
        cmd = " ".join(argv) or (p.info["name"] or "")
        if not cmd or not rx.search(cmd) or _SELF_MARKERS.search(cmd):
            continue
        exe = p.info["exe"] or ""
        exe = exe.removesuffix(" (deleted)")
        hits.append(_Match(pid, p.info["ppid"] or 0, p.info["create_time"] or 0.0, cmd, exe, _how(rx, exe, argv)))
    return hits


def _by_pattern(pattern: str, exclude_children: bool, exe_match_only: bool = False) -> ProcessInfo:
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"process pattern {pattern!r} is not a valid regular expression: {exc}",
                          hint="pgrep -f syntax: an extended regex matched against the full command line") from None
    hits = _matches(rx, exclude_children)
    named = [h for h in hits if h.how != "command line"]
    if exe_match_only and not named:
        others = f" ({len(hits)} other process(es) only mention it on their command line)" if hits else ""
        raise ProcessNotFound(f"no process whose executable is named {pattern!r}{others}", pattern=pattern,
                              hint="is the gateway running (or restarting)? check with: pgrep -af " + pattern)
    if not hits:
        raise ProcessNotFound(f"no process matches pattern {pattern!r} (zcnb's own processes and pytest excluded)",
                              pattern=pattern, hint="is the gateway running? check with: pgrep -af " + pattern)
    pool = named or hits
    pids = {h.pid for h in pool}
    roots = [h for h in pool if h.ppid not in pids] or pool  # a matching child of a match is not the target
    if len(roots) > 1:
        roots.sort(key=lambda h: (h.create_time, h.pid))
        which = "name the pattern as their executable" if named else "match the pattern on their command line"
        raise ProcessAmbiguous(
            f"{len(roots)} processes {which}, so zcnb will not guess which is the gateway:\n  "
            + "\n  ".join(h.line() for h in roots),
            pattern=pattern, candidates=[{"pid": h.pid, "cmdline": _shown(h.cmdline)[:300], "create_time": h.create_time,
                                          "match": h.how} for h in roots],
            hint=f"pick one with --pid {roots[0].pid} (or another pid above), --pid-file FILE (the gateway's pid "
                 "file) or --unit UNIT (its systemd unit's MainPID), or narrow --pattern (e.g. the binary's full "
                 "path, ^/path/to/zeptoclaw-gateway$)")
    chosen = roots[0]
    passed = tuple(f"pid {h.pid} `{_shown(h.cmdline)[:80]}` ({'child of another match' if h in pool else 'command line only'})"
                   for h in sorted(hits, key=lambda h: h.pid) if h.pid != chosen.pid)
    if chosen.how == "command line":
        reason = (f"the only process whose command line matches {pattern!r} (no process is named by it: check "
                  "that this is the gateway)")
    else:
        reason = f"its {chosen.how} is named {pattern!r}" + (
            f" ({os.path.basename(chosen.exe)})" if chosen.how == "executable" and chosen.exe else "")
    return _info(chosen.pid, f"pattern {pattern!r}", candidates=len(hits), match=chosen.how, reason=reason,
                 passed_over=passed)


def find_process(*, pid: int | None = None, pid_file: str | os.PathLike[str] | None = None,
                 unit: str | None = None, pattern: str | None = None, exclude_children: bool = True,
                 exe_match_only: bool = False) -> ProcessInfo:
    """Find the gateway by the first given of pid, pid_file, unit (MainPID), pattern.

    A pattern is a regex on the full command line (``pgrep -f``). Processes whose executable or argv[0] base
    name the pattern matches in full are preferred over those that only mention it; zcnb's own processes never
    count; a child of another match is left out. More than one left: :class:`ProcessAmbiguous` (with the list).
    ``exe_match_only``: a command-line-only match is never taken (the sampler, once it has found a named
    process, so that a restart gap never hands it a ``tail -f zeptoclaw-gateway.log``).
    """
    if pid is not None:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ConfigError(f"pid must be a positive integer, got {pid!r}", hint="e.g. --pid 1234")
        return _info(pid, "pid", match="pid", reason="given by --pid")
    if pid_file:
        return _info(_read_pid_file(str(pid_file)), f"pid file {pid_file}", match="pid file",
                     reason=f"the pid in {pid_file}")
    if unit:
        return _info(unit_main_pid(unit), f"unit {unit} MainPID", match="unit", reason=f"MainPID of {unit}")
    if pattern:
        return _by_pattern(pattern, exclude_children, exe_match_only)
    raise ConfigError("no way to find the process was given", hint="give one of pid, pid_file, unit or pattern")


def find_by_query(query: ProcessQuery) -> ProcessInfo:
    """:func:`find_process` with the criteria of a :class:`ProcessQuery`."""
    return find_process(pid=query.pid, pid_file=query.pid_file, unit=query.unit, pattern=query.pattern,
                        exclude_children=query.exclude_children, exe_match_only=query.exe_match_only)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


# These run on every sampler tick, so they build paths as plain strings: pathlib interns every path part
# (sys.intern on Python 3.11), and a new interned string per tick makes the interpreter's interned-string
# table resize again and again: measured +2.6 MiB of the sampler's RSS over 100,000 ticks.
def _cgroup_rel(pid: int, proc_root: str) -> tuple[str | None, str | None]:
    """(v2 path, v1 memory path) from /proc/PID/cgroup."""
    try:
        text = _read_text(os.path.join(proc_root, str(pid), "cgroup"))
    except OSError:
        return None, None
    v2 = v1 = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "memory" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def read_cgroup_memory(pid: int, *, cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
                       proc_root: str | os.PathLike[str] = "/proc") -> tuple[int | None, str | None, str | None]:
    """(bytes, cgroup path, note) for the process's memory cgroup; bytes None when not readable."""
    root = os.fspath(cgroup_root)
    v2, v1 = _cgroup_rel(pid, os.fspath(proc_root))
    candidates: list[tuple[str, str]] = []
    if v2 is not None and v2 != "/":
        candidates += [(v2, os.path.join(root, v2.lstrip("/"), "memory.current")),
                       (v2, os.path.join(root, "unified", v2.lstrip("/"), "memory.current"))]
    if v1 is not None and v1 != "/":
        candidates.append((v1, os.path.join(root, "memory", v1.lstrip("/"), "memory.usage_in_bytes")))
    if not candidates:
        if v2 == "/" or v1 == "/":
            return None, "/", "process is in the root cgroup: its figure is the whole machine, not used"
        return None, None, "no memory cgroup found for the process"
    for rel, path in candidates:
        try:
            return int(_read_text(path).strip()), rel, None
        except (OSError, ValueError):
            continue
    return None, candidates[0][0], f"cgroup memory of {candidates[0][0]} is not readable"


_NO_LIMIT = 1 << 62  # cgroup v1 writes "no limit" as a page-rounded 2^63-1


def read_cgroup_limit(pid: int, *, cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
                      proc_root: str | os.PathLike[str] = "/proc") -> int | None:
    """The memory limit of the process's memory cgroup (the one :func:`read_cgroup_memory` reads): v2
    ``memory.max``, v1 ``memory.limit_in_bytes``; None when it has none or it cannot be read."""
    root = os.fspath(cgroup_root)
    v2, v1 = _cgroup_rel(pid, os.fspath(proc_root))
    paths: list[str] = []
    if v2 is not None and v2 != "/":
        paths += [os.path.join(root, v2.lstrip("/"), "memory.max"),
                  os.path.join(root, "unified", v2.lstrip("/"), "memory.max")]
    if v1 is not None and v1 != "/":
        paths.append(os.path.join(root, "memory", v1.lstrip("/"), "memory.limit_in_bytes"))
    for path in paths:
        try:
            value = _read_text(path).strip()
        except OSError:
            continue
        if value == "max":
            return None
        if value.isdigit():
            return int(value) if int(value) < _NO_LIMIT else None
    return None


def read_memory(pid: int, *, process: psutil.Process | None = None, full: bool = True,
                cgroup: bool = True) -> MemoryReading:
    """Read RSS/VMS (+USS/PSS when ``full``, + cgroup memory when ``cgroup``) of ``pid``."""
    notes: list[str] = []
    uss = pss = None
    try:
        p = process if process is not None else psutil.Process(pid)
        if full:
            try:
                m = p.memory_full_info()
                uss, pss = int(m.uss), (int(m.pss) if getattr(m, "pss", None) is not None else None)
                if pss is None:
                    notes.append("PSS not available on this kernel")
            except psutil.AccessDenied:
                m = p.memory_info()
                notes.append("USS/PSS not readable (access denied to smaps): RSS/VMS only")
        else:
            m = p.memory_info()
        rss, vms = int(m.rss), int(m.vms)
        if rss == 0 and p.status() == psutil.STATUS_ZOMBIE:  # killed but not yet reaped by its parent
            raise psutil.ZombieProcess(pid)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        raise ProcessNotFound(f"process {pid} is gone", pid=pid, hint="it exited or restarted; find it again") from None
    except psutil.AccessDenied:
        raise ProcessAccessDenied(f"memory of process {pid} is not readable (access denied)", pid=pid,
                                  hint="run zcnb as the gateway's user (or root)") from None
    cg_bytes = cg_path = None
    if cgroup:
        cg_bytes, cg_path, note = read_cgroup_memory(pid)
        if note:
            notes.append(note)
    return MemoryReading(pid=pid, rss_bytes=rss, vms_bytes=vms, uss_bytes=uss, pss_bytes=pss,
                         cgroup_bytes=cg_bytes, cgroup_path=cg_path, notes=tuple(notes))

