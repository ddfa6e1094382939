"""Out-of-memory kills: one of the runbook's key signs of a leak ("OOM kills in logs").

Where they show up, and what zcnb reads:

- the service manager's own lines about the unit (``USER_UNIT=``/``UNIT=`` in the journal):
  "A process of this unit has been killed by the OOM killer", "Failed with result 'oom-kill'";
- the kernel (``_TRANSPORT=kernel``): "Out of memory: Killed process 4242 (zeptoclaw-gatew)"
  and "oom-kill:...,task=zeptoclaw-gatew,pid=4242"; the kernel truncates the name to 15 characters,
  so kernel lines count only when that name is a prefix of the gateway's process name;
- systemd-oomd: "Killed /user.slice/.../zeptoclaw-gateway.service due to memory pressure ...";
- the gateway's own log: Zig's ``error.OutOfMemory`` (an allocation failed; not a kill).

:func:`find_oom_events` scans entries already read; :func:`read_oom_events` runs one journalctl
query for the manager's, oomd's and the kernel's lines (kernel lines need read access to the
system journal: root, or the ``systemd-journal``/``adm`` group; the result says when none was
readable rather than reporting "no OOM kills").
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .message import LogEntry, full_unit

__all__ = ["OomEvent", "OomScan", "find_oom_events", "read_oom_events"]

_COMM_LEN = 15  # the kernel's TASK_COMM_LEN - 1
_SYSTEMD_KILL = re.compile(r"killed by the OOM killer|Failed with result 'oom-kill'", re.IGNORECASE)
_KERNEL_KILL = re.compile(r"(?:Memory cgroup )?[Oo]ut of memory: Killed process (\d+) \(([^)]*)\)")
_KERNEL_TASK = re.compile(r"oom-kill:.*?task=([^,]+),pid=(\d+)")
_OOMD_KILL = re.compile(r"Killed (\S+) due to memory (?:pressure|used)")
_ZIG_OOM = re.compile(r"\berror\.OutOfMemory\b|\bOutOfMemory\b")


@dataclass(frozen=True)
class OomEvent:
    """One OOM kill (or allocation failure) with where it was seen."""

    timestamp: datetime | None
    source: str  # "systemd" | "kernel" | "systemd-oomd" | "gateway"
    kind: str  # "kill" | "allocation-failure"
    pid: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp.isoformat() if self.timestamp else None, "source": self.source,
                "kind": self.kind, "pid": self.pid, "message": self.message}


@dataclass(frozen=True)
class OomScan:
    """The events found and what was (not) searched."""

    events: tuple[OomEvent, ...]
    searched: str
    notes: tuple[str, ...] = field(default=())

    @property
    def kills(self) -> tuple[OomEvent, ...]:
        """Distinct kills: the manager, the kernel and oomd each report the same kill once; a kill seen
        by several within 5 s counts once."""
        out: list[OomEvent] = []
        for e in sorted((e for e in self.events if e.kind == "kill"),
                        key=lambda e: e.timestamp.timestamp() if e.timestamp else 0.0):
            if out and e.timestamp and out[-1].timestamp and \
                    abs((e.timestamp - out[-1].timestamp).total_seconds()) <= 5:
                continue
            out.append(e)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {"kills": len(self.kills), "events": [e.to_dict() for e in self.events], "searched": self.searched,
                "notes": list(self.notes)}

    def _repr_markdown_(self) -> str:
        head = (f"**OOM kills: {len(self.kills)}**" if self.kills else "**No OOM kill found**") + f" ({self.searched})"
        lines = [head]
        if self.events:
            lines += ["", "| time | source | kind | pid | message |", "|---|---|---|---|---|"]
            for e in self.events[:50]:
                msg = e.message.replace("|", "\\|")[:160]
                lines.append(f"| {e.timestamp.isoformat() if e.timestamp else '-'} | {e.source} | {e.kind} | "
                             f"{e.pid or '-'} | {msg} |")
        lines += [f"- _{n}_" for n in self.notes]
        return "\n".join(lines)


def _comm_matches(comm: str, process_name: str) -> bool:
    comm = comm.strip()
    return bool(comm) and (process_name.startswith(comm) if len(comm) >= _COMM_LEN else comm == process_name)


def find_oom_events(entries: Iterable[LogEntry], *, unit: str = "zeptoclaw-gateway.service",
                    process_name: str = "zeptoclaw-gateway") -> list[OomEvent]:
    """OOM events about ``unit`` / ``process_name`` among ``entries`` (any mix of sources)."""
    unit = full_unit(unit) or unit
    out: list[OomEvent] = []
    for e in entries:
        msg = e.message
        if _SYSTEMD_KILL.search(msg) and (unit in msg or e.unit == unit):
            out.append(OomEvent(e.timestamp, "systemd", "kill", None, msg))
            continue
        m = _KERNEL_KILL.search(msg)
        if m and _comm_matches(m.group(2), process_name):
            out.append(OomEvent(e.timestamp, "kernel", "kill", int(m.group(1)), msg))
            continue
        m = _KERNEL_TASK.search(msg)
        if m and _comm_matches(m.group(1), process_name):
            out.append(OomEvent(e.timestamp, "kernel", "kill", int(m.group(2)), msg))
            continue
        m = _OOMD_KILL.search(msg)
        if m and unit in m.group(1):
            out.append(OomEvent(e.timestamp, "systemd-oomd", "kill", None, msg))
            continue
        if e.unit == unit and _ZIG_OOM.search(msg):
            out.append(OomEvent(e.timestamp, "gateway", "allocation-failure", e.pid, msg))
    return out


def read_oom_events(unit: str = "zeptoclaw-gateway.service", *, process_name: str = "zeptoclaw-gateway",
                    since: Any = None, until: Any = None, files: Iterable[str | os.PathLike[str]] | None = None,
                    directory: str | os.PathLike[str] | None = None, own_entries: Iterable[LogEntry] = (),
                    journalctl: str = "journalctl") -> OomScan:
    """Read the manager's, systemd-oomd's and the kernel's journal lines about the unit and scan them.

    ``own_entries`` (the unit's own lines, already read) are scanned too. Raises LogFormatError when
    journalctl is missing or fails; says in ``notes`` when no kernel line was readable at all.
    """
    from ..redact import default_redactor
    from .journal import read_journal

    u = full_unit(unit) or unit
    matches = [f"USER_UNIT={u}", "+", f"UNIT={u}", "+", "_TRANSPORT=kernel", "+", "SYSLOG_IDENTIFIER=systemd-oomd"]
    read = list(read_journal(None, user=False, since=since, until=until, files=files, directory=directory,
                             journalctl=journalctl, redact=default_redactor(), require_entries=False,
                             matches=matches))
    own = list(own_entries)
    events = find_oom_events([*read, *own], unit=u, process_name=process_name)
    events.sort(key=lambda e: e.timestamp.timestamp() if e.timestamp else 0.0)
    notes = []
    if not any(_is_kernel(e) for e in read):
        notes.append("no kernel line was readable in this window (kernel OOM kills need read access to the system "
                     "journal: root or the systemd-journal/adm group); the manager's and oomd's lines were searched")
    where = "the given journal files" if files or directory else "the journal"
    return OomScan(tuple(events), f"{where}: {u}'s manager lines, systemd-oomd, kernel"
                   + (", and the unit's own lines" if own else ""), tuple(notes))


def _is_kernel(e: LogEntry) -> bool:
    return (e.identifier or "") == "kernel"
