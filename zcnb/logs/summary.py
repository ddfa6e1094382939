"""The result of :func:`zcnb.logs.summarize_logs`: tables, counts, restarts and per-bucket activity."""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .scan import Acc

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LogSummary", "skill_totals", "summary_from_tallies"]


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _iso(dt: Any) -> str | None:
    if dt is None:
        return None
    try:
        import pandas as pd

        if pd.isna(dt):
            return None
    except (TypeError, ValueError):
        pass
    return str(dt.isoformat())


@dataclass(frozen=True, eq=False)
class LogSummary:
    """Everything stage 03 learns from the unit's log (messages already redacted)."""

    unit: str | None
    source: str
    bucket_s: int
    n_lines: int
    start: datetime | None
    end: datetime | None
    skills: pd.DataFrame  # skill, count, token_form, tool_form (sorted like sort | uniq -c | sort -nr)
    tools: pd.DataFrame  # tool, count
    levels: dict[str, int]
    priorities: dict[int, int] | None  # only when journald PRIORITY varies (i.e. means something)
    top_errors: pd.DataFrame  # level, message, count, first_seen, last_seen
    restarts: pd.DataFrame  # timestamp, old_pid, new_pid, reason
    pids: tuple[int, ...]
    requests: dict[str, int]
    alloc_mentions: dict[str, int]
    allocator: dict[str, int]
    buckets: pd.DataFrame  # index bucket start (UTC), one column per activity
    notes: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return (f"LogSummary(unit={self.unit!r}, lines={self.n_lines}, skills={self.skill_counts}, "
                f"errors={self.levels.get('error', 0)}, warnings={self.levels.get('warning', 0)}, "
                f"restarts={len(self.restarts)})")

    @property
    def skill_counts(self) -> dict[str, int]:
        return {str(r.skill): int(r.count) for r in self.skills.itertuples()}

    def runbook_table(self) -> str:
        """The skill table as the runbook's ``sort | uniq -c | sort -nr`` prints it."""
        return "\n".join(f"{int(r.count):7d} skill:{r.skill}" for r in self.skills.itertuples())

    def to_dict(self) -> dict[str, Any]:
        errors = [
            {"level": r.level, "message": r.message, "count": int(r.count),
             "first_seen": _iso(r.first_seen), "last_seen": _iso(r.last_seen)}
            for r in self.top_errors.itertuples()
        ]
        restarts = [
            {"timestamp": _iso(r.timestamp), "old_pid": None if r.old_pid is None else int(r.old_pid),
             "new_pid": None if r.new_pid is None else int(r.new_pid), "reason": r.reason}
            for r in self.restarts.itertuples()
        ]
        return {
            "unit": self.unit, "source": self.source, "bucket_s": self.bucket_s, "n_lines": self.n_lines,
            "start": _iso(self.start), "end": _iso(self.end),
            "skills": [{"skill": str(r.skill), "count": int(r.count), "token_form": int(r.token_form),
                        "tool_form": int(r.tool_form)} for r in self.skills.itertuples()],
            "tools": {str(r.tool): int(r.count) for r in self.tools.itertuples()},
            "levels": dict(self.levels), "priorities": ({str(k): v for k, v in self.priorities.items()}
                                                        if self.priorities else None),
            "top_errors": errors, "restarts": restarts, "pids": list(self.pids), "requests": dict(self.requests),
            "alloc_mentions": dict(self.alloc_mentions), "allocator": dict(self.allocator),
            "n_buckets": len(self.buckets), "activities": [str(c) for c in self.buckets.columns],
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        e = html.escape
        span = f"{_iso(self.start) or '-'} .. {_iso(self.end) or '-'}"
        head = (f"<h4>Log summary: {e(self.unit or 'all units')}</h4><p>{self.n_lines} lines, {e(span)}; "
                f"errors {self.levels.get('error', 0)}, warnings {self.levels.get('warning', 0)}, "
                f"debug {self.levels.get('debug', 0)}; restarts {len(self.restarts)}</p>")
        parts = [head]
        if len(self.skills):
            parts.append("<b>Skills</b>" + self.skills.head(20).to_html(index=False))
        if len(self.tools):
            parts.append("<b>Tools</b>" + self.tools.head(20).to_html(index=False))
        if len(self.top_errors):
            parts.append("<b>Top errors and warnings</b>" + self.top_errors.head(10).to_html(index=False))
        if len(self.restarts):
            parts.append("<b>Restarts</b>" + self.restarts.to_html(index=False))
        extra = {**{f"requests {k}": v for k, v in self.requests.items()}, **self.allocator,
                 **{f"mentions '{k}'": v for k, v in self.alloc_mentions.items()}}
        if extra:
            parts.append("<p>" + ", ".join(f"{e(k)}: {v}" for k, v in extra.items()) + "</p>")
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(parts)


def skill_totals(acc: Acc) -> tuple[Counter[str], Counter[tuple[int, str]]]:
    """Skill calls, each invocation once: a skill logged in both forms in one bucket counts max(token, tool).

    Returns (calls per skill, calls per (bucket, skill)); lines without a timestamp (or a scan without
    buckets) count max(token, tool) over all of them.
    """
    per: dict[tuple[int, str], list[int]] = {}
    for (b, name, form), n in acc.bucket_skill_forms.items():
        per.setdefault((b, name), [0, 0])[0 if form == "token" else 1] += n
    by_bucket: Counter[tuple[int, str]] = Counter({k: max(v) for k, v in per.items()})
    totals: Counter[str] = Counter()
    for (_b, name), n in by_bucket.items():
        totals[name] += n
    bucketed_tok: Counter[str] = Counter()
    bucketed_tool: Counter[str] = Counter()
    for (_b, name, form), n in acc.bucket_skill_forms.items():
        (bucketed_tok if form == "token" else bucketed_tool)[name] += n
    for name in set(acc.skills_token) | set(acc.skills_tool):  # lines without a timestamp
        rest_tok = acc.skills_token[name] - bucketed_tok[name]
        rest_tool = acc.skills_tool[name] - bucketed_tool[name]
        totals[name] += max(rest_tok, rest_tool)
    return totals, by_bucket


def _restarts(acc: Acc) -> list[dict[str, Any]]:
    out = []
    for (_ts0, old), (ts, new) in zip(acc.pids, acc.pids[1:]):
        out.append({"timestamp": _dt(ts), "old_pid": old, "new_pid": new, "reason": "pid change"})
    if not acc.pids:  # no pids (raw text): every startup banner after the first is a restart
        for ts in acc.banners[1:]:
            out.append({"timestamp": _dt(ts), "old_pid": None, "new_pid": None, "reason": "startup banner"})
    return out


def summary_from_tallies(acc: Acc, *, width: int, unit: str | None, source: str, top: int = 20) -> LogSummary:
    """Turn the tallies of a scan into a :class:`LogSummary`."""
    import pandas as pd

    totals, skill_buckets = skill_totals(acc)
    skills = pd.DataFrame(
        [{"skill": k, "count": n, "token_form": acc.skills_token[k], "tool_form": acc.skills_tool[k]}
         for k, n in totals.items()], columns=["skill", "count", "token_form", "tool_form"])
    skills = skills.sort_values(["count", "skill"], ascending=[False, True], ignore_index=True)
    tools = pd.DataFrame(sorted(acc.tools.items(), key=lambda kv: (-kv[1], kv[0])), columns=["tool", "count"])
    errs = sorted(acc.errors.values(), key=lambda v: (-v[0], v[4]))[:top]
    top_errors = pd.DataFrame(
        [{"level": v[3], "message": v[4], "count": v[0], "first_seen": _dt(v[1]), "last_seen": _dt(v[2])} for v in errs],
        columns=["level", "message", "count", "first_seen", "last_seen"])
    restarts = pd.DataFrame(_restarts(acc), columns=["timestamp", "old_pid", "new_pid", "reason"])
    restarts = restarts.astype(object).where(restarts.notna(), None)
    counts: Counter[tuple[int, str]] = Counter({k: v for k, v in acc.buckets.items() if k[1] != "tool:skill"})
    for (b, name), n in skill_buckets.items():
        counts[(b, f"skill:{name}")] += n
    buckets = _bucket_frame(counts, width, acc.first_ts, acc.last_ts)
    levels = {"error": acc.levels["error"], "warning": acc.levels["warning"], "debug": acc.levels["debug"]}
    levels["other"] = max(acc.lines - sum(levels.values()), 0)
    meaningful = len(acc.priorities) > 1
    notes = []
    if not len(skills):
        notes.append("no skill invocations found (neither skill:NAME tokens nor '[agent] tool skill' lines)")
    if any(acc.skills_token[k] and acc.skills_tool[k] for k in totals):
        notes.append("skills logged in both forms: each invocation counted once (max of the forms per bucket)")
    if acc.priorities and not meaningful:
        notes.append(f"journald PRIORITY is {next(iter(acc.priorities))} for every entry: levels parsed from the text")
    notes.append(f"{levels['debug']} debug lines" + ("" if levels["debug"] else ": debug logging is not active (LOG_LEVEL is not read by the real gateway)"))
    if acc.lines == 0:
        notes.append("no lines of this unit: is the unit name right?")
    return LogSummary(
        unit=unit, source=source, bucket_s=width, n_lines=acc.lines, start=_dt(acc.first_ts), end=_dt(acc.last_ts),
        skills=skills, tools=tools, levels=levels, priorities=dict(sorted(acc.priorities.items())) if meaningful else None,
        top_errors=top_errors, restarts=restarts, pids=tuple(p for _t, p in acc.pids),
        requests=dict(sorted(acc.requests.items())), alloc_mentions=dict(acc.alloc_mentions),
        allocator=dict(acc.allocator), buckets=buckets, notes=tuple(notes))


def _bucket_frame(counts: Counter[tuple[int, str]], width: int, first: float | None,
                  last: float | None) -> pd.DataFrame:
    import pandas as pd

    if not counts and first is None:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="bucket"))
    frame = pd.Series(counts, dtype="int64").unstack(fill_value=0) if counts else pd.DataFrame(index=[first])
    frame = frame.sort_index()
    lo, hi = int(frame.index.min()), int(frame.index.max())
    if first is not None and last is not None:  # the whole time range of the log, idle buckets included
        lo, hi = min(lo, int(first // width) * width), max(hi, int(last // width) * width)
    if (hi - lo) // width < 500_000:  # empty buckets are data too (zero activity)
        frame = frame.reindex(range(lo, hi + width, width), fill_value=0)
    frame.index = pd.to_datetime(frame.index, unit="s", utc=True)
    frame.index.name = "bucket"
    frame = frame[sorted(frame.columns)]
    return frame.astype("int64")
