"""The runbook's "When to Escalate" as a decision, plus a restart schedule (shown, never installed).

Pure: an assessment (``LeakAssessment`` or its ``assessment.json`` dict) and what is known about
restarts and restores in, an :class:`EscalationDecision` out. Stage 06 (:mod:`zcnb.stages.escalate`)
reads its inputs from the incident folder; ``zcnb escalate`` from the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..actions import apply_hint
from ..config import check_unit
from ..exceptions import DataError
from ..units import format_bytes, format_duration

__all__ = ["RUNBOOK_RULES", "EscalationDecision", "RestartSchedule", "decide", "restart_schedule"]

RUNBOOK_RULES = {
    "collect_repro": "If leak persists after restart and state restore: suspected Zig runtime or vendor library bug "
                     "-> collect minimal reproducible case",
    "rollback_now": "Leak occurs within minutes -> likely catastrophic (a leak on every request) -> rollback to "
                    "previous version immediately",
    "schedule_restarts": "Gradual leak over days -> may be acceptable if restarts are routine (add to quarterly "
                         "maintenance)",
}
_MIN_INTERVAL_S = 300.0
_MAX_INTERVAL_S = 90 * 86400.0  # the runbook's "quarterly maintenance": no point scheduling rarer restarts


def _friendly_interval(seconds: float) -> float:
    """Round *down* (restarting a bit early is safe, late is not): 5-min steps under a day, whole hours above."""
    step = 3600.0 if seconds >= 86400 else 300.0
    return min(_MAX_INTERVAL_S, max(_MIN_INTERVAL_S, math.floor(seconds / step) * step))


def _cron_line(seconds: float, unit: str) -> tuple[str, str]:
    minutes = int(seconds // 60)
    cmd = f"XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user restart -- {check_unit(unit)}"
    if minutes < 60:
        m = max(d for d in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30) if d <= max(minutes, 1))
        return f"*/{m} * * * * {cmd}", f"every {m} min"
    hours = minutes // 60
    if hours < 24:
        h = max(d for d in (1, 2, 3, 4, 6, 8, 12) if d <= hours)
        return f"0 */{h} * * * {cmd}", f"every {h} h"
    days = hours // 24
    if days <= 31:
        return f"30 3 */{days} * * {cmd}", f"every {days} d at 03:30 (cron's day step restarts each month)"
    months = min(3, days // 30)
    return f"30 3 1 */{months} * {cmd}", f"on the 1st of every {months} month(s) at 03:30"


@dataclass(frozen=True)
class RestartSchedule:
    """A scheduled restart: a systemd user timer (exact interval) and a cron line (rounded down to fit cron)."""

    unit: str
    interval_s: float
    systemd_service: str
    systemd_timer: str
    cron: str
    cron_note: str
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "interval_s": self.interval_s, "systemd_service": self.systemd_service,
                "systemd_timer": self.systemd_timer, "cron": self.cron, "cron_note": self.cron_note, "basis": self.basis}

    def text(self) -> str:
        """The schedule as plain text: the two unit files, the command to enable them, the cron line."""
        stem = self.unit.removesuffix(".service")
        return (f"Restart {self.unit} every {format_duration(self.interval_s)} ({self.basis}). Shown, not installed.\n\n"
                f"~/.config/systemd/user/{stem}-restart.service:\n{_indent(self.systemd_service)}\n"
                f"~/.config/systemd/user/{stem}-restart.timer:\n{_indent(self.systemd_timer)}\n"
                f"Then: systemctl --user daemon-reload && systemctl --user enable --now {stem}-restart.timer\n\n"
                f"Or cron ({self.cron_note}):\n{_indent(self.cron)}")

    def _repr_markdown_(self) -> str:
        stem = self.unit.removesuffix(".service")
        return (f"**Restart `{self.unit}` every {format_duration(self.interval_s)}** ({self.basis}). Shown, not installed.\n\n"
                f"`~/.config/systemd/user/{stem}-restart.service`\n```ini\n{self.systemd_service}```\n"
                f"`~/.config/systemd/user/{stem}-restart.timer`\n```ini\n{self.systemd_timer}```\n"
                f"Then: `systemctl --user daemon-reload && systemctl --user enable --now {stem}-restart.timer`\n\n"
                f"Or cron ({self.cron_note}):\n```\n{self.cron}\n```")


def restart_schedule(interval_s: float, *, unit: str = "zeptoclaw-gateway.service", basis: str = "") -> RestartSchedule:
    """Snippets that restart ``unit`` every ``interval_s`` (rounded down to a friendly value)."""
    if not (interval_s > 0 and math.isfinite(interval_s)):
        raise DataError(f"restart interval {interval_s!r} is not a positive number of seconds",
                        hint="derive it from a leak assessment (recommended_restart_interval_s)")
    iv = _friendly_interval(interval_s)
    if interval_s > _MAX_INTERVAL_S:
        basis = (basis or f"interval {format_duration(interval_s)}") + "; capped at 90 d (quarterly maintenance, as the runbook says)"
    stem = unit.removesuffix(".service")
    service = (f"[Unit]\nDescription=Scheduled restart of {unit} (memory-leak mitigation, from zcnb)\n\n"
               f"[Service]\nType=oneshot\nExecStart=/usr/bin/systemctl --user restart -- {check_unit(unit)}\n")
    timer = (f"[Unit]\nDescription=Restart {unit} every {format_duration(iv)}\n\n"
             f"[Timer]\nOnActiveSec={int(iv)}s\nOnUnitActiveSec={int(iv)}s\nAccuracySec=1min\nUnit={stem}-restart.service\n\n"
             "[Install]\nWantedBy=timers.target\n")
    cron, note = _cron_line(iv, unit)
    return RestartSchedule(unit, iv, service, timer, cron, note, basis or f"interval {format_duration(interval_s)}")


@dataclass(frozen=True)
class EscalationDecision:
    """What to do next, by the runbook's "When to Escalate" rules, and why."""

    action: str  # rollback_now | collect_repro | schedule_restarts | restart_and_recheck | gather_more_data | none
    headline: str
    reasons: tuple[str, ...]
    runbook_rule: str
    verdict: str
    severity: str
    growth_bytes_per_hour: float | None
    time_to_limit_s: float | None
    persisted_after_restart: bool | None
    persisted_after_restore: bool | None
    next_steps: tuple[str, ...]
    schedule: RestartSchedule | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "headline": self.headline, "reasons": list(self.reasons),
                "runbook_rule": self.runbook_rule, "verdict": self.verdict, "severity": self.severity,
                "growth_bytes_per_hour": self.growth_bytes_per_hour, "time_to_limit_s": self.time_to_limit_s,
                "persisted_after_restart": self.persisted_after_restart,
                "persisted_after_restore": self.persisted_after_restore, "next_steps": list(self.next_steps),
                "schedule": self.schedule.to_dict() if self.schedule else None}

    def text(self) -> str:
        """The decision as plain text for a terminal (the notebook shows :meth:`_repr_markdown_`)."""
        growth = "-" if self.growth_bytes_per_hour is None else \
            format_bytes(self.growth_bytes_per_hour, unit="MiB", digits=2, signed=True) + "/h"
        ttl = "-" if self.time_to_limit_s is None else format_duration(self.time_to_limit_s)
        lines = [f"Escalation: {self.action.replace('_', ' ').upper()}", self.headline, "",
                 f"  verdict {self.verdict}, severity {self.severity}, growth {growth}, time to limit {ttl}",
                 (f"  persisted after restart: {_yn(self.persisted_after_restart)}, after state restore: "
                  f"{_yn(self.persisted_after_restore)}")]
        if self.runbook_rule:
            lines += ["", f"Runbook: {self.runbook_rule}"]
        if self.reasons:
            lines += ["", "Why:"] + [f"  - {r}" for r in self.reasons]
        if self.next_steps:
            lines += ["", "Next steps:"] + [f"  {i}. {st.replace('`', '')}" for i, st in enumerate(self.next_steps, 1)]
        if self.schedule is not None:
            lines += ["", self.schedule.text()]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        growth = "-" if self.growth_bytes_per_hour is None else \
            format_bytes(self.growth_bytes_per_hour, unit="MiB", digits=2, signed=True) + "/h"
        ttl = "-" if self.time_to_limit_s is None else format_duration(self.time_to_limit_s)
        lines = [f"### Escalation: **{self.action.replace('_', ' ')}**", "", self.headline, "",
                 "| verdict | severity | growth | time to limit | persisted after restart / restore |",
                 "|---|---|---|---|---|",
                 (f"| {self.verdict} | {self.severity} | {growth} | {ttl} | "
                  f"{_yn(self.persisted_after_restart)} / {_yn(self.persisted_after_restore)} |"), ""]
        if self.runbook_rule:
            lines += [f"> Runbook: {self.runbook_rule}", ""]
        lines += [f"- {r}" for r in self.reasons] + ["", "**Next steps**", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(self.next_steps, 1)]
        if self.schedule is not None:
            lines += ["", self.schedule._repr_markdown_()]
        return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


def _yn(v: bool | None) -> str:
    return "unknown" if v is None else ("yes" if v else "no")


def _num(d: Mapping[str, Any], key: str) -> float | None:
    v = d.get(key)
    if not isinstance(v, (int, float, str)):  # None, lists, dicts: not a number
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _interval(a: Mapping[str, Any]) -> tuple[float | None, str]:
    rec = _num(a, "recommended_restart_interval_s")
    if rec is not None and rec > 0:
        return rec, "the assessment's recommended_restart_interval_s"
    growth, limit, cur = _num(a, "growth_bytes_per_hour"), _num(a, "limit_bytes"), _num(a, "current_bytes")
    if growth and growth > 0 and limit and cur is not None:
        frac = float((a.get("thresholds") or {}).get("restart_fraction", 0.8))
        return max(0.0, (frac * limit - cur) / growth * 3600.0), f"time to reach {frac:.0%} of the limit at the current growth"
    return None, ""


def decide(assessment: Any, *, persisted_after_restart: bool | None = None,
           persisted_after_restore: bool | None = None, unit: str = "zeptoclaw-gateway.service") -> EscalationDecision:
    """Map a LeakAssessment (or its dict from assessment.json) to the runbook's escalation action."""
    a = assessment.to_dict() if hasattr(assessment, "to_dict") else assessment
    if not isinstance(a, Mapping) or "verdict" not in a:
        raise DataError("the assessment has no 'verdict' (is this assessment.json from stage 01?)",
                        hint="pass a LeakAssessment or the dict in assessment.json")
    verdict, severity = str(a.get("verdict")), str(a.get("severity") or "none")
    growth, ttl = _num(a, "growth_bytes_per_hour"), _num(a, "time_to_limit_s")
    pr, ps = persisted_after_restart, persisted_after_restore
    common: dict[str, Any] = {"verdict": verdict, "severity": severity, "growth_bytes_per_hour": growth,
                              "time_to_limit_s": ttl, "persisted_after_restart": pr, "persisted_after_restore": ps}
    reasons = [f"verdict {verdict}, severity {severity}" + (f", time to limit {format_duration(ttl)}" if ttl else "")]
    if verdict == "inconclusive":
        needed = a.get("needed") or {}
        return EscalationDecision("gather_more_data", "Not enough data to decide: sample longer before escalating.",
                                  tuple(reasons + [str(needed.get("reason", "see the assessment's notes"))]), "",
                                  next_steps=("re-run stage 01 with a longer window", "then decide again"), **common)
    if verdict != "leak":
        return EscalationDecision("none", "No leak confirmed: nothing to escalate; keep monitoring.", tuple(reasons),
                                  "", next_steps=("keep the Prometheus alert on RSS",), **common)
    iv, basis = _interval(a)
    schedule = restart_schedule(iv, unit=unit, basis=basis) if iv and iv > 0 else None
    if severity == "catastrophic":
        return EscalationDecision(
            "rollback_now",
            "The leak is catastrophic (limit or doubling of memory within the hour): roll back to the previous version now.",
            tuple(reasons), RUNBOOK_RULES["rollback_now"],
            next_steps=(("get the rollback plan, a dry run that changes nothing (notebook 06 shows it under this "
                         "decision; command line: `zcnb rollback --backup latest --bin-dir DIR`): stop all, restore "
                         "binaries + state from a dated backup, start, verify health"),
                        f"review it, then apply it. {apply_hint()}",
                        "keep the incident folder: it records the failing version's commit"), **common)
    if pr and ps:
        reasons.append("the leak persisted after a restart and after a state restore: not a bad-state problem")
        return EscalationDecision(
            "collect_repro", "Suspected Zig runtime or vendor-library bug: collect a minimal reproducible case.",
            tuple(reasons), RUNBOOK_RULES["collect_repro"],
            next_steps=("capture the allocator's leak report at a clean exit (stage 03)",
                        "reduce the traffic to the activity that correlates with growth (stage 03 bytes per event)",
                        "file it upstream with the commit, the leak report and the samples",
                        "meanwhile restart on the schedule below" if schedule else "meanwhile restart routinely"),
            schedule=schedule, **common)
    if severity in ("moderate", "low"):
        return EscalationDecision(
            "schedule_restarts", "Gradual leak: acceptable with routine restarts until a fix ships.",
            tuple(reasons + ([f"restart interval from {basis}"] if schedule else
                             ["no limit or growth to size an interval: pick one by hand"])),
            RUNBOOK_RULES["schedule_restarts"],
            next_steps=("install the timer below (or add it to quarterly maintenance)", "open a fix ticket (stage 05 report)"),
            schedule=schedule, **common)
    return EscalationDecision(
        "restart_and_recheck", "Fast leak (hours): restart now (stage 02), restore state if it is suspect (stage 04), "
                               "then re-sample (stage 01) and decide again.",
        tuple(reasons + [f"persisted after restart: {_yn(pr)}, after restore: {_yn(ps)}"]), "",
        next_steps=("restart (stage 02) and watch the post-restart window",
                    "if the state is suspect, restore it (stage 04)",
                    "call decide() again with persisted_after_restart / persisted_after_restore"),
        schedule=schedule, **common)
