"""``zcnb fleet``: rank many gateways by memory growth, from a Prometheus server's history."""

from __future__ import annotations

import argparse
import io
import time
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    from .json_option import add_json_option

    p = subparsers.add_parser(
        "fleet",
        help="assess every instance's memory from Prometheus and rank who needs a restart first",
        description="Read memory history from a Prometheus server (query_range), assess a leak per instance and "
                    "rank the fleet; shows the equivalent predict_linear alert rule and which instances it flags.",
    )
    p.add_argument("--prometheus-url", required=True, help="Prometheus server root, e.g. http://127.0.0.1:9090")
    from ..config import DEFAULT_FLEET_QUERY, EXPORTER_FLEET_QUERY

    p.add_argument("--query", default=None,
                   help=f"PromQL giving one memory series per instance (default: {DEFAULT_FLEET_QUERY}, or, when "
                        f"that has no series, zcnb exporter's {EXPORTER_FLEET_QUERY}; the output says which)")
    p.add_argument("--since", default="1h", help="start: a duration before --until (1h, 90m) or an ISO time (default 1h)")
    p.add_argument("--until", default=None, help="end: ISO time (default: now)")
    p.add_argument("--step", default="15s", help="query resolution (default 15s)")
    p.add_argument("--limit", default=None, help="memory limit per instance for time-to-limit, e.g. 2GiB, 2G (1024-based)")
    p.add_argument("--instance-label", default="instance", help="label that names an instance (default instance)")
    p.add_argument("--bearer-token-env", default=None, help="NAME of the env var holding a bearer token")
    p.add_argument("--basic-user-env", default=None, help="NAME of the env var holding the basic-auth user")
    p.add_argument("--basic-password-env", default=None, help="NAME of the env var holding the basic-auth password")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="total seconds for each Prometheus query, all chunks and retries included (default 30)")
    p.add_argument("--max-response", default="512MiB",
                   help="largest Prometheus reply read, e.g. 512MiB (default); bigger replies are refused")
    p.add_argument("--retries", type=int, default=3, help="retries on 5xx / connection errors (default 3)")
    p.add_argument("--mode", choices=("auto", "raw", "baseline"), default="auto",
                   help="raw: every sample; baseline: Prometheus computes min_over_time per window and only that "
                        "is read; auto (default): baseline above 2,000,000 raw points (series x points)")
    p.add_argument("--gc-cycle", default=None,
                   help="expected GC/free cycle (e.g. 10m): the baseline window is at least 1.5x this")
    p.add_argument("--no-rule", action="store_true", help="do not evaluate the alert rule on the server")
    p.add_argument("--png", default=None, help="write the small-multiples figure to this PNG file")
    add_json_option(p, "the fleet view")
    p.add_argument("--fail-on-leak", action="store_true", help="exit 1 when any instance is leaking")
    p.set_defaults(handler=run)


def _range(args: argparse.Namespace) -> tuple[float, float]:
    from ..exceptions import ConfigError
    from ..units import parse_duration, to_epoch

    end = to_epoch(args.until) or time.time()
    try:
        return end - parse_duration(args.since), end
    except ConfigError:
        pass
    try:
        start = to_epoch(args.since)
    except ConfigError:
        start = None
    if start is None:
        raise ConfigError(f"cannot read --since {args.since!r}",
                          hint="give a duration (1h, 90m) or an ISO time (2026-11-28T10:00:00Z)")
    return start, end


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..collect.prometheus import PrometheusAuth
    from ..files import write_private
    from ..fleet.view import fleet_from_prometheus
    from ..units import format_bytes, format_duration, parse_duration, parse_size
    from ..viz.fleet import plot_fleet
    from .json_option import emit_json, info, json_to_stdout

    start, end = _range(args)
    limit = parse_size(args.limit) if args.limit else None
    max_response = int(parse_size(args.max_response))
    auth = None
    if args.bearer_token_env or args.basic_user_env or args.basic_password_env:
        auth = PrometheusAuth(bearer_token_env=args.bearer_token_env, basic_user_env=args.basic_user_env,
                              basic_password_env=args.basic_password_env)
    from ..config import DEFAULT_FLEET_QUERY, EXPORTER_FLEET_QUERY

    view = fleet_from_prometheus(args.prometheus_url, args.query or DEFAULT_FLEET_QUERY, start=start, end=end,
                                 step=args.step, limit_bytes=limit, auth=auth, evaluate_rule=not args.no_rule,
                                 instance_label=args.instance_label, timeout_s=args.timeout, retries=args.retries,
                                 fallback_query=None if args.query else EXPORTER_FLEET_QUERY,
                                 max_response_bytes=max_response, mode=args.mode,
                                 gc_cycle_s=parse_duration(args.gc_cycle) if args.gc_cycle else None)
    if not json_to_stdout(args):
        print(view.summary() + f" [mode: {view.mode}]")
        table = view.to_frame()
        cols = ["instance", "verdict", "pattern", "severity", "growth_bytes_per_hour", "time_to_limit_s", "last_bytes",
                "n_samples", "restart_rank"] + (["rule_flagged"] if view.rule_evaluated else [])
        shown = table[cols].copy()
        for c in ("growth_bytes_per_hour", "last_bytes"):
            shown[c] = [format_bytes(v) for v in shown[c]]
        shown["time_to_limit_s"] = [format_duration(None if pd.isna(v) else float(v)) for v in shown["time_to_limit_s"]]
        shown = shown.rename(columns={"growth_bytes_per_hour": "growth/h", "time_to_limit_s": "to limit",
                                      "last_bytes": "last", "restart_rank": "restart#"})
        print(shown.to_string(index=False))
        print(f"\nequivalent alert rule: {view.rule.expr}")
        cmp_ = view.comparison()
        if cmp_:
            print("rule vs zcnb: " + "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in cmp_.items()))
        for note in view.notes:
            print(f"note: {note}")
    emit_json(args, view)
    if args.png:
        buf = io.BytesIO()
        plot_fleet(view).savefig(buf, format="png", dpi=100)
        write_private(args.png, buf.getvalue())
        info(args, f"wrote {args.png}")
    return 1 if (args.fail_on_leak and view.leaking) else 0
