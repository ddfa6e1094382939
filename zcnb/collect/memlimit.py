"""The memory ceiling of the sampled target, as the sampler records it in the samples header.

Where the limit comes from, in order (TARGET.md: "MemoryMax if set, else available memory"):

1. the unit's ``MemoryMax`` (``systemctl --user show -p MemoryMax --value -- UNIT``) when a unit is known;
2. the memory limit of the process's cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``);
3. the target host's total memory (``MemTotal`` in /proc/meminfo), only when the sampler reads the process
   on this host (psutil/cgroup sources): the process cannot grow beyond the machine.

Otherwise the limit is unknown (e.g. a remote gateway sampled through /metrics only). The limit belongs to
the *target*: the analysis uses the recorded one on replay and never the memory of the analyst's machine.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import check_unit
from .process import read_cgroup_limit

__all__ = ["HEADER_BYTES", "HEADER_SOURCE", "MemoryLimit", "detect_limit", "limit_from_header", "unit_memory_max"]

HEADER_BYTES = "memory_limit_bytes"
HEADER_SOURCE = "memory_limit_source"
_NO_LIMIT = 1 << 62  # systemd prints "infinity"; a page-rounded 2^63-1 means the same


@dataclass(frozen=True)
class MemoryLimit:
    """A memory ceiling in bytes (None = unknown) and where it came from (or why it is unknown)."""

    bytes: int | None
    source: str

    @property
    def known(self) -> bool:
        return self.bytes is not None

    def header_line(self) -> str:
        """The samples-header line, e.g. ``# memory_limit_bytes: 2147483648   memory_limit_source: ...``."""
        value = str(self.bytes) if self.bytes is not None else "unknown"
        source = " ".join(self.source.split())  # one line, no run of 3+ spaces (the header's field separator)
        return f"# {HEADER_BYTES}: {value}   {HEADER_SOURCE}: {source}"


def unit_memory_max(unit: str, *, timeout_s: float = 5.0, systemctl: str | None = None,
                    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> int | None:
    """``MemoryMax`` of a systemd user unit in bytes; None when unset (``infinity``) or not readable."""
    exe = systemctl or shutil.which("systemctl")
    if exe is None:
        return None
    try:
        proc = run([exe, "--user", "show", "-p", "MemoryMax", "--value", "--", check_unit(unit)],
                   capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip() if proc.returncode == 0 else ""
    if value.isdigit() and 0 < int(value) < _NO_LIMIT:
        return int(value)
    return None


def _mem_total(meminfo: str) -> int | None:
    try:
        with open(meminfo, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def detect_limit(pid: int | None, *, unit: str | None = None, local: bool = True,
                 memory_max: Callable[[str], int | None] = unit_memory_max,
                 cgroup_limit: Callable[[int], int | None] = read_cgroup_limit,
                 meminfo: str = "/proc/meminfo") -> MemoryLimit:
    """The target's memory ceiling by the rules of the module docstring.

    ``local`` says the process runs on this host (the sampler reads it with psutil/cgroup): only then is
    this host's MemTotal the target's.
    """
    if unit:
        mm = memory_max(unit)
        if mm is not None:
            return MemoryLimit(mm, f"MemoryMax of {unit} (systemctl show)")
    if pid is not None and local:
        cg = cgroup_limit(pid)
        if cg is not None:
            return MemoryLimit(cg, f"cgroup memory limit of pid {pid}")
    if local and (total := _mem_total(meminfo)) is not None:
        host = os.uname().nodename
        return MemoryLimit(total, f"MemTotal of the target host {host} (no MemoryMax or cgroup limit)")
    if not local:
        return MemoryLimit(None, "unknown: the target is not on the sampling host and has no known MemoryMax")
    return MemoryLimit(None, "unknown: no MemoryMax, cgroup limit or /proc/meminfo readable")


def limit_from_header(header: Mapping[str, str]) -> MemoryLimit | None:
    """The limit recorded in a samples header (``df.attrs['header']``); None when the file records none."""
    if HEADER_BYTES not in header:
        return None
    raw = header.get(HEADER_BYTES, "").strip()
    source = header.get(HEADER_SOURCE, "").strip() or "samples header"
    if raw.isdigit() and int(raw) > 0:
        return MemoryLimit(int(raw), f"{source} (recorded)")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value > 0:
        return MemoryLimit(int(value), f"{source} (recorded)")
    return MemoryLimit(None, source if source.startswith("unknown") else f"unknown ({source})")
