"""``summary.json``: the machine-readable report, condensed from the files in an incident folder.

``run_incident`` writes it after the stages ran; the report notebook (stage 05) rebuilds it from the
folder's files each time it runs (keeping the run's stage records), so a stage re-run in JupyterLab
shows up. A stage whose output is missing leaves its part empty; :func:`stage_states` says why
(skipped, failed, not run yet) so the report can word each case differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, read_actions
from ..incident import Incident

__all__ = ["STAGE_NAMES", "build_incident_summary", "find_commit", "stage_states"]

# What each stage is called in the report, and the file that shows it ran (for folders without a run record).
STAGE_NAMES = {"01": "confirm the leak", "02": "mitigate", "03": "diagnose", "04": "restore state",
               "05": "incident report", "06": "escalate / roll back"}
_STAGE_OUTPUT = {"01": "assessment", "02": "after_restart", "03": "log_summary", "04": "restore", "06": "escalation"}
_ASSESSMENT_KEYS = (
    "verdict", "pattern", "growth_bytes_per_hour", "growth_interval", "confidence", "p_value", "column",
    "n_samples", "duration_s", "start", "end", "limit_bytes", "limit_source", "time_to_limit_s",
    "time_to_limit_interval", "recommended_restart_interval_s", "severity", "advice", "onset", "notes",
    "current_bytes", "doubling_time_s", "needed", "detected_at")


def find_commit(inc: Incident, *, settings: Any = None) -> str | None:
    """The gateway's commit: the incident's commit.txt, else the newest backup's commit.txt."""
    if inc.has("commit"):
        text = inc.path("commit").read_text(encoding="utf-8").strip()
        if text:
            return text.split()[0]
    if settings is not None:
        backups = Path(settings.backups_dir)
        if backups.is_dir():
            for b in sorted(backups.iterdir(), reverse=True):
                c = b / "commit.txt"
                if c.is_file() and c.read_text(encoding="utf-8").strip():
                    return c.read_text(encoding="utf-8").strip().split()[0]
    return None


def _restarts(samples: Any, actions: list[ActionResult]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in actions:
        if "restart" in a.action and not a.dry_run:
            out.append({"timestamp": a.started_at.isoformat(), "duration_s": a.duration_s, "source": "action",
                        "what": f"{a.action} {a.target}", "outcome": a.outcome})
    if samples is not None:
        for _, row in samples[samples["event"] == "restart"].iterrows():
            out.append({"timestamp": row["timestamp"].isoformat(), "duration_s": None, "source": "samples",
                        "what": str(row.get("note", "")), "outcome": "observed"})
    return sorted(out, key=lambda r: r["timestamp"])


def _assess_samples(inc: Incident, samples: Any) -> dict[str, Any]:
    """Stage 01 left no assessment.json: assess its samples here, and say so."""
    if samples is None:
        return {}
    from ..analysis import assess_leak
    from ..exceptions import ZcnbError

    try:
        a = assess_leak(samples).to_dict()
    except ZcnbError as exc:
        return {"verdict": None, "notes": [f"samples could not be assessed: {exc}"]}
    a["notes"] = [*a.get("notes", []), "assessed by the report stage: stage 01 wrote no assessment.json"]
    return a


def _skill_counts(skills: Any) -> dict[str, int]:
    """``{skill: count}`` from LogSummary's rows (or an already flat mapping)."""
    if isinstance(skills, dict):
        return {str(k): int(v) for k, v in skills.items()}
    return {str(r["skill"]): int(r["count"]) for r in skills or [] if isinstance(r, dict) and "skill" in r}


def _sampling(samples: Any, column: str | None) -> dict[str, Any] | None:
    """When sampling began and ended, how much was measured, and the memory seen (first, peak, last)."""
    if samples is None or not len(samples):
        return None
    measured = samples[samples["event"].fillna("") != "gap"]
    col = column if column and column in samples else "rss_bytes"
    values = measured[col].dropna() if col in measured else None
    out: dict[str, Any] = {
        "started": samples["timestamp"].iloc[0].isoformat(), "ended": samples["timestamp"].iloc[-1].isoformat(),
        "duration_s": float((samples["timestamp"].iloc[-1] - samples["timestamp"].iloc[0]).total_seconds()),
        "samples": int(len(measured)), "gaps": int((samples["event"] == "gap").sum()),
        "sources": sorted({s for v in samples.get("source", []) for s in str(v or "").split("+") if s}),
        "column": col,
    }
    if values is not None and len(values):
        peak_at = values.idxmax()
        out.update(first_bytes=float(values.iloc[0]), last_bytes=float(values.iloc[-1]),
                   peak_bytes=float(values.max()), peak_at=measured.loc[peak_at, "timestamp"].isoformat())
    return out


def _process(inc: Incident, samples: Any) -> str | None:
    """Which process was observed and why it was chosen: the samples header, else preflight's choice."""
    header = getattr(samples, "attrs", {}).get("header") or {} if samples is not None else {}
    if header.get("process"):
        return str(header["process"])
    pre = (inc.read_json_or_none("preflight") or {}) if inc.has("preflight") else {}
    row = next((c for c in pre.get("checks") or [] if c.get("name") == "process"), None)
    return str(row["detail"]) if row and row.get("detail") else None


def _leak_report(inc: Incident) -> dict[str, Any] | None:
    d = inc.read_json_or_none("leak_report")
    if not isinstance(d, dict):
        return None
    return {k: d.get(k) for k in ("summary", "tools", "top_sites", "leaked_bytes", "totals", "source")}


def _escalation(inc: Incident, assessment: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Stage 06's decision, or the same rule applied here to stage 01's assessment when 06 has not decided."""
    esc = inc.read_json_or_none("escalation")
    if isinstance(esc, dict) and esc:
        return esc, "stage 06"
    if not assessment.get("verdict"):
        return None, ""
    from ..analysis.escalation import decide
    from ..exceptions import ZcnbError

    after = inc.read_json_or_none("after_restart") or {}
    persisted = {"leak": True, "no_leak": False}.get(str(after.get("verdict")))
    try:
        return decide(assessment, persisted_after_restart=persisted).to_dict(), "report"
    except ZcnbError:
        return None, ""


def stage_states(inc: Incident, stages: Sequence[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """``{"01": {"state": ..., "error": ..., "notebook": ..., "cell": ...}, ...}`` for stages 01-04 and 06.

    With a run record (``zcnb report`` wrote ``stages``): ``ok`` or ``failed`` for the stages it ran and
    ``skipped`` for the others. Without one (notebooks run by hand): ``ok`` when the stage's output file is
    in the folder, else ``not run``.
    """
    out: dict[str, dict[str, Any]] = {}
    ran = {str(s.get("stage") or str(s.get("notebook", ""))[:2]): s for s in stages or []}
    for stage, key in _STAGE_OUTPUT.items():
        if stages:
            rec = ran.get(stage)
            state = "skipped" if rec is None else ("ok" if rec.get("status") == "ok" else "failed")
            out[stage] = {"state": state, "error": (rec or {}).get("error"), "notebook": (rec or {}).get("notebook"),
                          "cell": (rec or {}).get("failed_cell")}
        else:
            out[stage] = {"state": "ok" if inc.has(key) else "not run", "error": None, "notebook": None, "cell": None}
    return out


def build_incident_summary(inc: Incident, *, stages: Sequence[dict[str, Any]] = (), started_at: datetime | None = None,
                           parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Condense an incident folder into the dict written as summary.json."""
    from ..config import load_settings
    from .timeline import build_timeline

    samples = _read_samples(inc)
    assessment = inc.read_json_or_none("assessment") or _assess_samples(inc, samples)
    log_summary = inc.read_json_or_none("log_summary") or {}
    correlation = inc.read_json_or_none("correlation") or {}
    escalation, escalation_source = _escalation(inc, assessment)
    actions = read_actions(inc.path("actions"))
    failed = [s["notebook"] for s in stages if s.get("status") != "ok"]
    return {
        "incident": inc.root.name,
        "started_at": (started_at or datetime.now(UTC)).isoformat(),  # when the stages started
        "ok": not failed,
        "failed_stages": failed,
        "stages": list(stages),
        "stage_states": stage_states(inc, stages),
        "replay": inc.replay,
        "sampling": _sampling(samples, assessment.get("column")),
        "process": _process(inc, samples),
        "detected_at": assessment.get("detected_at") or assessment.get("end"),
        "assessment": {k: assessment.get(k) for k in _ASSESSMENT_KEYS},
        "after_restart": {k: v for k, v in (inc.read_json_or_none("after_restart") or {}).items() if k != "log_lines"}
        or None,
        "restarts": _restarts(samples, actions),
        "oom": inc.read_json_or_none("oom"),
        "crashes": list(log_summary.get("crashes") or []),
        "skills": _skill_counts(log_summary.get("skills")),
        "log_totals": {k: log_summary.get(k) for k in ("n_lines", "levels", "requests", "start", "end")
                       if k in log_summary},
        "errors": (log_summary.get("top_errors") or log_summary.get("errors") or [])[:20],
        "correlation": {k: correlation.get(k) for k in ("r2", "n_buckets", "bucket_s", "evidence", "statement",
                                                         "intercept_bytes_per_bucket", "notes")} if correlation else None,
        "top_activity": (correlation.get("ranking") or [{}])[0] if correlation.get("ranking") else None,
        "leak_report": _leak_report(inc),
        "escalation": escalation,
        "escalation_source": escalation_source,
        "commit": find_commit(inc, settings=load_settings()),
        "timeline": build_timeline(inc, samples, assessment).to_dict(),
        "actions": [a.to_dict() for a in actions],
        "actions_note": getattr(actions, "note", ""),
        "parameters": dict(parameters or {}),
    }


def _read_samples(inc: Incident) -> Any:
    if not inc.has("samples"):
        return None
    from ..collect.sampling import read_samples
    from ..exceptions import ZcnbError

    try:
        return read_samples(inc.path("samples"))
    except ZcnbError:
        return None
