"""The incident folder: the files through which stages hand results to each other.

Layout of ``<incidents_dir>/<YYYY-MM-DDTHHMMSSZ>-<slug>/`` (folder 0700, files 0600)::

    samples.csv          memory samples (stage 01, 02 appends post-restart samples)
    assessment.json      LeakAssessment.to_dict() (stage 01)
    preflight.json       preflight table (stage 01, live runs)
    journal.jsonl        the unit's journal entries, redacted (stage 03 input)
    log_summary.json     LogSummary.to_dict() (stage 03)
    correlation.json     activity ranking and bytes-per-event (stage 03)
    leak_report.json     parsed leak report (stage 03)
    actions.jsonl        ActionResult lines (stages 02, 04, 06)
    escalation.json      escalation decision (stage 06)
    fleet.json           fleet view (stage 01 in Prometheus mode)
    alert.json           the alert that started the incident (zcnb receiver)
    alerts.jsonl         alert events for the timeline: firing, resolved, data collected (zcnb receiver)
    commit.txt           the gateway's commit (when known)
    figures/             PNG figures
    summary.json         written by the report stage
    report.html          written by the report stage

Notebooks take ``incident_dir`` as a parameter; empty means "replay the bundled
sample incident": notebook 01 copies it into a session folder that notebooks 02-06 then
share (:func:`session_incident`), so nothing in the package is ever modified and stage 05
reports what the earlier notebooks did.
An incident folder that is a symlink is refused, and so is a ``figures`` symlink inside one.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from .exceptions import ConfigError
from .files import ensure_private_dir, read_json, scratch_dir, write_json

__all__ = ["SESSION_ENV", "Incident", "bundled_sample_dir", "new_incident_dir", "open_incident", "session_incident"]

SESSION_ENV = "ZCNB_SESSION_DIR"  # a fixed folder for the notebooks' shared default incident (tests, scripts)

FILES = {
    "samples": "samples.csv",
    "assessment": "assessment.json",
    "preflight": "preflight.json",
    "journal": "journal.jsonl",
    "log_summary": "log_summary.json",
    "correlation": "correlation.json",
    "leak_report": "leak_report.json",
    "leak_report_text": "leak_report.txt",
    "actions": "actions.jsonl",
    "escalation": "escalation.json",
    "commit": "commit.txt",
    "summary": "summary.json",
    "report": "report.html",
    "restore": "restore.json",
    "fleet": "fleet.json",
    "oom": "oom.json",
    "after_restart": "after_restart.json",
    "alert": "alert.json",
    "alerts": "alerts.jsonl",
}


def bundled_sample_dir() -> Path:
    """The read-only sample incident shipped inside the package."""
    return Path(str(resources.files("zcnb") / "data" / "sample_incident"))


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:40] or "incident"


def new_incident_dir(incidents_dir: str | os.PathLike[str], slug: str = "memory-leak",
                     *, now: datetime | None = None) -> Path:
    """Create ``<incidents_dir>/<YYYY-MM-DDTHHMMSSZ>-<slug>/`` (0700); never reuses a folder.

    ``incidents_dir`` is created (0700) when missing; an existing one keeps its mode.
    """
    now = now or datetime.now(UTC)
    base = ensure_private_dir(incidents_dir)
    stem = f"{now.strftime('%Y-%m-%dT%H%M%SZ')}-{_slug(slug)}"
    path = base / stem
    n = 1
    while True:
        try:
            path.mkdir(mode=0o700)
            break
        except FileExistsError:
            n += 1
            path = base / f"{stem}-{n}"
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class Incident:
    """Paths of one incident folder, plus small read/write helpers."""

    root: Path
    replay: bool = False

    def path(self, key: str) -> Path:
        try:
            return self.root / FILES[key]
        except KeyError:
            raise ConfigError(f"unknown incident file {key!r}", hint=f"one of: {', '.join(FILES)}") from None

    @property
    def figures(self) -> Path:
        """``figures/`` (made 0700 when missing); a symlink there is refused, never written through."""
        folder = self.root / "figures"
        if folder.is_symlink():
            raise ConfigError(f"{folder} is a symlink (to {os.readlink(folder)}): zcnb never writes through links "
                              "in an incident folder", hint=f"remove the link (rm {folder}); zcnb then makes a private "
                              "figures folder", path=str(folder))
        return ensure_private_dir(folder)

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def read_json(self, key: str) -> Any:
        return read_json(self.path(key))

    def read_json_or_none(self, key: str) -> Any:
        """What a stage left in ``key``, or None when it left nothing there or it cannot be read."""
        if not self.has(key):
            return None
        try:
            return self.read_json(key)
        except (OSError, ValueError):
            return None

    def write_json(self, key: str, obj: Any) -> Path:
        return write_json(self.path(key), obj)

    def _repr_markdown_(self) -> str:
        kind = "replay of the bundled sample incident" if self.replay else "incident"
        return f"{kind}: `{self.root}`"


def open_incident(incident_dir: str | os.PathLike[str] | None = "", *, create: bool = True,
                  new_session: bool = False) -> Incident:
    """Open an incident folder; empty/None means the bundled sample incident, replayed in a copy.

    In a notebook kernel the copy is the session's (:func:`session_incident`): notebook 01 makes a fresh one
    (``new_session=True``) and notebooks 02-06 on their defaults use the same folder, so stage 05 reports
    what the earlier notebooks did. Outside a kernel every call gets its own temporary copy (removed at exit).
    """
    if not incident_dir:
        if _in_kernel() or os.environ.get(SESSION_ENV):
            return session_incident(fresh=new_session)
        tmp = scratch_dir("zcnb-replay-")  # removed when the interpreter exits
        return Incident(_copy_sample(tmp / "sample-incident"), replay=True)
    root = Path(incident_dir).expanduser()
    if root.is_symlink():
        raise ConfigError(f"incident folder {root} is a symlink (to {os.readlink(root)}): zcnb does not follow it, so "
                          "that files meant for the incident cannot land somewhere else",
                          hint=f"pass the real folder: {os.path.realpath(root)}", path=str(root))
    if not root.exists():
        if not create:
            raise ConfigError(f"incident folder {root} does not exist",
                              hint="pass an existing folder or let zcnb create one", path=str(root))
        ensure_private_dir(root)
    return Incident(root.resolve())


def _copy_sample(dest: Path) -> Path:
    shutil.copytree(bundled_sample_dir(), dest)
    for folder, _dirs, files in os.walk(dest):
        os.chmod(folder, 0o700)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o600)
    return dest


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill, nbval), where notebooks share a session."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    ip = get() if callable(get) else None
    return ip is not None and getattr(ip, "kernel", None) is not None


def _session_dir() -> Path:
    """This session's folder: ``$ZCNB_SESSION_DIR``, else one per process that started the kernel (the Jupyter
    server, papermill or pytest), named by its pid and start time under ``$TMPDIR/zcnb-sessions-<uid>/``."""
    explicit = os.environ.get(SESSION_ENV)
    if explicit:
        return ensure_private_dir(Path(explicit).expanduser())
    import psutil

    parent = psutil.Process(os.getppid())
    base = ensure_private_dir(Path(tempfile.gettempdir()) / f"zcnb-sessions-{os.getuid()}")
    _remove_stale_sessions(base)
    return ensure_private_dir(base / f"{parent.pid}-{int(parent.create_time())}")


def _remove_stale_sessions(base: Path) -> None:
    """Session folders whose starting process is gone (its pid absent or reused by a younger process)."""
    import psutil

    for d in base.iterdir():
        pid, _, started = d.name.partition("-")
        if not (pid.isdigit() and started.isdigit()):
            continue
        try:
            alive = int(psutil.Process(int(pid)).create_time()) == int(started)
        except psutil.Error:
            alive = False
        if not alive:
            shutil.rmtree(d, ignore_errors=True)


def session_incident(*, fresh: bool = False) -> Incident:
    """The session's replay incident: the newest ``sample-incident-N`` in the session folder, or (``fresh``, or
    none yet) a new copy of the bundled sample as ``sample-incident-<N+1>``."""
    session = _session_dir()
    numbers = sorted(int(p.name.rsplit("-", 1)[1]) for p in session.glob("sample-incident-*")
                     if p.name.rsplit("-", 1)[1].isdigit())
    if numbers and not fresh:
        return Incident(session / f"sample-incident-{numbers[-1]}", replay=True)
    return Incident(_copy_sample(session / f"sample-incident-{(numbers[-1] if numbers else 0) + 1}"), replay=True)
