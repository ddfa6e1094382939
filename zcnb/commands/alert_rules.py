"""``zcnb alert-rules``: write the Prometheus rules file (leak, fast leak, near limit, crash loop)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

# RuleOptions field, flag, help (windows are Prometheus durations, sizes like 4MiB)
_RULE_FLAGS = (
    ("metric", "--metric", "memory series of each gateway process"),
    ("selector", "--selector", 'extra label matchers for every series, e.g. {job="zcnb-exporter"}'),
    ("start_metric", "--start-metric", "process start time series for the warm-up guard ('' = no guard)"),
    ("baseline_window", "--baseline-window", "W: the baseline is the minimum over W; longer than a GC cycle"),
    ("trend_window", "--trend-window", "L: the baseline's trend (deriv) is fitted over L"),
    ("step", "--step", "subquery step for the trend"),
    ("for_", "--for", "how long the leak condition must hold"),
    ("warmup", "--warmup", "no leak alert for a process younger than this"),
    ("min_growth_bytes_per_hour", "--min-growth", "least baseline growth per hour that counts"),
    ("min_growth_ratio_per_hour", "--min-growth-ratio", "least growth per hour as a fraction of the baseline"),
    ("fast_baseline_window", "--fast-baseline-window", "W of the fast-leak rule"),
    ("fast_trend_window", "--fast-trend-window", "L of the fast-leak rule"),
    ("fast_step", "--fast-step", "subquery step of the fast-leak rule"),
    ("fast_for", "--fast-for", "how long the fast-leak condition must hold"),
    ("fast_warmup", "--fast-warmup", "warm-up guard of the fast-leak rule"),
    ("fast_min_growth_bytes_per_hour", "--fast-min-growth", "least growth per hour of a fast leak"),
    ("fast_min_growth_ratio_per_hour", "--fast-min-growth-ratio", "least growth per hour of a fast leak, as a "
                                                                   "fraction of the baseline"),
    ("cgroup_metric", "--cgroup-metric", "cgroup memory series for the near-limit rule"),
    ("limit_metric", "--limit-metric", "cgroup memory.max series for the near-limit rule"),
    ("limit_bytes", "--limit", "a fixed limit for --metric instead of the cgroup's memory.max, e.g. 2GiB"),
    ("horizon", "--horizon", "near-limit rule: alert when the limit is reached within this time"),
    ("crash_window", "--crash-window", "crash-loop rule: window to count crashes and restarts in"),
    ("crash_count", "--crash-count", "crash-loop rule: crashes or restarts in the window that make a loop"),
    ("group", "--group", "rule group name"),
)


def register(sub: Any) -> None:
    r = sub.add_parser("alert-rules", help="write the Prometheus alert rules (leak, fast leak, near limit, crash loop)",
                       description="Write a Prometheus rules file for the exporter's series; every window and "
                                   "threshold is an option (reasoning in docs/alerting.md).")
    r.add_argument("--out", default="-", help="rules file to write (default: stdout)")
    r.add_argument("--check", action="store_true", help="run `promtool check rules` on the result")
    from ..monitor.rules import RuleOptions

    defaults = RuleOptions()
    for name, flag, text in _RULE_FLAGS:
        r.add_argument(flag, dest=f"rule_{name}", default=None,
                       help=f"{text} (default {getattr(defaults, name)})")
    r.set_defaults(handler=_rules)


def _rules(args: argparse.Namespace) -> int:
    from ..monitor.rules import RuleOptions, rules_yaml
    from ..files import write_private

    values: dict[str, Any] = {}
    for name, _flag, _help in _RULE_FLAGS:
        raw = getattr(args, f"rule_{name}")
        if raw is not None:
            values[name] = _rule_value(name, raw)
    text = rules_yaml(RuleOptions(**values))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        write_private(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.check:
        return _promtool_check(text)
    return 0


def _rule_value(name: str, raw: str) -> Any:
    from ..exceptions import ConfigError
    from ..units import parse_size

    if name.endswith("bytes_per_hour") or name == "limit_bytes":
        return parse_size(raw)
    if name.endswith("ratio_per_hour"):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} {raw!r} is not a number", hint="e.g. 0.02") from None
    if name == "crash_count":
        if not raw.isdigit():
            raise ConfigError(f"--crash-count {raw!r} is not a whole number", hint="e.g. 3")
        return int(raw)
    return raw


def _promtool_check(text: str) -> int:
    import shutil
    import subprocess
    import tempfile

    from ..exceptions import ConfigError

    exe = shutil.which("promtool")
    if exe is None:
        raise ConfigError("--check needs promtool", hint="apt-get install prometheus (it ships promtool)")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        fh.write(text)
    try:
        proc = subprocess.run([exe, "check", "rules", fh.name], capture_output=True, text=True, check=False)
    finally:
        import os

        os.unlink(fh.name)
    print((proc.stdout + proc.stderr).strip().replace(fh.name, "rules"), file=sys.stderr)
    return 0 if proc.returncode == 0 else 1
