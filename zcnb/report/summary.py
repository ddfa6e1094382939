"""``summary.json``: the machine-readable report, condensed from the files in an incident folder.

``run_incident`` writes it after the stages ran; the report notebook (stage 05) reads it, and
builds it itself when it is missing. A stage whose output is missing leaves its part empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..actions import ActionResult, read_actions
from ..incident import Incident

__all__ = ["build_incident_summary", "find_commit"]


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


def _restarts(inc: Incident, actions: list[ActionResult]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in actions:
        if "restart" in a.action and not a.dry_run:
            out.append({"timestamp": a.started_at.isoformat(), "duration_s": a.duration_s, "source": "action",
                        "what": f"{a.action} {a.target}", "outcome": a.outcome})
    if inc.has("samples"):
        from ..collect.sampling import read_samples

        df = read_samples(inc.path("samples"))
        for _, row in df[df["event"] == "restart"].iterrows():
            out.append({"timestamp": row["timestamp"].isoformat(), "duration_s": None, "source": "samples",
                        "what": str(row.get("note", "")), "outcome": "observed"})
    return sorted(out, key=lambda r: r["timestamp"])


def _assess_samples(inc: Incident) -> dict[str, Any]:
    """Stage 01 left no assessment.json: assess its samples here, and say so."""
    if not inc.has("samples"):
        return {}
    from ..analysis import assess_leak
    from ..collect.sampling import read_samples
    from ..exceptions import ZcnbError

    try:
        a = assess_leak(read_samples(inc.path("samples"))).to_dict()
    except ZcnbError as exc:
        return {"verdict": None, "notes": [f"samples could not be assessed: {exc}"]}
    a["notes"] = [*a.get("notes", []), "assessed by the report stage: stage 01 wrote no assessment.json"]
    return a


def _skill_counts(skills: Any) -> dict[str, int]:
    """``{skill: count}`` from LogSummary's rows (or an already flat mapping)."""
    if isinstance(skills, dict):
        return {str(k): int(v) for k, v in skills.items()}
    return {str(r["skill"]): int(r["count"]) for r in skills or [] if isinstance(r, dict) and "skill" in r}


def build_incident_summary(inc: Incident, *, stages: Sequence[dict[str, Any]] = (), started_at: datetime | None = None,
                  parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Condense an incident folder into the dict written as summary.json."""
    from ..config import load_settings
    from .timeline import build_timeline

    assessment = inc.read_json_or_none("assessment") or _assess_samples(inc)
    log_summary = inc.read_json_or_none("log_summary") or {}
    correlation = inc.read_json_or_none("correlation") or {}
    escalation = inc.read_json_or_none("escalation") or {}
    actions = read_actions(inc.path("actions"))
    failed = [s["notebook"] for s in stages if s.get("status") != "ok"]
    return {
        "incident": inc.root.name,
        "started_at": (started_at or datetime.now(UTC)).isoformat(),
        "ok": not failed,
        "failed_stages": failed,
        "stages": list(stages),
        "detected_at": assessment.get("detected_at") or assessment.get("end"),
        "assessment": {k: assessment.get(k) for k in (
            "verdict", "pattern", "growth_bytes_per_hour", "growth_interval", "confidence", "p_value", "column",
            "n_samples", "duration_s", "start", "end", "limit_bytes", "limit_source", "time_to_limit_s",
            "time_to_limit_interval", "recommended_restart_interval_s", "severity", "advice", "onset", "notes")},
        "restarts": _restarts(inc, actions),
        "oom": inc.read_json_or_none("oom"),
        "skills": _skill_counts(log_summary.get("skills")),
        "errors": (log_summary.get("top_errors") or log_summary.get("errors") or [])[:20],
        "top_activity": (correlation.get("ranking") or [{}])[0] if correlation.get("ranking") else None,
        "escalation": escalation or None,
        "commit": find_commit(inc, settings=load_settings()),
        "timeline": build_timeline(inc).to_dict(),
        "actions": [a.to_dict() for a in actions],
        "actions_note": getattr(actions, "note", ""),
        "parameters": dict(parameters or {}),
    }
