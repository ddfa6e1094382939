"""The restore journal: a small JSON file, written atomically, that lets a rerun finish or revert a restore."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import StateError, ZcnbError
from ..files import read_json, write_json

__all__ = ["GatewayCheck", "check_gateway", "gateway_active", "journal_path", "phase", "process_running", "read_journal",
           "save_journal"]

JOURNAL_VERSION = 1


def journal_path(state_dir: Path) -> Path:
    """Next to the state dir (same filesystem, survives the swap): ``.zcnb-restore-<name>.json``."""
    return state_dir.parent / f".zcnb-restore-{state_dir.name}.json"


def read_journal(state_dir: Path) -> dict[str, Any] | None:
    p = journal_path(state_dir)
    if not p.exists():
        return None
    try:
        data = read_json(p)
    except (ValueError, OSError) as exc:
        raise StateError(f"restore journal {p} is unreadable ({exc})",
                         hint="inspect it by hand; the quarantine and staging folders it names are intact", path=str(p)) from None
    if not isinstance(data, dict) or data.get("version") != JOURNAL_VERSION:
        raise StateError(f"restore journal {p} has an unknown format", hint="inspect it by hand", path=str(p))
    return data


def save_journal(j: dict[str, Any], *, step: str | None = None) -> None:
    if step is not None:
        j["step"] = step
        j.setdefault("history", []).append([step, datetime.now(UTC).isoformat()])
    j["updated_at"] = datetime.now(UTC).isoformat()
    write_json(journal_path(Path(j["state_dir"])), j)


def _ino(p: Path) -> int | None:
    return os.lstat(p).st_ino if os.path.lexists(p) else None


def phase(j: dict[str, Any]) -> str:
    """Where an interrupted restore stands, read from the filesystem (not trusted from the journal).

    ``start``: the old state is live, staging absent or unverified; ``swapped``: the new state is live,
    the old one sits in the staging path; ``quarantined``: the old state is in the quarantine folder.
    """
    state, staging, qstate = Path(j["state_dir"]), Path(j["staging"]), Path(j["quarantine"]) / "state"
    if os.path.lexists(qstate):
        return "quarantined"
    staging_ino = j.get("staging_ino")
    if os.path.lexists(staging):
        return "swapped" if staging_ino is not None and _ino(state) == staging_ino else "start"
    if staging_ino is not None and _ino(state) == staging_ino:
        return "quarantined"
    return "start"


def gateway_active(service: Any, unit: str) -> bool | None:
    """True/False from ``service.status(unit).active``; None when no service manager was given."""
    if service is None:
        return None
    try:
        status = service.status(unit)
    except ZcnbError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        # I/O or parse failures become a StateError; anything else (a backend bug) propagates, and either way
        # the restore stops before touching a possibly running gateway
        raise StateError(f"could not read the status of {unit}: {exc}", hint="check the service manager, or stop the gateway by hand") from None
    return bool(getattr(status, "active", status))


@dataclass(frozen=True)
class GatewayCheck:
    """Whether the gateway runs, and how that was found out (for plans, notes and errors)."""

    running: bool | None  # None: could not be checked
    how: str  # "the service manager (systemd)" / "the process list (pattern 'x')"
    detail: str = ""  # e.g. "pid 123: /usr/bin/zeptoclaw-gateway"
    manager_error: str = ""  # the service manager was asked but did not answer (dry runs fall back)

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "how": self.how, "detail": self.detail, "manager_error": self.manager_error}


def process_running(pattern: str) -> GatewayCheck:
    """Look for a process whose command line matches ``pattern`` (``pgrep -f``; zcnb's own processes excluded)."""
    from ..collect.process import find_process
    from ..exceptions import ProcessAccessDenied, ProcessNotFound

    how = f"the process list (pattern {pattern!r})"
    try:
        info = find_process(pattern=pattern)
    except ProcessNotFound:
        return GatewayCheck(False, how, "no matching process")
    except ProcessAccessDenied as exc:
        return GatewayCheck(True, how, f"pid {getattr(exc, 'pid', '?')} matches but is not readable")
    return GatewayCheck(True, how, f"pid {info.pid}: {info.cmdline[:120]}")


def check_gateway(service: Any, unit: str, pattern: str, *, fallback: bool = False) -> GatewayCheck:
    """Ask ``service`` about ``unit``; without one, look for a process matching ``pattern``.

    ``fallback=True`` (dry runs): when the service manager does not answer (e.g. no user manager on
    this host), look at the process list instead and keep the manager's error in ``manager_error``.
    """
    if service is None:
        return process_running(pattern)
    backend = getattr(service, "backend", "service")
    try:
        active = gateway_active(service, unit)
    except ZcnbError as exc:
        if not fallback:
            raise
        got = process_running(pattern)
        return GatewayCheck(got.running, got.how, got.detail, manager_error=exc.message)
    return GatewayCheck(active, f"the {backend} service manager ({unit})", "active" if active else "not active")
