"""Stage 02 (mitigate) building blocks for the notebook and the report: target, status, restart, after-check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..actions import ActionResult
from ..config import Secret, gateway_token
from ..exceptions import ConfigError, ServiceError
from ..incident import Incident
from ..ops.demo_target import mitigation_demo_target
from ..ops.watch import PostRestartCheck, post_restart_check, watch_after_restart
from ..service import choose_backend, make_manager
from ..service.base import ServiceManager, ServiceStatus
from ..service.control import check_health, restart_service, set_debug_logging
from ..service.health import HealthResult

__all__ = ["MitigationTarget", "StatusReport", "after_restart", "debug_logging", "restart", "status", "target"]


@dataclass(frozen=True)
class MitigationTarget:
    """The service manager to act on, plus the token (never shown) and the gateway unit."""

    manager: ServiceManager
    unit: str
    token: Secret | None
    description: str
    demo: Any = field(default=None, repr=False)
    notes: tuple[str, ...] = ()  # findings from stage 01's preflight.json

    def _repr_markdown_(self) -> str:
        head = f"target: {self.description} (backend `{self.manager.backend}`, unit `{self.unit}`)"
        return "\n".join([head, *(f"- _{n}_" for n in self.notes)])


def target(*, backend: str = "auto", supervisor_file: str = "", unit: str = "",
           token_env: str = "", port: int | None = None, live: bool = False,
           incident: Incident | None = None) -> MitigationTarget:
    """The service manager stage 02 acts on (see :func:`zcnb.service.choose_backend`).

    ``auto``: the supervisor when ``supervisor_file`` is given, systemd user units when ``live``,
    and otherwise (the offline replay) the bundled simulator started in a temp folder, which the
    status output labels as such. With an ``incident`` that holds stage 01's ``preflight.json``,
    the systemd backend is refused up front when preflight found no systemd user manager
    (instead of failing inside systemctl), and units preflight found missing are named.
    """
    chosen = choose_backend(backend, supervisor_file=supervisor_file, live=live)
    notes = _preflight_findings(incident, chosen)
    if chosen == "replay":
        demo = mitigation_demo_target()
        note = ("replay: this is zcnb's simulated gateway in a temp folder, not your gateway; set live=True "
                "(systemd user units) or supervisor_file to act on the real one")
        return MitigationTarget(demo.manager, unit or demo.unit, demo.token,
                                "simulated gateway started under the process supervisor in a temp folder", demo,
                                notes=(note,))
    units = None
    if chosen == "systemd":
        from ..config import load_settings

        units = load_settings().units  # the configured restart order (runbook: gateway, webhook, shell2http, ...)
    m = make_manager(chosen, supervisor_file=supervisor_file or None, port=port, units=units)
    u = unit or m.units[0]
    if u not in m.units:
        raise ConfigError(f"unit {u!r} is not managed by this backend", hint=f"one of: {', '.join(m.units)}")
    # The token: env var ``token_env`` (empty: the settings' token_env), else the settings' token_file.
    return MitigationTarget(m, u, gateway_token(token_env or None), f"{chosen} units {', '.join(m.units)}", notes=notes)


def _preflight_findings(incident: Incident | None, backend: str) -> tuple[str, ...]:
    """What stage 01's preflight found about the service manager; raises when the backend cannot work."""
    if incident is None or backend != "systemd" or not incident.has("preflight"):
        return ()
    pre = incident.read_json("preflight")
    units = next((c for c in pre.get("checks", []) if c.get("name") == "units"), None)
    if units is None:
        return ()
    if units.get("status") == "skip" and units.get("detail") != "disabled":
        raise ConfigError(f"preflight found no usable systemd user manager: {units.get('detail', '')}",
                          hint="run as the user that owns the gateway's units (systemctl --user must work), or use "
                               "backend='supervisor' with a supervisor_file describing how the gateway is started")
    blocks = (units.get("data") or {}).get("units") or []
    missing = [b.get("Id", "?") for b in blocks if b.get("LoadState") != "loaded"]
    inactive = [b.get("Id", "?") for b in blocks if b.get("LoadState") == "loaded" and b.get("ActiveState") != "active"]
    out = []
    if missing:
        out.append(f"preflight found these units missing: {', '.join(missing)}"
                   " (check the units setting before a full restart)")
    if inactive:
        out.append(f"preflight found these units not active: {', '.join(inactive)}")
    return tuple(out)


@dataclass(frozen=True)
class StatusReport:
    """Status of every unit and the gateway's health."""

    statuses: tuple[ServiceStatus, ...]
    missing: tuple[str, ...]
    health: HealthResult | None
    preflight_notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"statuses": [s.to_dict() for s in self.statuses], "missing": list(self.missing),
                "health": self.health.to_dict() if self.health else None,
                "preflight_notes": list(self.preflight_notes)}

    def _repr_markdown_(self) -> str:
        head = "| unit | state | pid | memory | limit | active since | restarts |\n|---|---|---|---|---|---|---|"
        rows = [s.markdown_row() for s in self.statuses] + [f"| `{u}` | not found | - | - | - | - | - |" for u in self.missing]
        notes = [f"- _{s.unit}: {n}_" for s in self.statuses for n in s.notes]
        notes += [f"- _{n}_" for n in self.preflight_notes]
        health = self.health._repr_markdown_() if self.health else "_no health check configured_"
        return "\n".join([head, *rows, "", *notes, "", health])


def status(t: MitigationTarget) -> StatusReport:
    """Every unit's status (missing units listed, not fatal) and one health probe of the gateway."""
    sts, missing = [], []
    for u in t.manager.units:
        try:
            sts.append(t.manager.status(u))
        except ServiceError:
            missing.append(u)
    return StatusReport(tuple(sts), tuple(missing), check_health(t.manager, t.unit, token=t.token, once=True),
                        t.notes)


def restart(t: MitigationTarget, incident: Incident | None = None, *, full: bool = False, wait_s: float = 10.0,
            execute: bool = False, confirm: str = "", timeout_s: float = 30.0) -> ActionResult:
    """Restart the gateway (or a full ordered restart); a dry run shows the plan and its id."""
    return restart_service(t.manager, unit=None if full else t.unit, full=full, wait_s=wait_s, execute=execute,
                    confirm=confirm or None, token=t.token, timeout_s=timeout_s, incident=incident)


def debug_logging(t: MitigationTarget, incident: Incident | None = None, *, state: str = "", execute: bool = False,
                  confirm: str = "", window_s: float = 10.0) -> ActionResult | str:
    """``state`` "on"/"off" plans (or applies) the LOG_LEVEL=debug drop-in; "" skips."""
    if not state:
        return "debug logging: skipped (set debug_logging to 'on' or 'off')"
    if state not in ("on", "off"):
        raise ConfigError(f"debug_logging must be 'on', 'off' or '', not {state!r}", hint="e.g. debug_logging = 'on'")
    # The drop-in is a plan of its own: with execute but without its plan id, show that plan (a dry run)
    # rather than failing after the restart was already applied in the same run.
    return set_debug_logging(t.manager, unit=t.unit, enable=state == "on", execute=execute and bool(confirm),
                             confirm=confirm or None, token=t.token, window_s=window_s, incident=incident)


def after_restart(t: MitigationTarget, incident: Incident, result: ActionResult, *, live: bool = False,
                  watch_s: float = 60.0, interval_s: float = 1.0, log_lines: int = 50) -> PostRestartCheck:
    """Live (after an executed restart): sample the new process; else judge the incident's samples.csv.

    The check is saved as ``after_restart.json``; stage 06 takes "did the leak persist after the
    restart" from it (leak -> yes, no_leak -> no) when not told otherwise. ``log_lines``: the
    runbook's ``journalctl --user -u ... -n 50``.
    """
    lines = t.manager.log_lines(t.unit, lines=log_lines)
    before = incident.read_json("assessment") if incident.has("assessment") else None
    if live and not result.dry_run:
        out = Path(incident.root) / "samples-after-restart.csv"
        check = watch_after_restart(t.manager, t.unit, out=out, duration_s=watch_s, interval_s=interval_s,
                                    before=before)
    elif not incident.has("samples"):
        check = PostRestartCheck("-", "-", 0, "inconclusive", "none", None, None, None,
                                 "no samples.csv in the incident: run stage 01 first, or live=True after a restart",
                                 tuple(lines))
    else:
        check = post_restart_check(incident.path("samples"), before=before, log_lines=lines)
    incident.write_json("after_restart", check.to_dict())
    return check
