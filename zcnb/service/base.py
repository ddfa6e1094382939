"""Shared shapes of the service backends: status, step outcome, the manager protocol, command runner."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..config import Secret
from ..redact import Redactor, default_redactor
from ..units import format_bytes

__all__ = [
    "REDACTED_SHORT",
    "CommandRunner",
    "HealthCheck",
    "ServiceManager",
    "ServiceStatus",
    "StepOutcome",
    "format_command",
    "redact_line",
    "run_command",
]

#: The mask of service text (status output, log tails in error messages): short, as in ``Main Token: ***``.
REDACTED_SHORT = "***"

#: ``runner(argv, timeout_s) -> CompletedProcess`` (text mode); raises ``subprocess.TimeoutExpired`` on timeout.
CommandRunner = Callable[[Sequence[str], float], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Default runner: no shell, captured text output, a hard timeout, no pager."""
    env = dict(os.environ, SYSTEMD_PAGER="", PAGER="cat", SYSTEMD_COLORS="0")
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, env=env, check=False)


def format_command(argv: Sequence[str]) -> str:
    """The argv as a copy-pasteable shell line (for plans and ActionResults)."""
    return shlex.join([str(a) for a in argv])


@dataclass(frozen=True)
class HealthCheck:
    """How to check a unit's health: a URL, whether it needs the gateway token, what body means healthy."""

    url: str
    needs_token: bool = True
    expect: str = "json-healthy"  # "json-healthy" ({"status":"healthy"}) or "text-ok" (body "ok")

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "needs_token": self.needs_token, "expect": self.expect}


@dataclass(frozen=True)
class ServiceStatus:
    """One unit's state as the backend reports it."""

    unit: str
    backend: str
    active: bool
    active_state: str  # systemd ActiveState, or "active"/"inactive"/"failed" for the supervisor
    sub_state: str = ""
    pid: int | None = None
    memory_bytes: int | None = None
    memory_source: str = ""  # "cgroup (MemoryCurrent)" or "psutil rss"
    memory_max_bytes: int | None = None  # None = no limit (MemoryMax=infinity)
    active_since: datetime | None = None
    restarts: int | None = None
    load_state: str = "loaded"
    fragment_path: str = ""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit, "backend": self.backend, "active": self.active, "active_state": self.active_state,
            "sub_state": self.sub_state, "pid": self.pid, "memory_bytes": self.memory_bytes,
            "memory_source": self.memory_source, "memory_max_bytes": self.memory_max_bytes,
            "active_since": self.active_since.isoformat() if self.active_since else None,
            "restarts": self.restarts, "load_state": self.load_state, "fragment_path": self.fragment_path,
            "notes": list(self.notes),
        }

    @property
    def memory_mib(self) -> float | None:
        return None if self.memory_bytes is None else self.memory_bytes / 1024**2

    def markdown_row(self) -> str:
        """This status as one row of the markdown status table (stage 02)."""
        mem = f"{format_bytes(self.memory_bytes, unit='MiB')} ({self.memory_source})" if self.memory_bytes is not None else "not measured"
        limit = format_bytes(self.memory_max_bytes, unit="MiB", digits=0) if self.memory_max_bytes else "none"
        since = self.active_since.isoformat(timespec="seconds") if self.active_since else "-"
        state = f"{self.active_state}/{self.sub_state}" if self.sub_state else self.active_state
        return f"| `{self.unit}` | {state} | {self.pid or '-'} | {mem} | {limit} | {since} | {self.restarts if self.restarts is not None else '-'} |"

    def _repr_markdown_(self) -> str:
        head = "| unit | state | pid | memory | limit | active since | restarts |\n|---|---|---|---|---|---|---|"
        notes = "".join(f"\n\n_{n}_" for n in self.notes)
        return f"{head}\n{self.markdown_row()}{notes}"


@dataclass(frozen=True)
class StepOutcome:
    """What one backend call did: the commands it ran and any warnings (e.g. a kill fallback)."""

    commands: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def __add__(self, other: StepOutcome) -> StepOutcome:
        return StepOutcome(self.commands + other.commands, self.warnings + other.warnings,
                           {**self.details, **other.details})


@runtime_checkable
class ServiceManager(Protocol):
    """What both backends (systemd --user and the process supervisor) offer."""

    backend: str

    @property
    def units(self) -> tuple[str, ...]:
        """Known units in start order (gateway first)."""
        ...

    def health_check(self, unit: str) -> HealthCheck | None: ...

    def status(self, unit: str) -> ServiceStatus: ...

    def start(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome: ...

    def stop(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome: ...

    def restart(self, unit: str, *, timeout_s: float = 30.0) -> StepOutcome: ...

    def reload(self) -> StepOutcome: ...

    def commands_for(self, verb: str, unit: str) -> tuple[str, ...]:
        """The exact commands ``verb`` (start/stop/restart/reload/kill) would run, for plans."""
        ...

    def env_dropin_path(self, unit: str) -> Path: ...

    def render_env_dropin(self, env: dict[str, str]) -> str: ...

    def log_lines(self, unit: str, *, lines: int = 50, since: datetime | None = None) -> list[str]: ...


def redact_line(line: str, *, secrets: Iterable[str | Secret | None] = (), redactor: Redactor | None = None) -> str:
    """Hide secrets in log text (the gateway's banner prints ``Main Token: ...`` in clear).

    The rules are :mod:`zcnb.redact`'s (one set for all of zcnb): ``default_redactor()`` (built-in rules,
    ``redact_patterns``, the gateway token) plus ``secrets``, with ``***`` as the mask. Pass ``redactor``
    to reuse one for many lines (building the default reads the config each time).
    """
    red = redactor if redactor is not None else default_redactor(secrets=secrets, mask=REDACTED_SHORT)
    if redactor is not None and secrets:
        extra = Redactor.create(secrets=secrets, mask=red.mask)
        line = extra.redact(line)
    return red.redact(line)
