"""Stage 04 (restore state): the calls ``notebooks/04_restore_state.ipynb`` makes.

:func:`site` picks the folders and the service manager (the bundled sample tree copied to a temp
folder in a replay), :func:`plan` shows the restore as a dry run, :func:`apply` runs it when
confirmed and records it in the incident's ``actions.jsonl``, :func:`summarize` writes
``restore.json``. The restore itself is :func:`zcnb.state.restore_state`.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..actions import ActionResult, append_action
from ..incident import Incident
from ..state.backups import BackupList, list_backups
from ..state.restore import restore_state
from ..state.sample import copy_sample_data
from ..state.verify import VerifyResult, check_state, verify_backup

__all__ = ["RestoreSite", "RestoreSummary", "VerifyTable", "apply", "backups", "check_live_state", "health_after", "plan",
           "quarantined", "resolve_data_dir", "resolve_state_dir", "service_for", "site", "summarize", "summarize_restore",
           "verify_all"]


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


def quarantined(where: RestoreSite | str | os.PathLike[str]) -> BackupList:
    """The ``corrupt-*`` folders of a site's (or a backups folder's) backups: what restores and undos moved aside."""
    backups_dir = where.backups_dir if isinstance(where, RestoreSite) else where
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


@dataclass(frozen=True)
class RestoreSite:
    """Where stage 04 works: the data dir, its live state and backups, and the service manager (None: no manager)."""

    root: Path
    state_dir: Path
    backups_dir: Path
    service: Any = field(default=None, repr=False)

    def _repr_markdown_(self) -> str:
        manager = f"service manager `{self.service.backend}`" if self.service is not None else \
            "no service manager (a running gateway process is looked for and refused)"
        return f"state `{self.state_dir}`, backups `{self.backups_dir}`; {manager}"


def site(*, data_dir: str = "", state_dir: str = "", live: bool = False) -> RestoreSite:
    """The folders and manager of notebook 04: :func:`resolve_data_dir`, :func:`resolve_state_dir`, :func:`service_for`."""
    root = resolve_data_dir(data_dir, live=live)
    return RestoreSite(root, resolve_state_dir(state_dir, root), root / "backups", service_for(live=live))


def backups(where: RestoreSite) -> BackupList:
    """The site's backups, newest first."""
    return list_backups(where.backups_dir)


def check_live_state(where: RestoreSite) -> VerifyResult:
    """The site's live state folder checked (:func:`zcnb.state.check_state`)."""
    return check_state(where.state_dir)


def plan(where: RestoreSite, *, backup: str = "latest", stop_gateway: bool = False) -> ActionResult:
    """The restore as a dry run: the exact steps and the plan id that applies them."""
    return restore_state(backup, state_dir=where.state_dir, backups_dir=where.backups_dir, service=where.service,
                         stop_gateway=stop_gateway)


def apply(where: RestoreSite, incident: Incident, *, backup: str = "latest", stop_gateway: bool = False,
          execute: bool = False, confirm: str = "") -> ActionResult:
    """The restore (a dry run unless ``execute`` and ``confirm`` = the plan id), recorded in ``actions.jsonl``."""
    result = restore_state(backup, state_dir=where.state_dir, backups_dir=where.backups_dir, service=where.service,
                           stop_gateway=stop_gateway, execute=execute, confirm=confirm or None)
    append_action(incident.path("actions"), result)
    return result


def summarize(incident: Incident, result: ActionResult, *, gateway_url: str = "",
              token_env: str = "GATEWAY_AUTH_TOKEN") -> RestoreSummary:
    """:func:`summarize_restore` with one health probe of ``gateway_url`` (if given); saved as ``restore.json``."""
    summary = summarize_restore(result, health=health_after(gateway_url, token_env=token_env))
    incident.write_json("restore", summary)
    return summary
