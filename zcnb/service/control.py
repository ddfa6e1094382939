"""Mitigation actions (stage 02): restart one unit, ordered full restart, LOG_LEVEL=debug drop-in.

Each builds a :class:`~zcnb.actions.Plan`, runs only with ``execute=True`` and the plan id, and returns an
:class:`~zcnb.actions.ActionResult` (appended to the incident's actions.jsonl when an incident is given).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, Plan, append_action, apply_hint, require_confirmation
from ..config import Secret
from ..exceptions import ConfigError, ServiceError
from ..files import ensure_private_dir, unique_path, write_private
from ..incident import Incident
from .base import ServiceManager, StepOutcome
from .health import HealthResult, probe_health, wait_healthy

__all__ = ["check_health", "debug_lines", "plan_debug_logging", "plan_restart", "record", "restart_order",
           "restart_service", "set_debug_logging"]

# Zig's format is "debug: ..." / "debug(scope): ..."; a short-style journal line has "host unit[pid]: " in front.
# Health not verified, not unhealthy: no token (nothing may be sent) or no free slot in the request budget.
_UNVERIFIED = ("not_probed", "throttled")
_DEBUG_RE = re.compile(r"^(?:.*?\[\d+\]:\s)?\s*debug(\([^)]*\))?:")


def record(incident: Incident | str | os.PathLike[str] | None, result: ActionResult) -> None:
    """Append ``result`` to the incident's actions.jsonl (no-op without an incident)."""
    if incident is None or incident == "":
        return
    inc = incident if isinstance(incident, Incident) else Incident(Path(incident))
    append_action(inc.path("actions"), result)


def _pid_getter(manager: ServiceManager, unit: str) -> Any:
    def get() -> int | None:
        try:
            return manager.status(unit).pid
        except ServiceError:
            return None
    return get


def check_health(manager: ServiceManager, unit: str, *, token: Secret | None, timeout_s: float = 30.0,
                 once: bool = False) -> HealthResult | None:
    """Health of ``unit`` via its configured check (None when the unit has none)."""
    hc = manager.health_check(unit)
    if hc is None:
        return None
    tok = token if hc.needs_token else None
    if hc.needs_token and token is None:
        # A token-less probe would be answered 401 and, on the real gateway, leak memory itself.
        from .health import HealthResult, pid_alive

        pid = _pid_getter(manager, unit)()
        return HealthResult(hc.url, "not_probed", "no gateway token is set: /health was not probed", pid=pid,
                            pid_alive=pid_alive(pid), token_sent=False)
    if once:
        return probe_health(hc.url, token=tok, timeout_s=min(timeout_s, 2.0), pid=_pid_getter(manager, unit)(),
                            expect=hc.expect, budget_wait_s=min(timeout_s, 2.0))
    return wait_healthy(hc.url, token=tok, timeout_s=timeout_s, pid_getter=_pid_getter(manager, unit), expect=hc.expect)


def restart_order(manager: ServiceManager, order: Sequence[str] | None) -> tuple[str, ...]:
    units = tuple(order) if order else manager.units
    unknown = [u for u in units if u not in manager.units]
    if unknown:
        raise ConfigError(f"unknown unit(s) in the restart order: {', '.join(unknown)}",
                          hint=f"known units: {', '.join(manager.units)}")
    return units


def _health_step(manager: ServiceManager, unit: str, timeout_s: float) -> list[str]:
    hc = manager.health_check(unit)
    if hc is None:
        return []
    auth = " with X-Auth-Token" if hc.needs_token else ""
    return [f"wait until GET {hc.url}{auth} is healthy (timeout {timeout_s:.0f} s)"]


def plan_restart(manager: ServiceManager, *, unit: str | None = None, full: bool = False, wait_s: float = 10.0,
                 order: Sequence[str] | None = None, timeout_s: float = 30.0,
                 health_timeout_s: float = 30.0) -> Plan:
    """The exact steps of a restart of ``unit`` (default: the first unit) or of an ordered full restart."""
    if wait_s < 0 or timeout_s <= 0:
        raise ConfigError("wait_s must be >= 0 and timeout_s > 0", hint="e.g. wait_s=10 (the runbook's pause)")
    if full:
        units = restart_order(manager, order)
        steps = [c for u in reversed(units) for c in manager.commands_for("stop", u)]
        steps.append(f"sleep {wait_s:g}  # let the OS reclaim memory")
        for u in units:
            steps += list(manager.commands_for("start", u)) + _health_step(manager, u, health_timeout_s)
        return Plan("full-restart", ",".join(units), tuple(steps))
    u = unit or manager.units[0]
    restart_order(manager, [u])
    steps = list(manager.commands_for("restart", u))
    kill = manager.commands_for("kill", u)
    steps.append(f"if that hangs > {timeout_s:.0f} s: {kill[0]}; then start again (exit-time leak report lost)")
    steps += _health_step(manager, u, health_timeout_s)
    return Plan("restart", u, tuple(steps))


def _now() -> datetime:
    return datetime.now(UTC)


def _states(manager: ServiceManager, units: Sequence[str]) -> str:
    parts = []
    for u in units:
        try:
            st = manager.status(u)
            parts.append(f"{u}={st.active_state}")
        except ServiceError as exc:
            parts.append(f"{u}=unknown ({exc.message})")
    return ", ".join(parts)


def restart_service(manager: ServiceManager, *, unit: str | None = None, full: bool = False, execute: bool = False,
            confirm: str | None = None, token: Secret | None = None, wait_s: float = 10.0,
            order: Sequence[str] | None = None, timeout_s: float = 30.0, health_timeout_s: float = 30.0,
            incident: Incident | str | os.PathLike[str] | None = None) -> ActionResult:
    """Restart ``unit`` (or everything, in order, with ``full=True``); dry run unless confirmed."""
    plan = plan_restart(manager, unit=unit, full=full, wait_s=wait_s, order=order, timeout_s=timeout_s,
                        health_timeout_s=health_timeout_s)
    units = restart_order(manager, order) if full else (plan.target,)
    started = _now()
    before = check_health(manager, units[0], token=token, timeout_s=2.0, once=True)
    before_s = before.summary() if before else None
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        res = ActionResult(plan.action, plan.target, True, "planned", started_at=started, finished_at=_now(),
                           commands=plan.steps, plan_id=plan.plan_id, health_before=before_s,
                           message=f"dry run: nothing was changed. {apply_hint(plan.plan_id)}")
        record(incident, res)
        return res
    out = StepOutcome()
    healths: dict[str, Any] = {}
    outcome, message = "ok", ""
    try:
        if full:
            for u in reversed(units):
                out = out + manager.stop(u, timeout_s=timeout_s)
            time.sleep(wait_s)
            for i, u in enumerate(units):
                out = out + manager.start(u, timeout_s=timeout_s)
                h = check_health(manager, u, token=token, timeout_s=health_timeout_s)
                if h is not None:
                    healths[u] = h.to_dict()
                    if not h.healthy and h.state not in _UNVERIFIED:
                        left = units[i + 1:]
                        outcome = "partial"
                        message = (f"{u} started but is {h.state} ({h.detail}); stopped the sequence: "
                                   f"{', '.join(left) or 'nothing'} left stopped. {h.advice}")
                        break
        else:
            out = manager.restart(plan.target, timeout_s=timeout_s)
            h = check_health(manager, plan.target, token=token, timeout_s=health_timeout_s)
            if h is not None:
                healths[plan.target] = h.to_dict()
                if h.state in _UNVERIFIED:
                    message = f"{plan.target} restarted; health not verified ({h.detail})."
                elif not h.healthy:
                    outcome, message = "failed", f"{plan.target} restarted but is {h.state} ({h.detail}). {h.advice}"
    except ServiceError as exc:
        outcome = "failed"
        message = f"{exc}. State now: {_states(manager, units)}"
    unverified = [u for u, h in healths.items() if h.get("state") in _UNVERIFIED]
    if full and outcome == "ok" and unverified:
        why = {str(healths[u].get("detail") or "") for u in unverified}
        message = f"health not verified for {', '.join(unverified)}: {'; '.join(sorted(why))}."
    after = healths.get(units[0])
    res = ActionResult(plan.action, plan.target, False, outcome, started_at=started, finished_at=_now(),
                       commands=out.commands, plan_id=plan.plan_id, health_before=before_s,
                       health_after=f"{after['state']} after {after['elapsed_s']:.1f} s" if after else None,
                       message=" ".join([message, *out.warnings]).strip() or "done",
                       details={"warnings": list(out.warnings), "health": healths, **out.details})
    record(incident, res)
    return res


def debug_lines(lines: Sequence[str]) -> list[str]:
    """Lines in Zig's debug level format (``debug: ...`` / ``debug(scope): ...``)."""
    return [ln for ln in lines if _DEBUG_RE.match(ln)]


def plan_debug_logging(manager: ServiceManager, *, unit: str | None = None, enable: bool = True,
                       window_s: float = 10.0) -> Plan:
    """Steps of turning the LOG_LEVEL=debug drop-in on or off (``systemctl --user edit`` semantics)."""
    u = unit or manager.units[0]
    restart_order(manager, [u])
    path = manager.env_dropin_path(u)
    if enable:
        steps = [f"if {path} exists: keep a copy as {path.name}.bak-<timestamp>",
                 f"write {path}: LOG_LEVEL=debug"]
    else:
        steps = [f"move {path} to {path.name}.removed-<timestamp> (kept)"]
    steps += list(manager.commands_for("reload", u)) + list(manager.commands_for("restart", u))
    if enable:
        steps.append(f"watch the log for {window_s:g} s and report whether debug lines appear")
    return Plan("debug-logging-on" if enable else "debug-logging-off", u, tuple(steps))


def set_debug_logging(manager: ServiceManager, *, unit: str | None = None, enable: bool = True,
                      execute: bool = False, confirm: str | None = None, token: Secret | None = None,
                      window_s: float = 10.0, timeout_s: float = 30.0,
                      incident: Incident | str | os.PathLike[str] | None = None) -> ActionResult:
    """Write/remove the LOG_LEVEL=debug drop-in, reload, restart, then say whether debug lines really appear."""
    plan = plan_debug_logging(manager, unit=unit, enable=enable, window_s=window_s)
    u = plan.target
    started = _now()
    if not require_confirmation(plan, execute=execute, confirm=confirm):
        res = ActionResult(plan.action, u, True, "planned", started_at=started, finished_at=_now(),
                           commands=plan.steps, plan_id=plan.plan_id,
                           message=f"dry run: nothing was changed. {apply_hint(plan.plan_id)}")
        record(incident, res)
        return res
    path = manager.env_dropin_path(u)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    files: list[str] = []
    if path.exists():
        # Named per second: a second change in the same second gets .bak-<ts>-2, never overwriting the first copy.
        keep = unique_path(path.with_name(f"{path.name}.{'bak' if enable else 'removed'}-{stamp}"))
        shutil.copy2(path, keep)
        files.append(f"kept {keep}")
    if enable:
        ensure_private_dir(path.parent)  # created only now: a dry run creates nothing
        write_private(path, manager.render_env_dropin({"LOG_LEVEL": "debug"}))
        files.append(f"wrote {path}")
    elif path.exists():
        path.unlink()
        files.append(f"removed {path}")
    out = StepOutcome(tuple(files))
    outcome, message, seen = "ok", "", 0
    try:
        out = out + manager.reload()
        t_restart = _now()
        out = out + manager.restart(u, timeout_s=timeout_s)
        h = check_health(manager, u, token=token, timeout_s=timeout_s)
        if h is not None and not h.healthy and h.state not in _UNVERIFIED:
            outcome, message = "failed", f"{u} restarted but is {h.state} ({h.detail})."
        if enable:
            deadline = time.monotonic() + window_s
            while True:
                seen = len(debug_lines(manager.log_lines(u, lines=2000, since=t_restart)))
                if seen or time.monotonic() >= deadline:
                    break
                time.sleep(0.25)
            message += (f" Debug lines appeared ({seen} within {window_s:g} s): LOG_LEVEL=debug is honoured."
                        if seen else
                        f" NO debug lines appeared within {window_s:g} s: this binary ignores LOG_LEVEL (the real "
                        "zeptoclaw-gateway does), so the drop-in changes nothing; remove it with debug-logging off.")
    except ServiceError as exc:
        outcome, message = "failed", f"{exc}. Drop-in left {'in place' if enable else 'removed'} at {path}."
    res = ActionResult(plan.action, u, False, outcome, started_at=started, finished_at=_now(),
                       commands=out.commands, plan_id=plan.plan_id, message=" ".join([message.strip(), *out.warnings]).strip(),
                       details={"dropin": str(path), "debug_lines_seen": seen, "warnings": list(out.warnings)})
    record(incident, res)
    return res
