"""The result of :func:`zcnb.logs.summarize_logs`: tables, counts, restarts and per-bucket activity."""

from __future__ import annotations

import bisect
import html
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from .message import MAX_LINE
from .scan import MAX_BANNERS, MAX_CRASHES, MAX_GROUPS, MAX_PIDS, Acc, normalise_message
from .shown import keep, shown_names

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["LogSummary", "skill_totals", "summary_from_tallies"]

_CRASH_COLUMNS = ["timestamp", "pid", "message"]
_RESTART_COLUMNS = ["timestamp", "old_pid", "new_pid", "reason", "detail"]
_MAX_ROWS = 500_000  # buckets between the first and the last: beyond this only buckets with activity are rows
MAX_NAMED_COLUMNS = 200  # bucket-table columns per kind of name (skills, tools, requests); the rest are one column
OTHERS = "(others)"  # that column's name: skill:(others), tool:(others), request:(others)


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
    top_errors: pd.DataFrame  # level, message, count, first_seen, last_seen (crashes always listed, first)
    restarts: pd.DataFrame  # timestamp, old_pid, new_pid, reason (pid change | startup banner | crash), detail
    pids: tuple[int, ...]
    requests: dict[str, int]
    alloc_mentions: dict[str, int]
    allocator: dict[str, int]
    buckets: pd.DataFrame  # index bucket start (UTC), one column per activity
    notes: tuple[str, ...] = field(default=())
    crashes: pd.DataFrame = field(default_factory=lambda: _frame([], _CRASH_COLUMNS))  # timestamp, pid, message
    unreadable: int = 0  # JSON lines / export entries that could not be read: skipped (see notes)
    bad_times: int = 0  # lines whose time is not a date or out of range (1970 .. 2200): counted without a time
    cut_lines: int = 0  # lines longer than zcnb.logs.message.MAX_LINE: only their head was read
    other_errors: dict[str, int] = field(default_factory=dict)  # level -> lines of shapes beyond MAX_GROUPS

    def __repr__(self) -> str:
        return (f"LogSummary(unit={self.unit!r}, lines={self.n_lines}, skills={self.skill_counts}, "
                f"errors={self.levels.get('error', 0)}, warnings={self.levels.get('warning', 0)}, "
                f"restarts={len(self.restarts)}, crashes={len(self.crashes)})")

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
             "new_pid": None if r.new_pid is None else int(r.new_pid), "reason": r.reason, "detail": r.detail}
            for r in self.restarts.itertuples()
        ]
        crashes = [{"timestamp": _iso(r.timestamp), "pid": None if r.pid is None else int(r.pid), "message": r.message}
                   for r in self.crashes.itertuples()]
        return {
            "unit": self.unit, "source": self.source, "bucket_s": self.bucket_s, "n_lines": self.n_lines,
            "start": _iso(self.start), "end": _iso(self.end),
            "skills": [{"skill": str(r.skill), "count": int(r.count), "token_form": int(r.token_form),
                        "tool_form": int(r.tool_form)} for r in self.skills.itertuples()],
            "tools": {str(r.tool): int(r.count) for r in self.tools.itertuples()},
            "levels": dict(self.levels), "priorities": ({str(k): v for k, v in self.priorities.items()}
                                                        if self.priorities else None),
            "top_errors": errors, "restarts": restarts, "crashes": crashes, "pids": list(self.pids),
            "requests": dict(self.requests),
            "alloc_mentions": dict(self.alloc_mentions), "allocator": dict(self.allocator),
            "n_buckets": len(self.buckets), "activities": [str(c) for c in self.buckets.columns],
            "unreadable": self.unreadable, "bad_times": self.bad_times, "cut_lines": self.cut_lines,
            "other_errors": dict(self.other_errors),
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        e = html.escape
        span = f"{_iso(self.start) or '-'} .. {_iso(self.end) or '-'}"
        head = (f"<h4>Log summary: {e(self.unit or 'all units')}</h4><p>{self.n_lines} lines, {e(span)}; "
                f"errors {self.levels.get('error', 0)}, warnings {self.levels.get('warning', 0)}, "
                f"debug {self.levels.get('debug', 0)}; restarts {len(self.restarts)}, crashes {len(self.crashes)}</p>")
        parts = [head]
        if len(self.skills):
            parts.append("<b>Skills</b>" + self.skills.head(20).to_html(index=False))
        if len(self.tools):
            parts.append("<b>Tools</b>" + self.tools.head(20).to_html(index=False))
        if len(self.top_errors):
            parts.append("<b>Top errors and warnings</b>" + self.top_errors.head(10).to_html(index=False))
        if len(self.crashes):
            parts.append("<b>Crashes</b>" + self.crashes.to_html(index=False))
        if len(self.restarts):
            parts.append("<b>Restarts</b>" + self.restarts.to_html(index=False))
        extra = {**{f"requests {k}": v for k, v in self.requests.items()}, **self.allocator,
                 **{f"mentions '{k}'": v for k, v in self.alloc_mentions.items()}}
        if extra:
            parts.append("<p>" + ", ".join(f"{e(k)}: {v}" for k, v in extra.items()) + "</p>")
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(parts)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype(object).where(frame.notna(), None)


def _bucket_parts(acc: Acc) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                                      list[tuple[str, ...]]]:
    """Per-bucket counts (Python engine counters and native arrays) as parts of (bucket, code, count, key index of
    each code); the keys in order of their index."""
    import numpy as np

    ids: dict[tuple[str, ...], int] = {}
    rows = [(b, ids.setdefault((a,), len(ids)), n) for (b, a), n in acc.buckets.items()]
    rows += [(b, ids.setdefault(("skill", name, form), len(ids)), n)
             for (b, name, form), n in acc.bucket_skill_forms.items()]
    parts = []
    if rows:
        arr = np.array(rows, dtype=np.int64)
        parts.append((arr[:, 0], arr[:, 1], arr[:, 2], np.arange(len(ids), dtype=np.int64)))
    for b_arr, c_arr, n_arr, keys in acc.bucket_arrays:
        parts.append((b_arr, c_arr, n_arr, np.array([ids.setdefault(k, len(ids)) for k in keys], dtype=np.int64)))
    return parts, list(ids)


def _kind(key: tuple[str, ...]) -> str | None:
    """The kind of name a bucket key holds (``skill``, ``tool:``, ``request:``), or None for fixed activities."""
    if key[0] == "skill":
        return "skill"
    for prefix in ("tool:", "request:"):
        if key[0].startswith(prefix):
            return prefix
    return None


def _fold(keys: list[tuple[str, ...]], totals: np.ndarray) -> tuple[np.ndarray, list[tuple[str, ...]], list[int]]:
    """Where each key goes in the bucket table: a kind with more than MAX_NAMED_COLUMNS names keeps its most
    counted ones (then by name) and puts the others in one ``(others)`` column (per skill form). Returns the target
    of each key, the table's keys, and the keys folded away."""
    import numpy as np

    kinds = [_kind(key) for key in keys]
    names = [None if kind is None else key[1] if kind == "skill" else key[0][len(kind):] for key, kind in zip(keys, kinds)]
    by_kind: dict[str, Counter[str]] = {"skill": Counter(), "tool:": Counter(), "request:": Counter()}
    for kind, name, n in zip(kinds, names, totals.tolist()):
        if kind is not None and name is not None:
            by_kind[kind][name] += n
    dropped = {kind: {name for _n, name in sorted((-n, name) for name, n in c.items())[MAX_NAMED_COLUMNS:]}
               for kind, c in by_kind.items() if len(c) > MAX_NAMED_COLUMNS}
    if not dropped:
        return np.arange(len(keys), dtype=np.int64), keys, []
    ids: dict[tuple[str, ...], int] = {}
    target: list[int] = []
    folded: list[int] = []
    for i, (key, kind, name) in enumerate(zip(keys, kinds, names)):
        if kind in dropped and name in dropped[kind]:
            key = ("skill", OTHERS, key[2]) if kind == "skill" else (kind + OTHERS,)
            folded.append(i)
        target.append(ids.setdefault(key, len(ids)))
    return np.array(target, dtype=np.int64), list(ids), folded


class Folded(NamedTuple):
    """The skill names folded into skill:(others): per name (sum over buckets of max(token, tool), token sum, tool
    sum), and the skill:(others) column (per row: the sum of those names' per-bucket maxima), None when no name
    was folded."""

    per_name: dict[str, tuple[int, int, int]]
    column: np.ndarray | None


def _folded_skills(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], keys: list[tuple[str, ...]],
                   folded: list[int]) -> tuple[dict[str, tuple[int, int, int]], np.ndarray, np.ndarray]:
    """Skill names folded into skill:(others): (sum over buckets of max(token, tool), token sum, tool sum) each,
    from the sparse bucket counts (each invocation once, as for a column of its own); and per bucket (starts,
    counts) the sum of those per-name maxima, which is the skill:(others) column."""
    import numpy as np

    skill_ids = [i for i in folded if keys[i][0] == "skill"]
    if not skill_ids:
        return {}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    names = sorted({keys[i][1] for i in skill_ids})
    name_of = {n: j for j, n in enumerate(names)}
    lut_name = np.full(len(keys), -1, dtype=np.int64)
    lut_form = np.zeros(len(keys), dtype=np.int64)
    for i in skill_ids:
        lut_name[i] = name_of[keys[i][1]]
        lut_form[i] = keys[i][2] == "tool"
    cols: list[list[np.ndarray]] = [[], [], [], []]  # name, bucket, form, count
    for b, c, n, key_of in parts:
        k = key_of[c]
        sel = lut_name[k] >= 0
        if sel.any():
            for col, val in zip(cols, (lut_name[k[sel]], b[sel], lut_form[k[sel]], n[sel])):
                col.append(val)
    name, bucket, form, count = (np.concatenate(col) for col in cols)
    # (name, bucket, form) summed, then the larger form per (name, bucket), then per name
    cell, inv = np.unique(np.stack([name, bucket, form]), axis=1, return_inverse=True)
    sums = np.bincount(inv.ravel(), weights=count, minlength=cell.shape[1]).astype(np.int64)
    pair, pinv = np.unique(cell[:2], axis=1, return_inverse=True)
    best = np.zeros(pair.shape[1], dtype=np.int64)
    np.maximum.at(best, pinv.ravel(), sums)
    rule = np.bincount(pair[0], weights=best, minlength=len(names)).astype(np.int64)
    tok = np.bincount(cell[0], weights=np.where(cell[2] == 0, sums, 0), minlength=len(names)).astype(np.int64)
    tool = np.bincount(cell[0], weights=np.where(cell[2] == 1, sums, 0), minlength=len(names)).astype(np.int64)
    per = {skill: (int(rule[j]), int(tok[j]), int(tool[j])) for j, skill in enumerate(names)}
    return per, pair[1], best


def _bucket_matrix(acc: Acc, width: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]], np.ndarray, Folded]:
    """(bucket starts, counts [bucket x key], keys, keys present, skills folded into skill:(others)). Every
    bucket from the first to the last is a row (idle ones are data too) unless that makes more than _MAX_ROWS: then
    only buckets with counts. At most MAX_NAMED_COLUMNS skill, tool and request names each get a column of their
    own (see :func:`_fold`), so a log of many distinct names keeps a table of bounded width."""
    import numpy as np

    parts, keys = _bucket_parts(acc)
    seen = np.zeros(len(keys), dtype=bool)
    for _b, c, _n, key_of in parts:  # a native column may have counts outside buckets only (lines without a time)
        seen[key_of[np.bincount(c, minlength=len(key_of)) > 0]] = True
    folded: list[int] = []
    target, keys_out = np.arange(len(keys), dtype=np.int64), keys
    if sum(_kind(key) is not None for key in keys) > MAX_NAMED_COLUMNS:  # else no kind can have too many names
        totals = np.zeros(len(keys), dtype=np.int64)
        for _b, c, n, key_of in parts:
            totals += np.bincount(key_of[c], weights=n, minlength=len(keys)).astype(np.int64)
        target, keys_out, folded = _fold(keys, totals)
    per_name, other_b, other_n = _folded_skills(parts, keys, folded) if folded else ({}, None, None)
    nk = len(keys_out)
    present = np.zeros(nk, dtype=bool)
    present[target[seen]] = True
    parts = [(b, c, n, target[key_of]) for b, c, n, key_of in parts]
    ends = [int(x) for b, _c, _n, _k in parts if len(b) for x in (b.min(), b.max())]
    if not ends and acc.first_ts is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, nk), dtype=np.int64), keys_out, present, Folded(per_name, None)
    if acc.first_ts is not None and acc.last_ts is not None:  # the whole time range, idle buckets included
        ends += [int(acc.first_ts // width) * width, int(acc.last_ts // width) * width]
    lo, hi = min(ends), max(ends)
    dense = (hi - lo) // width < _MAX_ROWS
    if dense:
        rows = np.arange(lo, hi + width, width, dtype=np.int64)
    else:
        rows = np.unique(np.concatenate([b for b, _c, _n, _k in parts] or [np.array(ends, dtype=np.int64)]))

    def row_of(b: np.ndarray) -> np.ndarray:
        return (b - lo) // width if dense else np.searchsorted(rows, b)

    # key-major cells (a key's buckets side by side): a column of the result is contiguous, and one flat add.at
    # per part (each code's offset looked up in a small table) is several times faster than add.at with a pair of
    # index arrays
    cells = np.zeros(nk * len(rows), dtype=np.int64)
    for b, c, n, key_of in parts:
        np.add.at(cells, (key_of * len(rows))[c] + row_of(b), n)
    column = None  # skill:(others) as the sum of its names' columns, not a max of sums
    if other_b is not None and other_n is not None and len(other_b):
        column = np.zeros(len(rows), dtype=np.int64)
        np.add.at(column, row_of(other_b), other_n)
    return rows, cells.reshape(nk, len(rows)).T, keys_out, present, Folded(per_name, column)


def _skill_columns(acc: Acc, mat: np.ndarray, keys: list[tuple[str, ...]], present: np.ndarray,
                   folded: Folded | None = None) -> tuple[dict[str, np.ndarray], Counter[str]]:
    """Per-bucket activity columns and skill totals: a skill logged in both forms counts max(token, tool) per
    bucket (each invocation once); lines without a time add max of the forms' remaining counts."""
    import numpy as np

    cols: dict[str, np.ndarray] = {}
    forms: dict[str, dict[str, int]] = {}
    for i, key in enumerate(keys):
        if not present[i]:
            continue
        if key[0] == "skill":
            forms.setdefault(key[1], {})[key[2]] = i
        elif key[0] != "tool:skill":
            cols[key[0]] = mat[:, i]
    zero = np.zeros(len(mat), dtype=np.int64)
    totals: Counter[str] = Counter()
    for name, idx in forms.items():
        tok = mat[:, idx["token"]] if "token" in idx else zero
        tool = mat[:, idx["tool"]] if "tool" in idx else zero
        cols[f"skill:{name}"] = np.maximum(tok, tool)
        if name == OTHERS:  # the folded names: their column and totals come from their own bucket counts
            if folded is not None and folded.column is not None:
                cols[f"skill:{name}"] = folded.column
            continue
        totals[name] = int(cols[f"skill:{name}"].sum())
        totals[name] += max(acc.skills_token[name] - int(tok.sum()), acc.skills_tool[name] - int(tool.sum()))
    per_name = folded.per_name if folded is not None else {}
    for name, (rule, tok_sum, tool_sum) in per_name.items():
        totals[name] = rule + max(acc.skills_token[name] - tok_sum, acc.skills_tool[name] - tool_sum)
    for name in set(acc.skills_token) | set(acc.skills_tool):  # never in a bucket: lines without a timestamp
        if name not in forms and name not in per_name:
            totals[name] = max(acc.skills_token[name], acc.skills_tool[name])
    return cols, totals


def skill_totals(acc: Acc, width: int = 60, *, redact: Callable[[str], str] = keep,
                 ) -> tuple[Counter[str], Counter[tuple[int, str]]]:
    """Skill calls, each invocation once (see :func:`_skill_columns`): totals and per (bucket, skill), by the
    names :func:`shown_names` gives (``redact`` applied to each name as logged, then the canonical form)."""
    acc = shown_names(acc, redact)
    rows, mat, keys, present, folded = _bucket_matrix(acc, width)
    cols, totals = _skill_columns(acc, mat, keys, present, folded)
    by_bucket: Counter[tuple[int, str]] = Counter()
    for name, col in cols.items():
        if name.startswith("skill:") and name != f"skill:{OTHERS}":
            for b, n in zip(rows.tolist(), col.tolist()):
                if n:
                    by_bucket[(b, name[6:])] += n
    return totals, by_bucket


def _bucket_table(acc: Acc, width: int) -> tuple[pd.DataFrame, Counter[str]]:
    """The bucket frame (bucket start x activity, idle buckets included) and the skill totals."""
    import numpy as np
    import pandas as pd

    rows, mat, keys, present, folded = _bucket_matrix(acc, width)
    cols, totals = _skill_columns(acc, mat, keys, present, folded)
    if not len(rows):
        return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="bucket")), totals
    names = sorted(cols)
    data = np.empty((len(names), len(rows)), dtype=np.int64)  # column-major: pandas keeps it as its block
    for j, name in enumerate(names):
        data[j] = cols[name]
    index = pd.to_datetime(rows, unit="s", utc=True)
    index.name = "bucket"
    return pd.DataFrame(data.T, index=index, columns=names, copy=False), totals


def _restarts(acc: Acc, crashes: list[tuple[float | None, int | None, int, str]]) -> list[dict[str, Any]]:
    """Each process change is a restart: a new pid whose predecessor (the pid of the line before) logs no more
    after it, or a startup banner with no new pid since the previous one; a crash (``thread N panic``) before it
    makes its reason ``crash``; a crash with no restart after it in the log is a row of its own (``new_pid``
    None). A new pid while the one before it goes on logging is a process beside it, not a restart (see
    :func:`_side_by_side`)."""
    change_seqs = [s for _t, _p, s, _q in acc.pids]

    def pid_at(seq: int) -> int | None:
        i = bisect.bisect_right(change_seqs, seq) - 1
        return acc.pids[i][1] if i >= 0 else None

    bounds: list[tuple[int, float | None, int | None, int | None, str]]
    bounds = [(s1, ts1, p0, p1, "pid change") for ts1, p1, s1, p0 in acc.pids
              if p0 is not None and not _logs_after(acc, p0, s1)]
    banners = sorted(acc.banners, key=lambda x: x[1])
    for (_t0, s0), (ts, s) in itertools.pairwise(banners):
        if bisect.bisect_right(change_seqs, s) == bisect.bisect_right(change_seqs, s0):  # no pid change between
            bounds.append((s, ts, pid_at(s), pid_at(s), "startup banner"))
    bounds.sort(key=lambda x: x[0])
    out: list[dict[str, Any]] = []
    i = 0
    for seq, ts, old, new, reason in bounds:
        crash = crashes[i] if i < len(crashes) and crashes[i][2] < seq else None
        while i < len(crashes) and crashes[i][2] < seq:  # one restart per process: later crashes of it are in crashes
            i += 1
        out.append({"timestamp": _dt(ts), "old_pid": old, "new_pid": new, "reason": "crash" if crash else reason,
                    "detail": crash[3] if crash else ""})
    if i < len(crashes):
        ts, pid, seq, msg = crashes[i]
        out.append({"timestamp": _dt(ts), "old_pid": pid if pid is not None else pid_at(seq), "new_pid": None,
                    "reason": "crash", "detail": f"{msg} (no restart after it in this log)"})
    return out


def _logs_after(acc: Acc, pid: int, seq: int) -> bool:
    """Whether ``pid``'s lines resume at or after line ``seq`` (it logs on beside a pid that came there)."""
    return acc.pid_back.get(pid, -1) >= seq


def _side_by_side(acc: Acc) -> list[tuple[int, int]]:
    """(pid, new pid) where a new pid came while the pid before it went on logging after it: two processes of the
    unit side by side (template instances under one identifier, a helper, an overlapping hand-over)."""
    return [(p0, p1) for _t, p1, s1, p0 in acc.pids if p0 is not None and _logs_after(acc, p0, s1)]


def _top_errors(acc: Acc, redact: Callable[[str], str], top: int) -> list[list[Any]]:
    """Error groups as shown: each group's first line redacted, groups alike once redacted (numbers as N) joined,
    sorted by count; crashes are never cut. Rows: [count, first, last, level, message, kind]."""
    shown: dict[str, list[Any]] = {}
    cache: dict[bytes, str] = {}
    for (level_b, scope_b, _norm, _flags, kind), (n, first, last, example, seq) in sorted(
            acc.errors.items(), key=lambda kv: kv[1][4]):  # in file order: the first line is the example
        level, scope = level_b.decode("ascii"), scope_b.decode("utf-8", "replace")
        clean = cache.get(example)
        if clean is None:
            clean = cache[example] = redact(example.decode("utf-8", "replace"))
        key = f"{level}\x00{scope}\x00{kind}\x00{normalise_message(clean)}"
        row = shown.get(key)
        if row is None:
            prefix = (f"{level}({scope}): " if scope else f"{level}: ") if kind == "z" else ""
            shown[key] = [n, first, last, level, prefix + clean[:500], kind]
        else:
            row[0] += n
            row[1] = _min(row[1], first)
            row[2] = _max(row[2], last)
    errs = sorted(shown.values(), key=lambda v: (v[5] != "c", -v[0], v[4]))
    return errs[:max(top, sum(1 for v in errs if v[5] == "c"))]


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _reading_notes(acc: Acc) -> list[str]:
    """What the readers could not use, said plainly (never dropped without a word)."""
    notes = []
    if acc.unreadable:
        notes.append(f"{acc.unreadable} unreadable line(s) or entries skipped: not a JSON object, nested too deep, "
                     f"longer than {MAX_LINE >> 20} MiB, or a malformed or cut journal export entry")
    if acc.bad_times:
        notes.append(f"{acc.bad_times} line(s) with a time that is not a date or out of range (before 1970 or from "
                     "2200 on): counted without a time")
    if acc.cut_lines:
        notes.append(f"{acc.cut_lines} line(s) longer than {MAX_LINE >> 20} MiB: only their first "
                     f"{MAX_LINE >> 20} MiB read")
    side = _side_by_side(acc)
    if side:
        shown = ", ".join(f"{a} and {b}" for a, b in side[:3]) + (f" (+{len(side) - 3} more)" if len(side) > 3 else "")
        notes.append(f"{len(side)} new pid(s) came while the pid before went on logging: processes side by side, "
                     f"not restarts: {shown}")
    if acc.banners_over:
        notes.append(f"{acc.banners_over:,} more startup banner(s) after the first {MAX_BANNERS:,}: counted, not kept "
                     "(restarts from banners are read among the first ones)")
    if acc.crashes_over:
        notes.append(f"{acc.crashes_over:,} more crash line(s) after the first {MAX_CRASHES:,}: counted in the levels and "
                     "error groups, not listed")
    if acc.pids_capped:
        notes.append(f"more than {MAX_PIDS:,} processes (pids) log here: the first {MAX_PIDS:,} are listed and checked "
                     "for restarts, later new pids are not")
    return notes


def summary_from_tallies(acc: Acc, *, width: int, unit: str | None, source: str, redact: Callable[[str], str],
                         top: int = 20) -> LogSummary:
    """Turn the tallies of a scan into a :class:`LogSummary` (names, error examples and crashes redacted here)."""
    import pandas as pd

    acc = shown_names(acc, redact)
    buckets, totals = _bucket_table(acc, width)
    skills = pd.DataFrame(  # most calls first, then by name
        [{"skill": k, "count": n, "token_form": acc.skills_token[k], "tool_form": acc.skills_tool[k]}
         for k, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))],
        columns=["skill", "count", "token_form", "tool_form"])
    tools = pd.DataFrame(sorted(acc.tools.items(), key=lambda kv: (-kv[1], kv[0])), columns=["tool", "count"])
    errs = _top_errors(acc, redact, top)
    for level in ("error", "warning"):  # bounded memory: shapes beyond MAX_GROUPS are one row per level
        if acc.other_errors[level]:
            errs.append([acc.other_errors[level], None, None, level,
                         f"(other {level} messages: shapes beyond the first {MAX_GROUPS} distinct ones)", "o"])
    top_errors = pd.DataFrame(
        [{"level": v[3], "message": v[4], "count": v[0], "first_seen": _dt(v[1]), "last_seen": _dt(v[2])} for v in errs],
        columns=["level", "message", "count", "first_seen", "last_seen"])
    shown_crashes = sorted(((ts, pid, seq, redact(msg)) for ts, pid, seq, msg in acc.crashes), key=lambda c: c[2])
    restarts = _frame(_restarts(acc, shown_crashes), _RESTART_COLUMNS)
    crashes = _frame([{"timestamp": _dt(ts), "pid": pid, "message": msg} for ts, pid, _s, msg in shown_crashes],
                     _CRASH_COLUMNS)
    levels = {k: acc.levels[k] for k in ("error", "warning", "info", "debug")}
    levels["none"] = max(acc.lines - sum(levels.values()), 0)
    meaningful = len(acc.priorities) > 1
    notes = []
    if not len(skills):
        notes.append("no skill invocations found (neither skill:NAME tokens nor '[agent] tool skill' lines)")
    if any(acc.skills_token[k] and acc.skills_tool[k] for k in totals):
        notes.append("skills logged in both forms: each invocation counted once (max of the forms per bucket)")
    if acc.priorities and not meaningful:
        notes.append(f"journald PRIORITY is {next(iter(acc.priorities))} for every entry: levels parsed from the text")
    if acc.banners:
        ts, seq = min(acc.banners, key=lambda x: x[1])
        notes.append(f"startup banner: the gateway starts at {_iso(_dt(ts)) or f'line {seq + 1}'}"
                     + (f" ({len(acc.banners)} banners)" if len(acc.banners) > 1 else ""))
    if len(crashes):
        notes.append(f"{len(crashes)} crash(es): {crashes.iloc[0]['message'][:120]}")
    if acc.allocator["leak reports"]:
        notes.append(f"{acc.allocator['leak reports']} leak report records: the debug allocator prints them only at a "
                     "clean exit (parse them with zcnb leaks)")
    notes.append(f"{levels['debug']} debug lines" + ("" if levels["debug"] else ": debug logging is not active (LOG_LEVEL is not read by the real gateway)"))
    notes += _reading_notes(acc)
    folded = [f"{kind}{OTHERS}" for kind in ("skill:", "tool:", "request:") if f"{kind}{OTHERS}" in buckets.columns]
    if folded:
        notes.append(f"more than {MAX_NAMED_COLUMNS} distinct names of a kind: the bucket table has a column for each of "
                     f"the {MAX_NAMED_COLUMNS} most counted, the others are summed in {', '.join(folded)} (the totals "
                     "list every name)")
    if acc.other_errors:
        e, w = acc.other_errors["error"], acc.other_errors["warning"]
        notes.append(f"more than {MAX_GROUPS} distinct error/warning message shapes: the first {MAX_GROUPS} seen are "
                     f"grouped, {e + w} further line(s) ({e} error, {w} warning) are counted as 'other' (memory stays "
                     "bounded; with several scan threads a group may miss lines a later part counted as other)")
    if acc.lines == 0:
        notes.append("no lines of this unit: is the unit name right?" if unit else "no log lines read")
    return LogSummary(
        unit=unit, source=source, bucket_s=width, n_lines=acc.lines, start=_dt(acc.first_ts), end=_dt(acc.last_ts),
        skills=skills, tools=tools, levels=levels, priorities=dict(sorted(acc.priorities.items())) if meaningful else None,
        top_errors=top_errors, restarts=restarts, pids=tuple(p for _t, p, _s, _q in acc.pids),
        requests=dict(sorted(acc.requests.items())), alloc_mentions=dict(acc.alloc_mentions),
        allocator=dict(acc.allocator), buckets=buckets, notes=tuple(notes), crashes=crashes,
        unreadable=acc.unreadable, bad_times=acc.bad_times, cut_lines=acc.cut_lines,
        other_errors={k: v for k, v in sorted(acc.other_errors.items()) if v})
