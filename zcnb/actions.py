"""Results and plans of actions that change the service or its files.

Every destructive step (restart, stop, drop-in, restore, rollback) first builds a
:class:`Plan`; it runs only when called with ``execute=True`` *and* a ``confirm``
equal to the plan's id (a short hash of the exact steps), so a headless run can
never apply a plan nobody saw. Whatever happens is recorded as an
:class:`ActionResult`, which the incident report lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .exceptions import PlanError

__all__ = ["ActionList", "ActionResult", "Plan", "append_action", "apply_hint", "read_actions", "require_confirmation"]

_log = logging.getLogger(__name__)


def apply_hint(plan_id: str = "<plan id>") -> str:
    """How to apply a plan, for both ways of running zcnb (notebook parameters and the command line)."""
    return f"To apply: execute=True, confirm={plan_id!r} in the notebook, or --execute --confirm {plan_id} on the command line"


@dataclass(frozen=True)
class Plan:
    """An ordered list of human-readable steps (exact commands / file operations)."""

    action: str
    target: str
    steps: tuple[str, ...]

    @property
    def plan_id(self) -> str:
        digest = hashlib.sha256(json.dumps([self.action, self.target, list(self.steps)]).encode()).hexdigest()
        return digest[:8]

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target, "steps": list(self.steps), "plan_id": self.plan_id}

    def _repr_markdown_(self) -> str:
        lines = [f"**Plan `{self.plan_id}`**: {self.action} `{self.target}`", ""]
        lines += [f"{i}. `{s}`" for i, s in enumerate(self.steps, 1)]
        lines += ["", apply_hint(self.plan_id)]
        return "\n".join(lines)


def require_confirmation(plan: Plan, *, execute: bool, confirm: str | None) -> bool:
    """Return True when the plan may run; False for a dry run.

    Raises :class:`PlanError` when ``execute`` is set without the plan's id.
    """
    if not execute:
        return False
    if confirm != plan.plan_id:
        raise PlanError(
            f"refusing to apply plan {plan.plan_id} ({plan.action} {plan.target}): confirm={confirm!r} does not match",
            hint=f"review the plan, then pass confirm={plan.plan_id!r} (CLI: --confirm {plan.plan_id})",
            plan_id=plan.plan_id,
        )
    return True


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ActionResult:
    """What an action did (or would do, when ``dry_run``)."""

    action: str
    target: str
    dry_run: bool
    outcome: str  # "planned" | "ok" | "failed" | "partial" | "skipped"
    started_at: datetime = field(default_factory=_now)
    finished_at: datetime | None = None
    commands: tuple[str, ...] = ()
    message: str = ""
    health_before: str | None = None
    health_after: str | None = None
    plan_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def ok(self) -> bool:
        return self.outcome in ("ok", "planned", "skipped")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        d["duration_s"] = self.duration_s
        d["commands"] = list(self.commands)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionResult:
        d = dict(d)
        d.pop("duration_s", None)
        d["started_at"] = datetime.fromisoformat(d["started_at"])
        d["finished_at"] = datetime.fromisoformat(d["finished_at"]) if d.get("finished_at") else None
        d["commands"] = tuple(d.get("commands", ()))
        return cls(**d)

    def _repr_markdown_(self) -> str:
        mode = "DRY RUN" if self.dry_run else "EXECUTED"
        dur = f"{self.duration_s:.1f} s" if self.duration_s is not None else "-"
        lines = [f"**{self.action}** `{self.target}` ({mode}): **{self.outcome}** in {dur}"]
        if self.message:
            lines.append(f"\n{self.message}")
        if self.commands:
            lines.append("\n```\n" + "\n".join(self.commands) + "\n```")
        health = [f"{k}: `{v}`" for k, v in (("health before", self.health_before), ("after", self.health_after)) if v]
        if health:
            lines.append("\n" + ", ".join(health))
        return "\n".join(lines)


def append_action(path: str | os.PathLike[str], result: ActionResult) -> None:
    """Append one result as a JSON line to ``path`` (created 0600), flushed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result.to_dict(), default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class ActionList(list[ActionResult]):
    """The results read from an actions.jsonl, plus the line numbers that could not be read."""

    skipped: tuple[int, ...] = ()

    @property
    def note(self) -> str:
        """'' when every line was read; else how many lines were skipped and which (1-based)."""
        if not self.skipped:
            return ""
        shown = ", ".join(str(n) for n in self.skipped[:20]) + (" ..." if len(self.skipped) > 20 else "")
        return (f"{len(self.skipped)} unreadable line{'s' if len(self.skipped) != 1 else ''} skipped in the actions "
                f"log (line{'s' if len(self.skipped) != 1 else ''} {shown}): those actions are not listed")


def read_actions(path: str | os.PathLike[str]) -> ActionList:
    """Read results written by :func:`append_action` (missing file: empty list).

    Unreadable lines (e.g. one cut by a crash) are skipped, not fatal: their 1-based line numbers are in
    ``.skipped`` and ``.note`` says so (also logged as a warning), so a report can tell that actions are missing.
    """
    p = Path(path)
    out = ActionList()
    if not p.exists():
        return out
    skipped: list[int] = []
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if line:
            try:
                out.append(ActionResult.from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError, AttributeError):
                skipped.append(n)  # a line cut by a crash: the rest is still good
    out.skipped = tuple(skipped)
    if skipped:
        _log.warning("%s: %s", p, out.note)
    return out
