"""Notebook helpers: the bundled sample tree, a verification table, and a restore summary."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..actions import ActionResult
from ..state.backups import BackupList, list_backups
from ..state.sample import copy_sample_data
from ..state.verify import VerifyResult, check_state, verify_backup

__all__ = ["RestoreSummary", "VerifyTable", "health_after", "quarantined", "resolve_data_dir", "resolve_state_dir",
           "service_for", "summarize_restore", "verify_all"]


class VerifyTable(list[VerifyResult]):
    """Verification results of several backups, shown as one table."""

    def to_frame(self) -> Any:
        import pandas as pd

        rows = [{"backup": r.path.name, "layout": r.layout, "ok": r.ok, "files": r.file_count,
                 "manifest": r.manifest or "-", "problems": "; ".join(r.problems) or "-"} for r in self]
        return pd.DataFrame(rows, columns=["backup", "layout", "ok", "files", "manifest", "problems"])

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self]

    def _repr_html_(self) -> str:
        return str(self.to_frame().to_html(index=False, escape=True)) if self else "<p>No backups to verify.</p>"


def verify_all(backups: BackupList) -> VerifyTable:
    """:func:`verify_backup` for each listed backup (quarantine copies included)."""
    return VerifyTable(verify_backup(b.path) for b in backups)


def quarantined(backups_dir: str | os.PathLike[str]) -> BackupList:
    """The ``corrupt-*`` folders: what restores and undos moved aside."""
    return BackupList(b for b in list_backups(backups_dir) if b.quarantine)


@dataclass(frozen=True)
class RestoreSummary:
    """A restore's outcome with what was quarantined and the state check afterwards (for restore.json)."""

    result: ActionResult
    quarantine: Path | None
    quarantined_files: int
    state_after: VerifyResult | None
    health: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result.to_dict(), "quarantine": str(self.quarantine) if self.quarantine else None,
                "quarantined_files": self.quarantined_files,
                "state_after": self.state_after.to_dict() if self.state_after else None, "health": self.health}

    def _repr_html_(self) -> str:
        r = self.result
        mode = "dry run" if r.dry_run else "executed"
        parts = [f"<p><b>restore</b> ({mode}): <b>{html.escape(r.outcome)}</b>. {html.escape(r.message)}</p>"]
        if self.quarantine:
            parts.append(f"<p>Previous state quarantined in <code>{html.escape(str(self.quarantine))}</code> "
                         f"({self.quarantined_files} files).</p>")
        if self.state_after is not None:
            parts.append(f"<p>State check after: {'OK' if self.state_after.ok else 'PROBLEMS'}, "
                         f"{self.state_after.file_count} files.</p>")
        if self.health:
            parts.append(f"<p>Health: {html.escape(self.health)}</p>")
        return "".join(parts)


def summarize_restore(result: ActionResult, *, health: str | None = None) -> RestoreSummary:
    """Combine a restore result with a look at the quarantine and the live state."""
    q = result.details.get("quarantine")
    qstate = Path(q) / "state" if q and not result.dry_run else None
    files = sum(len(f) for _, _, f in os.walk(qstate)) if qstate and qstate.is_dir() else 0
    state_dir = result.details.get("state_dir")
    after = check_state(state_dir) if state_dir and Path(state_dir).is_dir() else None
    return RestoreSummary(result, qstate.parent if qstate else None, files, after, health)


def resolve_data_dir(data_dir: str | os.PathLike[str] = "", *, live: bool = False) -> Path:
    """Notebook helper: a given folder; empty + live = the settings' data dir; empty = a fresh sample copy."""
    from ..config import load_settings
    from ..exceptions import ConfigError

    if data_dir:
        p = Path(data_dir).expanduser()
        if not p.is_dir():
            raise ConfigError(f"data_dir {p} does not exist", hint="pass the folder holding state/ and backups/")
        return p
    return load_settings().data_dir if live else copy_sample_data()


def resolve_state_dir(state_dir: str | os.PathLike[str] = "", data_dir: str | os.PathLike[str] = "") -> Path:
    """Notebook helper: the live state folder. Empty = ``<data_dir>/state`` (the runbook layout); the real
    gateway keeps its state in ``~/.zeptoclaw`` (pass that). ``~`` is expanded; the folder must exist."""
    from ..exceptions import ConfigError

    p = Path(state_dir).expanduser() if state_dir else Path(data_dir) / "state"
    if not p.is_dir():
        raise ConfigError(f"state folder {p} does not exist",
                          hint="set state_dir to the live state (runbook layout: <data_dir>/state; real gateway: "
                               "~/.zeptoclaw)", path=str(p))
    return p


def service_for(*, live: bool, backend: str = "systemd") -> Any:
    """The service manager for a live run; None in replay (nothing to stop)."""
    if not live:
        return None
    from ..service import make_manager

    return make_manager(backend)


def health_after(url: str = "", *, token_env: str = "GATEWAY_AUTH_TOKEN", timeout_s: float = 5.0) -> str | None:
    """One health probe of ``url`` after a restore (None when no URL is given); never shows the token."""
    if not url:
        return None
    from ..config import gateway_token
    from ..service import probe_health

    return probe_health(url, token=gateway_token(token_env or None), timeout_s=timeout_s).summary()
