"""``zcnb alert-rules``: a Prometheus rules file for gateway memory leaks and crash loops.

The leak rules work on the memory *baseline*, ``min_over_time(M[W])``: the lowest memory in each window ``W``.
A garbage collector's sawtooth goes up and down within a cycle; its troughs stay put unless memory is really
retained, so with ``W`` longer than a GC cycle the baseline is flat for a healthy process and rises for a leak.
Each leak rule asks three things of the baseline (reasoning in docs/alerting.md):

1. a sustained trend: its ``deriv`` over the trend window ``L`` (a subquery at step ``S``) exceeds both an
   absolute floor and a fraction of the baseline per hour (so a 1 KiB/h wobble of a 2 GiB process is not a leak);
2. it is still rising now: the baseline rose over the last ``W`` at least at the floor rate (a warm-up that
   reached its plateau, or a one-off step, stops satisfying this within ``2 W``);
3. the process is older than the warm-up time (caches filling after a start are not a leak);

and the alert fires when all three held for ``for``. The *near-limit* rule projects the cgroup's baseline with
``predict_linear`` and fires when it would cross ``memory.max`` (or ``--limit``) within the horizon. The
*crash-loop* rule counts crashes (``thread N panic:``) and restarts (pid changes) per gateway.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import ConfigError

__all__ = ["LEAK_RUNBOOK_LABEL", "RuleOptions", "duration_seconds", "rules_yaml"]

LEAK_RUNBOOK_LABEL = "memory-leak"  # the `runbook` label value of the alerts the receiver acts on
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_SELECTOR = re.compile(r'^\{[^{}]*\}$|^$')


def duration_seconds(text: str, *, what: str = "duration") -> float:
    """Seconds in a Prometheus duration (``90s``, ``10m``, ``1h30m``).

    The rules file needs Prometheus's own syntax (whole numbers with units), so that is checked here; the
    seconds come from :func:`zcnb.units.parse_duration`. ``0s`` is 0 (a valid ``for:``).
    """
    from ..units import parse_duration

    if not isinstance(text, str) or not _DURATION.match(text):
        raise ConfigError(f"{what} {text!r} is not a Prometheus duration", hint="e.g. 30s, 10m, 1h, 1h30m")
    return parse_duration(text) if any(int(n) for n in re.findall(r"\d+", text)) else 0.0


@dataclass(frozen=True)
class RuleOptions:
    """Windows and thresholds of the rules (defaults for a 15 s scrape; see docs/alerting.md)."""

    metric: str = "zcnb_gateway_resident_memory_bytes"
    selector: str = ""  # extra label matchers, e.g. {job="zcnb-exporter"}
    start_metric: str = "zcnb_gateway_process_start_time_seconds"  # "" = no warm-up guard
    baseline_window: str = "10m"  # W: longer than a GC cycle
    trend_window: str = "1h"  # L
    step: str = "1m"  # S: subquery resolution
    for_: str = "30m"
    warmup: str = "15m"
    min_growth_bytes_per_hour: int = 4 << 20
    min_growth_ratio_per_hour: float = 0.02
    fast_baseline_window: str = "1m"
    fast_trend_window: str = "10m"
    fast_step: str = "15s"
    fast_for: str = "5m"
    fast_warmup: str = "5m"
    fast_min_growth_bytes_per_hour: int = 64 << 20
    fast_min_growth_ratio_per_hour: float = 0.5
    cgroup_metric: str = "zcnb_gateway_cgroup_memory_bytes"
    limit_metric: str = "zcnb_gateway_cgroup_memory_max_bytes"
    limit_bytes: int | None = None  # a fixed limit for `metric` instead of the cgroup's memory.max
    horizon: str = "4h"
    crash_window: str = "15m"
    crash_count: int = 3
    group: str = "zeptoclaw-gateway-memory"

    def __post_init__(self) -> None:
        for name in ("baseline_window", "trend_window", "step", "for_", "warmup", "fast_baseline_window",
                     "fast_trend_window", "fast_step", "fast_for", "fast_warmup", "horizon", "crash_window"):
            duration_seconds(getattr(self, name), what=name.rstrip("_").replace("_", "-"))
        for name in ("metric", "cgroup_metric", "limit_metric"):
            if not _METRIC.match(getattr(self, name)):
                raise ConfigError(f"{name} {getattr(self, name)!r} is not a metric name",
                                  hint="e.g. zcnb_gateway_resident_memory_bytes")
        if self.start_metric and not _METRIC.match(self.start_metric):
            raise ConfigError(f"start metric {self.start_metric!r} is not a metric name", hint="or give '' for none")
        if not _SELECTOR.match(self.selector.strip()):
            raise ConfigError(f"selector {self.selector!r} is not a label matcher list", hint='e.g. {job="zcnb-exporter"}')
        self._check_windows()
        if self.crash_count < 1:
            raise ConfigError("crash count must be at least 1", hint="e.g. 3")
        for name in ("min_growth_bytes_per_hour", "fast_min_growth_bytes_per_hour"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative", hint="e.g. 4MiB")
        if self.limit_bytes is not None and self.limit_bytes <= 0:
            raise ConfigError("limit must be a positive size", hint="e.g. 2GiB")

    def _check_windows(self) -> None:
        s = duration_seconds
        for prefix, label in (("", ""), ("fast_", "fast ")):
            w, trend, step = (s(getattr(self, prefix + k)) for k in ("baseline_window", "trend_window", "step"))
            if trend <= w:
                raise ConfigError(f"{label}trend window must be longer than the {label}baseline window",
                                  hint="the trend is fitted over several baselines, e.g. 10m and 1h")
            if step > w:
                raise ConfigError(f"{label}step must not exceed the {label}baseline window",
                                  hint="the subquery samples each baseline window at least once")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["for"] = d.pop("for_")
        return d


def _sel(o: RuleOptions, metric: str) -> str:
    return metric + o.selector.strip()


def _leak_expr(o: RuleOptions, *, fast: bool) -> str:
    p = "fast_" if fast else ""
    w, trend, step = (getattr(o, p + k) for k in ("baseline_window", "trend_window", "step"))
    floor = getattr(o, p + "min_growth_bytes_per_hour")
    ratio = getattr(o, p + "min_growth_ratio_per_hour")
    warm = getattr(o, p + "warmup")
    base = f"min_over_time({_sel(o, o.metric)}[{w}])"
    slope = f"deriv({base}[{trend}:{step}]) * 3600"
    rise_floor = floor * duration_seconds(w) / 3600
    expr = (f"(\n  {slope} > {floor}\n  and {slope} > {ratio:g} * {base}\n"
            f"  and ({base} - min_over_time({_sel(o, o.metric)}[{w}] offset {w})) > {rise_floor:.0f}\n)")
    if o.start_metric:
        expr += f"\nand (time() - {_sel(o, o.start_metric)}) > {duration_seconds(warm):.0f}"
    return expr


def _limit_expr(o: RuleOptions) -> str:
    w, trend, step = o.baseline_window, o.trend_window, o.step
    horizon = duration_seconds(o.horizon)
    if o.limit_bytes is not None:
        base = f"min_over_time({_sel(o, o.metric)}[{w}])"
        expr = f"predict_linear({base}[{trend}:{step}], {horizon:.0f}) > {o.limit_bytes}"
    else:
        base = f"min_over_time({_sel(o, o.cgroup_metric)}[{w}])"
        expr = f"predict_linear({base}[{trend}:{step}], {horizon:.0f}) > {_sel(o, o.limit_metric)}"
    expr = f"(\n  {expr}\n  and deriv({base}[{trend}:{step}]) > 0\n)"
    if o.start_metric:
        expr += f"\nand (time() - {_sel(o, o.start_metric)}) > {duration_seconds(o.warmup):.0f}"
    return expr


def _crash_expr(o: RuleOptions) -> str:
    w, n = o.crash_window, o.crash_count
    return (f"round(increase(zcnb_gateway_crashes_total{o.selector.strip()}[{w}])) >= {n}\n"
            f"or round(increase(zcnb_gateway_restarts_total{o.selector.strip()}[{w}])) >= {n}")


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    return "|-\n" + "\n".join(pad + line for line in text.splitlines())


def _alert(name: str, expr: str, for_: str, severity: str, runbook: str, summary: str, description: str) -> str:
    return "\n".join([
        f"      - alert: {name}",
        f"        expr: {_block(expr, 10)}",
        f"        for: {for_}",
        "        labels:",
        f"          severity: {severity}",
        f"          runbook: {runbook}",
        "        annotations:",
        f"          summary: {_quote(summary)}",
        f"          description: {_quote(description)}",
    ])


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rules_yaml(options: RuleOptions | None = None) -> str:
    """The rules file (YAML text) for ``options``; check it with ``promtool check rules``."""
    o = options or RuleOptions()
    who = "{{ $labels.instance }} (pid {{ $labels.pid }})"
    limit_what = f"the fixed limit of {o.limit_bytes} bytes" if o.limit_bytes is not None else "its cgroup's memory.max"
    alerts = [
        _alert("ZeptoclawGatewayMemoryLeak", _leak_expr(o, fast=False), o.for_, "warning", LEAK_RUNBOOK_LABEL,
               f"Memory leak: {who} baseline grows {{{{ $value | humanize1024 }}}}B/h",
               f"The memory baseline (minimum over {o.baseline_window}) of {who} has grown for {o.for_} and the "
               f"trend over {o.trend_window} is above {o.min_growth_bytes_per_hour} B/h and "
               f"{o.min_growth_ratio_per_hour:g} of the baseline per hour. Runbook: Handling Memory Leak."),
        _alert("ZeptoclawGatewayMemoryLeakFast", _leak_expr(o, fast=True), o.fast_for, "critical",
               LEAK_RUNBOOK_LABEL,
               f"Fast memory leak: {who} baseline grows {{{{ $value | humanize1024 }}}}B/h",
               f"The memory baseline (minimum over {o.fast_baseline_window}) of {who} grows faster than "
               f"{o.fast_min_growth_bytes_per_hour} B/h and {o.fast_min_growth_ratio_per_hour:g} of itself per hour "
               f"(trend over {o.fast_trend_window}). Runbook: Handling Memory Leak, severity high."),
        _alert("ZeptoclawGatewayMemoryNearLimit", _limit_expr(o), o.for_, "critical", LEAK_RUNBOOK_LABEL,
               f"{who} will reach {limit_what} within {o.horizon}",
               f"The memory baseline of {who}, projected with predict_linear over {o.trend_window}, crosses "
               f"{limit_what} within {o.horizon}. Runbook: Handling Memory Leak (mitigate before the OOM kill)."),
        _alert("ZeptoclawGatewayCrashLoop", _crash_expr(o), "0s", "critical", "crash-loop",
               "{{ $labels.instance }} crashed or restarted {{ $value }} times in " + o.crash_window,
               f"At least {o.crash_count} crashes ('thread N panic:') or restarts (new pid) of "
               f"{{{{ $labels.instance }}}} within {o.crash_window}."),
    ]
    head = ["# zcnb alert rules for the ZeptoClaw gateway (written by `zcnb alert-rules`; see docs/alerting.md)",
            "# options: " + ", ".join(f"{k}={v}" for k, v in o.to_dict().items()),
            "groups:", f"  - name: {o.group}", "    rules:"]
    return "\n".join(head + alerts) + "\n"
