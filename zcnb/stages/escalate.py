"""Stage 06 (escalate / roll back): the calls ``notebooks/06_escalate_rollback.ipynb`` makes.

The decision itself is :func:`zcnb.analysis.escalation.decide`; the rollback is
:func:`zcnb.ops.rollback.rollback`. This module reads their inputs from the incident folder
(``assessment.json``, ``after_restart.json``) and picks the paths and service manager to act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.escalation import EscalationDecision, decide
from ..exceptions import DataError
from ..ops.rollback import rollback, rollback_demo_tree

__all__ = ["RollbackSite", "decision_for_incident", "rollback", "rollback_manager", "rollback_site"]


def _tri(value: str | bool | None) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("yes", "true", "1"):
        return True
    if v in ("no", "false", "0"):
        return False
    raise DataError(f"expected yes/no/empty, got {value!r}", hint="use 'yes', 'no' or '' (unknown)")


def decision_for_incident(incident: Any, *, persisted_after_restart: str | bool | None = None,
                          persisted_after_restore: str | bool | None = None,
                          unit: str = "zeptoclaw-gateway.service") -> EscalationDecision:
    """Decide from the incident's assessment.json (computed from samples.csv when absent); writes escalation.json.

    ``persisted_after_restart`` left empty is taken from stage 02's ``after_restart.json`` when present.
    """
    if incident.has("assessment"):
        a: Any = incident.read_json("assessment")
    elif incident.has("samples"):
        from ..analysis import assess_leak
        from ..collect.sampling import read_samples

        a = assess_leak(read_samples(incident.path("samples")))
    else:
        raise DataError(f"incident {incident.root} has neither assessment.json nor samples.csv",
                        hint="run stage 01 first (or pass the bundled replay: incident_dir='')")
    pr = _tri(persisted_after_restart)
    if pr is None and incident.has("after_restart"):
        # Stage 02's post-restart check: a leak verdict after the restart means it persisted.
        pr = {"leak": True, "no_leak": False}.get(incident.read_json("after_restart").get("verdict"))
    d = decide(a, persisted_after_restart=pr, persisted_after_restore=_tri(persisted_after_restore), unit=unit)
    incident.write_json("escalation", d)
    return d


@dataclass(frozen=True)
class RollbackSite:
    """Where the rollback reads backups and writes binaries/state."""

    backups_dir: Path
    bin_dir: Path
    state_dir: Path | None
    replay: bool

    def _repr_markdown_(self) -> str:
        kind = "temp copy of the bundled sample tree" if self.replay else "live paths"
        return (f"rollback site ({kind}): backups `{self.backups_dir}`, binaries `{self.bin_dir}`, "
                f"state `{self.state_dir or 'default'}`")


def rollback_site(*, backups_dir: str = "", bin_dir: str = "", state_dir: str = "",
                  live: bool = False) -> RollbackSite:
    """Where the rollback reads and writes.

    Empty ``backups_dir``: in a live run the settings' ``backups/`` and ``state/`` (runbook layout)
    with ``bin_dir`` defaulting to the folder of the running gateway's executable; otherwise a
    temp copy of the bundled sample tree (nothing real is touched).
    """
    if not backups_dir and not live:
        t = rollback_demo_tree()
        return RollbackSite(t["backups_dir"], t["bin_dir"], t["state_dir"], True)
    if not backups_dir:
        from ..config import load_settings

        settings = load_settings()
        backups_dir, state_dir = str(settings.backups_dir), state_dir or str(settings.state_dir)
        if not bin_dir:
            bin_dir = str(_running_gateway_bin_dir(settings.process_pattern))
    if not bin_dir:
        raise DataError("bin_dir is empty", hint="give the folder holding the live gateway binary")
    return RollbackSite(Path(backups_dir).expanduser(), Path(bin_dir).expanduser(),
                        Path(state_dir).expanduser() if state_dir else None, False)


def _running_gateway_bin_dir(pattern: str) -> Path:
    """The folder of the running gateway's executable (``/proc/PID/exe``), found by the process pattern."""
    import psutil

    from ..collect.process import find_process
    from ..exceptions import ZcnbError

    try:
        info = find_process(pattern=pattern)
        exe = psutil.Process(info.pid).exe()
    except (ZcnbError, psutil.Error) as exc:
        raise DataError(f"bin_dir is empty and the running gateway's executable could not be read ({exc})",
                        hint="give bin_dir: the folder holding the live gateway binary (e.g. zig-out/bin)") from exc
    if not exe:
        raise DataError(f"bin_dir is empty and process {info.pid} shows no executable path",
                        hint="give bin_dir: the folder holding the live gateway binary")
    return Path(exe).parent


def rollback_manager(site: RollbackSite, *, backend: str = "auto", supervisor_file: str = "",
                     live: bool = False) -> Any:
    """The manager the rollback stops/starts; for the replay, a supervisor of the sample binary (not started).

    ``backend`` as in :func:`zcnb.service.choose_backend`; a live site is never paired with the replay's manager.
    """
    from ..service import ProcessSupervisorBackend, SupervisedService, choose_backend, make_manager

    chosen = choose_backend(backend, supervisor_file=supervisor_file, live=live or not site.replay)
    if chosen == "replay":
        run = site.bin_dir.parent / "run"
        svc = SupervisedService("zeptoclaw-gateway.service", (str(site.bin_dir / "zeptoclaw-gateway"),),
                                run / "zeptoclaw-gateway.pid", run / "zeptoclaw-gateway.log")
        return ProcessSupervisorBackend([svc], run_dir=run)
    return make_manager(chosen, supervisor_file=supervisor_file or None)
