"""Fleet view: assess every instance's memory history and rank who needs a restart first.

Input is a samples frame with an ``instance`` column (as :func:`zcnb.collect.prometheus.query_range`
returns). Each instance goes through :func:`zcnb.analysis.assess_leak`; the view ranks
leaking instances first (soonest to hit the limit, then fastest growing) and shows, for
comparison, the Prometheus alert rule an operator would otherwise write
(``predict_linear(metric[1h], 4*3600) > limit``) and which instances that rule flags.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..analysis import pick_column
from ..config import DEFAULT_FLEET_QUERY
from ..exceptions import AnalysisError, ConfigError
from ..units import format_bytes, format_duration, parse_size
from .fleet_csv import read_fleet_csv, write_fleet_csv

if TYPE_CHECKING:
    from ..collect.prometheus import PrometheusAuth

__all__ = ["AlertRule", "FleetRow", "FleetView", "alert_rule", "fleet_from_prometheus", "fleet_view",
           "format_bytes", "parse_size", "read_fleet_csv", "write_fleet_csv"]


_VERDICT_ORDER = {"leak": 0, "inconclusive": 1, "no_leak": 2}
_SELECTOR_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{[^{}]*\})?$|^\{[^{}]*\}$")


@dataclass(frozen=True)
class AlertRule:
    """The ``predict_linear`` alert an operator would write for this query and limit."""

    expr: str
    query: str
    limit_bytes: float | None
    window: str = "1h"
    horizon_s: float = 4 * 3600.0

    def yaml(self) -> str:
        """A Prometheus rules-file snippet for this alert."""
        return "\n".join([
            "groups:",
            "  - name: zeptoclaw-memory",
            "    rules:",
            "      - alert: ZeptoclawGatewayMemoryLeak",
            f"        expr: {self.expr}",
            "        for: 15m",
            "        labels: {severity: warning}",
            "        annotations:",
            f"          summary: \"{{{{ $labels.instance }}}} will exceed its memory limit within {self.horizon_s / 3600:g} h\"",
        ])

    def to_dict(self) -> dict[str, Any]:
        return {"expr": self.expr, "query": self.query, "limit_bytes": self.limit_bytes, "window": self.window,
                "horizon_s": self.horizon_s}

    def _repr_markdown_(self) -> str:
        return f"Equivalent Prometheus alert:\n\n```yaml\n{self.yaml()}\n```"


def alert_rule(query: str = DEFAULT_FLEET_QUERY, *,
               limit_bytes: float | None = None, window: str = "1h", horizon_s: float = 4 * 3600.0,
               step: str = "1m") -> AlertRule:
    """Build ``predict_linear(<query>[window], horizon) > limit``.

    A plain selector gets a range selector; any other expression becomes a subquery
    (``(expr)[window:step]``). Without a limit the threshold is the placeholder ``LIMIT_BYTES``.
    """
    q = query.strip()
    rng = f"{q}[{window}]" if _SELECTOR_RE.match(q) else f"({q})[{window}:{step}]"
    horizon = f"{horizon_s / 3600:g}*3600" if horizon_s % 3600 == 0 else f"{horizon_s:g}"
    threshold = f"{limit_bytes:.0f}" if limit_bytes is not None else "LIMIT_BYTES"
    return AlertRule(expr=f"predict_linear({rng}, {horizon}) > {threshold}", query=q, limit_bytes=limit_bytes,
                     window=window, horizon_s=horizon_s)


@dataclass(frozen=True)
class FleetRow:
    """One instance's verdict in the fleet table."""

    instance: str
    verdict: str
    pattern: str
    severity: str
    growth_bytes_per_hour: float | None
    time_to_limit_s: float | None
    last_bytes: float | None
    n_samples: int
    confidence: float | None
    restart_rank: int | None = None
    rule_flagged: bool | None = None  # None: the alert rule was not evaluated
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def _repr_markdown_(self) -> str:
        text = (f"**{self.instance}**: {self.verdict} ({self.pattern}, {self.severity}), "
                f"{format_bytes(self.growth_bytes_per_hour)}/h, limit in {format_duration(self.time_to_limit_s)}")
        return text + (f" -- {self.error}" if self.error else "")


@dataclass(frozen=True)
class FleetView:
    """Every instance assessed and ranked; leaking and soonest-to-limit first."""

    rows: tuple[FleetRow, ...]
    restart_order: tuple[str, ...]
    rule: AlertRule
    rule_evaluated: bool
    limit_bytes: float | None
    by: str
    column: str
    start: datetime | None
    end: datetime | None
    notes: tuple[str, ...] = ()
    assessments: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    mode: str = ""  # how the data left Prometheus: "raw" samples or the server-side "baseline"; "" = given frame
    data: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def leaking(self) -> tuple[str, ...]:
        return tuple(r.instance for r in self.rows if r.verdict == "leak")

    def comparison(self) -> dict[str, list[str]]:
        """Which instances zcnb and the alert rule agree / disagree on (empty if the rule was not evaluated)."""
        if not self.rule_evaluated:
            return {}
        z = {r.instance for r in self.rows if r.verdict == "leak"}
        p = {r.instance for r in self.rows if r.rule_flagged}
        return {"both": sorted(z & p), "zcnb_only": sorted(z - p), "rule_only": sorted(p - z)}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.rows])

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "restart_order": list(self.restart_order),
            "rule": self.rule.to_dict(),
            "rule_evaluated": self.rule_evaluated,
            "comparison": self.comparison(),
            "limit_bytes": self.limit_bytes,
            "by": self.by,
            "column": self.column,
            "start": self.start.isoformat() if self.start is not None else None,
            "end": self.end.isoformat() if self.end is not None else None,
            "notes": list(self.notes),
            "mode": self.mode,
            "assessments": {k: (a.to_dict() if hasattr(a, "to_dict") else a) for k, a in self.assessments.items()},
        }

    def summary(self) -> str:
        n_leak = len(self.leaking)
        text = f"{len(self.rows)} instance(s), {n_leak} leaking"
        if self.restart_order:
            text += f"; restart first: {', '.join(self.restart_order[:5])}"
        return text

    def _repr_html_(self) -> str:
        esc = html.escape
        colors = {"leak": "#c0392b", "no_leak": "#1e8449", "inconclusive": "#b9770e"}
        head = ["#", self.by, "verdict", "pattern", "severity", "growth/h", "time to limit", "last", "samples"]
        if self.rule_evaluated:
            head.append("rule fires")
        out = [f"<h4>Fleet: {esc(self.summary())}</h4>", "<table><thead><tr>"]
        out += [f"<th>{esc(h)}</th>" for h in head] + ["</tr></thead><tbody>"]
        for i, r in enumerate(self.rows, 1):
            cells = [str(i), esc(r.instance),
                     f'<b style="color:{colors.get(r.verdict, "#000")}">{esc(r.verdict)}</b>',
                     esc(r.pattern), esc(r.severity), format_bytes(r.growth_bytes_per_hour),
                     format_duration(r.time_to_limit_s), format_bytes(r.last_bytes), str(r.n_samples)]
            if self.rule_evaluated:
                cells.append("yes" if r.rule_flagged else "no")
            title = f' title="{esc(r.error)}"' if r.error else ""
            out.append(f"<tr{title}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table>")
        limit = format_bytes(self.limit_bytes) if self.limit_bytes else "none given"
        out.append(f"<p>Limit: {esc(limit)}. Restart order: {esc(', '.join(self.restart_order) or 'none')}</p>")
        out.append(f"<p>Equivalent Prometheus alert: <code>{esc(self.rule.expr)}</code></p>")
        cmp_ = self.comparison()
        if cmp_:
            out.append("<p>" + "; ".join(f"{esc(k)}: {esc(', '.join(v) or '-')}" for k, v in cmp_.items()) + "</p>")
        if self.notes:
            out.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(out)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _row(instance: str, sub: pd.DataFrame, column: str, limit_bytes: float | None) -> tuple[FleetRow, Any]:
    from ..analysis import assess_leak

    values = sub[column].dropna()
    last = _num(values.iloc[-1]) if len(values) else None
    try:
        # host_limit=False: this host's free memory says nothing about a remote instance's ceiling.
        a = assess_leak(sub, column=column, limit_bytes=limit_bytes, host_limit=False)
    except AnalysisError as exc:
        # One instance with too little data must not hide the rest of the fleet.
        return FleetRow(instance, "inconclusive", "unknown", "none", None, None, last, len(values), None,
                        error=str(exc)), None
    return FleetRow(instance=instance, verdict=str(a.verdict), pattern=str(a.pattern), severity=str(a.severity),
                    growth_bytes_per_hour=_num(a.growth_bytes_per_hour),
                    time_to_limit_s=_num(a.time_to_limit_s),
                    last_bytes=last, n_samples=int(a.n_samples), confidence=_num(a.confidence)), a


def _assess_batch(batch: list[tuple[str, pd.DataFrame]], column: str,
                  limit_bytes: float | None) -> list[tuple[FleetRow, Any]]:
    return [_row(key, sub, column, limit_bytes) for key, sub in batch]


def _auto_workers(n_groups: int) -> int:
    # Below ~16 instances the pool's start-up and pickling cost more than they save.
    return 1 if n_groups < 16 else max(1, min(os.cpu_count() or 1, 4))


def _assess_all(groups: list[tuple[str, pd.DataFrame]], column: str, limit_bytes: float | None,
                workers: int) -> list[tuple[FleetRow, Any]]:
    """assess_leak per group, in ``workers`` forked processes when more than one (order kept)."""
    import multiprocessing
    import threading

    # Only fork: workers inherit the imports and need no importable __main__ (spawn/forkserver
    # re-run the caller's script, and fail from stdin or a notebook). With other threads
    # running (a Jupyter kernel) fork may copy a held lock, so stay serial there.
    if (workers <= 1 or len(groups) < 2 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        return _assess_batch(groups, column, limit_bytes)
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # Longest first, in small batches: the biggest frames (raw samples) start at once and the cheap
    # baselines fill the gaps at the end, so no worker idles while another finishes a long batch.
    by_size = sorted(groups, key=lambda g: -len(g[1]))
    n_batches = min(len(by_size), workers * 12)
    batches = [by_size[i::n_batches] for i in range(n_batches) if by_size[i::n_batches]]
    out: dict[str, tuple[FleetRow, Any]] = {}
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for result in pool.map(_assess_batch, batches, [column] * len(batches), [limit_bytes] * len(batches)):
                for row, a in result:
                    out[row.instance] = (row, a)
    except BrokenProcessPool:  # a worker died (e.g. OOM-killed): the serial path still gives an answer
        return _assess_batch(groups, column, limit_bytes)
    return [out[key] for key, _ in groups]


def _vector_groups(df: pd.DataFrame, slim: pd.DataFrame, by: str, col: str, window_s: float | None,
                   limit_bytes: float | None) -> tuple[list[tuple[str, pd.DataFrame]], dict[str, tuple[int, float | None]],
                                                  str]:
    """The vectorised pass: (instance, frame to assess) in instance order, raw counts of the reduced ones, a note."""
    from .vector import fleet_baselines

    fb = fleet_baselines(df, by=by, column=col, window_s=window_s, limit_bytes=limit_bytes)
    groups: list[tuple[str, pd.DataFrame]] = []
    raw_counts: dict[str, tuple[int, float | None]] = {}
    for i, key in enumerate(fb.instances):
        frame = fb.baselines.get(key)
        if frame is None:
            # Without events or pids only timestamp and value matter to assess_leak: a narrower frame is cheaper.
            sub = slim.iloc[fb.rows[key]]
            groups.append((key, sub[["timestamp", col]] if fb.plain[i] else sub))
        else:
            groups.append((key, frame))
            raw_counts[key] = (int(fb.n_samples[i]), _num(fb.last[i]))
    counts = fb.counts()
    n_base = counts.pop("baseline", 0)
    raw = ", ".join(f"{n} {why}" for why, n in sorted(counts.items())) or "none"
    note = (f"engine: vector (one numpy pass: trough baseline = minimum of every {fb.width} x "
            f"{format_duration(fb.step_s)} window, Theil-Sen trend, for all {len(fb.instances)} instances); "
            f"{n_base} assessed on their baseline, raw per-instance path for the rest ({raw})")
    return groups, raw_counts, note


def _rank_key(r: FleetRow) -> tuple[Any, ...]:
    ttl = r.time_to_limit_s if r.time_to_limit_s is not None else math.inf
    growth = r.growth_bytes_per_hour if r.growth_bytes_per_hour is not None else 0.0
    return (_VERDICT_ORDER.get(r.verdict, 1), ttl, -growth, r.instance)


def fleet_view(df: pd.DataFrame, *, limit_bytes: float | None = None, by: str = "instance", column: str | None = None,
               query: str = DEFAULT_FLEET_QUERY,
               rule_flagged: Collection[str] | None = None, keep_data: bool = True,
               workers: int | None = None, engine: str = "auto", window_s: float | None = None) -> FleetView:
    """Assess each ``by`` group with ``assess_leak`` and rank the fleet.

    ``engine``: "vector" computes every instance's trough baseline and robust trend in one numpy pass
    (:mod:`zcnb.fleet.vector`) and hands each baseline to ``assess_leak``; instances where a coarser
    baseline could change the decision (restarts, GC cycles, growth near the threshold, ...) take the
    raw per-instance path. "per-instance" runs ``assess_leak`` on every instance's raw samples. "auto":
    vector from 16 instances. ``window_s``: the baseline window of the vector engine (at least the
    expected GC cycle; default: the span over 300 windows).

    ``rule_flagged`` lists the instances the alert rule fires for (from
    :func:`fleet_from_prometheus`); None means the rule was not evaluated.
    ``workers``: forked processes for big fleets (None = one per CPU, up to 4, from 16 instances;
    serial when other threads run, e.g. in a Jupyter kernel).
    """
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"fleet_view needs a pandas DataFrame, got {type(df).__name__}", hint="use query_range(...)")
    if by not in df.columns:
        raise ConfigError(f"the data has no {by!r} column to split the fleet by",
                          hint=f"pass by= one of: {', '.join(map(str, df.columns))}")
    if limit_bytes is not None and (not math.isfinite(limit_bytes) or limit_bytes <= 0):
        raise ConfigError(f"limit_bytes must be a positive number, got {limit_bytes!r}", hint="e.g. parse_size('2GiB')")
    if df.empty:
        raise AnalysisError("no samples to analyse", hint="widen the time range or check the query matches series")
    if engine not in ("auto", "vector", "per-instance"):
        raise ConfigError(f"unknown fleet engine {engine!r}", hint="use auto, vector or per-instance")
    col = pick_column(df, column)
    # Only the columns assess_leak reads: smaller frames to slice and to send to workers.
    slim = df[[c for c in ("timestamp", "pid", "source", col, "event", "note") if c in df.columns]]
    use_vector = engine == "vector" or (engine == "auto" and df[by].nunique() >= 16)
    notes = [f"analysed column {col!r} per {by!r}"]
    if use_vector:
        groups, raw_counts, note = _vector_groups(df, slim, by, col, window_s, limit_bytes)
        notes.append(note)
    else:
        groups = [(str(key), slim.iloc[idx]) for key, idx in df.groupby(by, sort=True).indices.items()]
        raw_counts = {}
        notes.append(f"engine: per-instance (assess_leak on every instance's {len(slim):,} raw samples)")
    n_workers = _auto_workers(len(groups)) if workers is None else max(1, int(workers))
    rows: list[FleetRow] = []
    assessments: dict[str, Any] = {}
    for row, a in _assess_all(groups, col, limit_bytes, n_workers):
        if row.instance in raw_counts:  # assessed on its baseline: show the raw sample count and last value
            n_raw, last = raw_counts[row.instance]
            row = replace(row, n_samples=n_raw, last_bytes=last)
        rows.append(row)
        if a is not None:
            assessments[row.instance] = a
    leak_rows = sorted((r for r in rows if r.verdict == "leak"), key=_rank_key)
    restart = tuple(r.instance for r in leak_rows)
    ranks = {name: i for i, name in enumerate(restart, 1)}
    flagged = set(rule_flagged) if rule_flagged is not None else None
    rows = [FleetRow(**{**r.to_dict(), "restart_rank": ranks.get(r.instance),
                        "rule_flagged": (r.instance in flagged) if flagged is not None else None}) for r in rows]
    rows.sort(key=_rank_key)
    if limit_bytes is None:
        notes.append("no limit given: no time to limit, severity reflects only how fast memory doubles, and the "
                     "restart order is by growth rate; give limit_bytes (e.g. the unit's MemoryMax or the host's "
                     "memory) for time-to-limit")
    if flagged is not None and (unknown := flagged - {r.instance for r in rows}):
        notes.append(f"the alert rule also fires for series not in the data: {', '.join(sorted(unknown))}")
    ts = df["timestamp"] if "timestamp" in df.columns else None
    return FleetView(rows=tuple(rows), restart_order=restart, rule=alert_rule(query, limit_bytes=limit_bytes),
                     rule_evaluated=flagged is not None, limit_bytes=limit_bytes, by=by, column=col,
                     start=ts.min() if ts is not None else None, end=ts.max() if ts is not None else None,
                     notes=tuple(notes), assessments=assessments, data=df if keep_data else None)


def fleet_from_prometheus(url: str, query: str, *, start: datetime | float | str, end: datetime | float | str,
                          step: float | str = "15s", limit_bytes: float | None = None,
                          auth: PrometheusAuth | None = None, evaluate_rule: bool = True,
                          instance_label: str = "instance", timeout_s: float = 30.0, retries: int = 3,
                          fallback_query: str | None = None,
                          max_response_bytes: int | None = None, mode: str = "auto",
                          gc_cycle_s: float | None = None, raw_points_max: int | None = None) -> FleetView:
    """Query Prometheus, assess every instance, and (with a limit) evaluate the alert rule at ``end``.

    ``fallback_query`` is read when ``query`` has no series (e.g. ``EXPORTER_FLEET_QUERY`` when the gateways'
    own metrics have no memory); the view's notes then say which query was used and why.
    ``mode``: "raw" reads every sample; "baseline" has the server compute the per-window minimum
    (``min_over_time(q[W])`` every W, :mod:`zcnb.fleet.pushdown`) so only the baseline leaves it; "auto"
    counts the series first and goes baseline above ``raw_points_max`` points (default 2,000,000).
    ``gc_cycle_s``: the expected GC cycle; W is at least 1.5 times it.
    """
    from ..collect.prometheus import MAX_RESPONSE_BYTES, query_instant
    from ..units import parse_duration, to_epoch
    from .pushdown import RAW_POINTS_MAX

    if mode not in ("auto", "raw", "baseline"):
        raise ConfigError(f"unknown fleet mode {mode!r}", hint="use auto, raw or baseline")
    cap = max_response_bytes or MAX_RESPONSE_BYTES
    t0, t1, dt = to_epoch(start), to_epoch(end), parse_duration(step)
    if t0 is None or t1 is None:
        raise ConfigError("a range query needs a start and an end time", hint="e.g. --since 1h (the end is now)")
    common: dict[str, Any] = {"auth": auth, "timeout_s": timeout_s, "retries": retries, "instance_label": instance_label,
              "max_response_bytes": cap}
    df, mode_note, used = _fetch(url, query, t0, t1, dt, mode, gc_cycle_s, raw_points_max or RAW_POINTS_MAX, common)
    used_note = None
    if df.empty and fallback_query:
        df, mode_note, used = _fetch(url, fallback_query, t0, t1, dt, mode, gc_cycle_s,
                                     raw_points_max or RAW_POINTS_MAX, common)
        used_note = (f"{query} has no series (the gateways' own metrics have no memory): read the zcnb exporter's "
                     f"series instead, {fallback_query}")
        query = fallback_query
    if df.empty:
        raise AnalysisError(f"the query returned no data between {start} and {end}",
                            hint="check the query in the Prometheus UI and that the time range covers scraped data")
    flagged: list[str] | None = None
    if evaluate_rule and limit_bytes is not None:
        rule = alert_rule(query, limit_bytes=limit_bytes)
        flagged = list(query_instant(url, rule.expr, at=t1, **common))
    # Baseline series are a few hundred points each: the per-instance path on them is already cheap.
    view = fleet_view(df, limit_bytes=limit_bytes, by="instance", query=query, rule_flagged=flagged,
                      engine="per-instance" if used == "baseline" else "auto")
    notes = tuple(n for n in (used_note, mode_note) if n) + view.notes
    return replace(view, notes=notes, mode=used)


def _fetch(url: str, query: str, t0: float, t1: float, dt: float, mode: str, gc_cycle_s: float | None,
           raw_points_max: int, common: dict[str, Any]) -> tuple[pd.DataFrame, str, str]:
    """Samples (raw) or server-side baselines for ``query``; a note saying which and why; the mode used."""
    from ..collect.prometheus import query_instant, query_range
    from .pushdown import baseline_query, baseline_window, choose_mode, windows_per_request

    n_series = None
    if mode != "raw":
        counted = query_instant(url, f"count({query})", at=t1, **common)
        n_series = int(next(iter(counted.values()), 0.0))
    used = mode if mode != "auto" else choose_mode(n_series or 0, t0, t1, dt, raw_points_max=raw_points_max)
    n_raw = (n_series or 0) * (math.floor((t1 - t0) / dt) + 1)
    if used == "raw":
        df = query_range(url, query, start=t0, end=t1, step=dt, **common)
        why = f"{n_series} series x {math.floor((t1 - t0) / dt) + 1} points <= {raw_points_max:,}" if mode == "auto" \
            else "asked for"
        return df, f"mode: raw (every sample at {format_duration(dt)}; {why})", used
    w = baseline_window(t0, t1, dt, gc_cycle_s=gc_cycle_s)
    expr = baseline_query(query, w, dt)
    per_req = windows_per_request(n_series or 1, w, dt)
    df = query_range(url, expr, start=t0 + w, end=t1, step=w, max_points_per_series=per_req, **common)
    why = (f"{n_series} series x {math.floor((t1 - t0) / dt) + 1} points = {n_raw:,} > {raw_points_max:,}"
           if mode == "auto" else "asked for")
    note = (f"mode: baseline ({expr} every {format_duration(w)}, computed by Prometheus: only the trough baseline "
            f"left the server, {why}); GC cycles shorter than the window are not visible, so patterns describe "
            f"the baseline and n_samples counts windows")
    return df, note, "baseline"
