"""``zcnb sample``: sample the gateway's memory into a CSV, then print the leak verdict."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import add_budget_option, apply_budget_option, port_arg, unit_arg
from ..units import format_bytes


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sample",
        help="sample the gateway's memory at a fixed rate into a CSV (the runbook's 1-hour loop)",
        description="Fixed-rate memory sampling (psutil, /metrics, cgroup) into an append-only CSV with restart "
        "and gap events. Ctrl-C stops cleanly and keeps the data. Prints the leak verdict at the end.",
    )
    target = p.add_argument_group("target (first given wins)")
    target.add_argument("--pid", type=int, help="process id")
    target.add_argument("--pid-file", help="file holding the pid (re-read after a restart)")
    target.add_argument("--unit", type=unit_arg, help="systemd user unit (MainPID)")
    target.add_argument("--pattern", help="regex on the full command line, like pgrep -f (default: zeptoclaw-gateway "
                        "when no other target is given)")
    p.add_argument("--url", help="gateway base URL for /metrics (default from settings, http://127.0.0.1:18789)")
    p.add_argument("--port", type=port_arg, default=None,
                   help="gateway port for the default /metrics URL (default: the port setting, 18789; --url wins)")
    add_budget_option(p)
    p.add_argument("--token-env", help="NAME of the env var holding the token (default: the token_env setting, "
                   "GATEWAY_AUTH_TOKEN; the token_file setting is read when the variable is empty)")
    p.add_argument("--unauth-metrics", action="store_true",
                   help="scrape /metrics even without a token (only for a gateway that serves it openly: on the "
                   "real gateway every token-less request leaks memory)")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between samples (>= 0.1, default 30)")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds to sample (default 3600)")
    p.add_argument("--max-samples", type=int, help="stop after this many ticks")
    p.add_argument("--metrics-interval", type=float, default=None,
                   help="seconds between /metrics scrapes (default: the metrics_min_interval_s setting, 10; the "
                   "gateway allows 100 requests/60 s)")
    p.add_argument("--sources", default="psutil", help="comma list of psutil,metrics,cgroup (default psutil)")
    p.add_argument("--out", required=True, help="CSV file to write (0600); its folder must exist")
    p.add_argument("--wait-for", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for the target process to appear (a gateway still starting); default 0: "
                        "a target that matches nothing at the first tick is an error at once")
    p.add_argument("--append", action="store_true", help="append to an existing zcnb samples CSV")
    p.add_argument("--no-uss-pss", action="store_true",
                   help="skip USS/PSS (smaps_rollup: the costly part of a sample on a large process)")
    p.add_argument("--fsync", action="store_true", help="fsync after every row (durable across power loss)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-verdict", action="store_true", help="do not run the leak analysis at the end")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..collect.sampling import sample
    from ..config import NO_TOKEN_LEAK, gateway_token, load_settings, token_source
    from ..exceptions import ProcessNotFound, TargetError

    apply_budget_option(args)
    settings = load_settings(getattr(args, "config", None), token_env=args.token_env)
    _check_out_folder(args.out)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    pattern = args.pattern
    if not any((args.pid, args.pid_file, args.unit, pattern)) and {"psutil", "cgroup"} & set(sources):
        pattern = settings.process_pattern
    if args.pid is not None and {"psutil", "cgroup"} & set(sources):
        import psutil

        if not psutil.pid_exists(args.pid):  # a pid never comes back: an hour of gap rows would help nobody
            raise ProcessNotFound(f"no process with pid {args.pid}", pid=args.pid,
                                  hint="check the pid (pgrep -f zeptoclaw-gateway), or give --pid-file/--unit/--pattern")
    if {"psutil", "cgroup"} & set(sources):
        _first_tick(args, pattern)
    url = args.url or (f"http://{settings.host}:{args.port or settings.port}" if "metrics" in sources else None)
    token = gateway_token(settings=settings) if "metrics" in sources else None
    where = token_source(settings=settings)
    if "metrics" in sources and not token:
        print(f"warning: no gateway token in the {where}: " + (
              "scraping /metrics without one as asked (--unauth-metrics); " + NO_TOKEN_LEAK if args.unauth_metrics
              else "/metrics will not be scraped (" + NO_TOKEN_LEAK + "); pass --unauth-metrics for a gateway that "
              "serves /metrics openly"), file=sys.stderr)
    metrics_interval = args.metrics_interval if args.metrics_interval is not None else settings.metrics_min_interval_s
    summary = sample(args.out, pid=args.pid, pid_file=args.pid_file, unit=args.unit, pattern=pattern, url=url,
                     token=token, sources=sources, interval_s=args.interval, duration_s=args.duration,
                     max_samples=args.max_samples, metrics_interval_s=metrics_interval, append=args.append,
                     fsync=args.fsync, uss_pss=not args.no_uss_pss, progress=not args.no_progress,
                     timeout_s=settings.http_timeout_s, unauth_metrics=args.unauth_metrics,
                     token_hint=f"set the gateway token in the {where}")
    print(f"wrote {summary.path}: {summary.samples} samples, {summary.gaps} gaps, {summary.restarts} restarts, "
          f"{summary.missed_ticks} missed ticks (stopped by {summary.stopped_by})")
    for note in summary.notes:
        print(f"note: {note}")
    if summary.samples == 0 and summary.stopped_by != "interrupt":
        why = next((n.split(": ", 1)[1] for n in summary.notes if n.startswith("no memory sample was taken")), "")
        raise TargetError(f"no memory sample was taken{': ' + why if why else ''} ({summary.path} holds only "
                          "gap rows)", path=summary.path,
                          hint="check the target (--pid/--pid-file/--unit/--pattern) and, for /metrics, the token")
    if args.no_verdict:
        return 0
    return _verdict(summary.path)


def _check_out_folder(out: str) -> None:
    """``--out`` must go into an existing folder: a typo must not create folders (nor sample for an hour first)."""
    from pathlib import Path

    from ..exceptions import OutputWriteError

    folder = Path(out).expanduser().parent
    if not folder.is_dir():
        raise OutputWriteError(f"cannot write {out}: folder {folder} does not exist",
                               hint="create the folder first, or choose --out in an existing one", path=str(out))


def _first_tick(args: argparse.Namespace, pattern: str | None) -> None:
    """Find the target as the first tick would; fail at once when nothing matches (or after --wait-for SECONDS)."""
    import time

    from ..collect.process import ProcessQuery, find_by_query
    from ..exceptions import ConfigError, ProcessAmbiguous, ProcessNotFound, TargetError

    if args.wait_for < 0:
        raise ConfigError(f"--wait-for {args.wait_for:g} is negative", hint="give seconds to wait, e.g. --wait-for 30")
    query = ProcessQuery(pid=args.pid, pid_file=args.pid_file, unit=args.unit, pattern=pattern)
    deadline = time.monotonic() + args.wait_for
    while True:
        try:
            info = find_by_query(query)
            print(f"process: {info.describe()}", file=sys.stderr)
            return
        except ProcessAmbiguous:
            raise  # waiting would not make the choice for the user: the message lists them and how to pick
        except TargetError as exc:
            if time.monotonic() >= deadline:
                waited = f" (waited {args.wait_for:g} s)" if args.wait_for else ""
                raise ProcessNotFound(f"nothing to sample: {exc.message}{waited}",
                                hint="check --pid/--pid-file/--unit/--pattern (pgrep -af zeptoclaw-gateway), or "
                                     "pass --wait-for SECONDS for a gateway that is still starting") from None
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))


def _verdict(path: str) -> int:
    from ..collect.sampling import read_samples
    from ..exceptions import ZcnbError

    try:
        from ..analysis import assess_leak  # written by the analysis area; optional until it lands
    except ImportError:
        print("verdict: not available (zcnb.analysis is not installed); run `zcnb analyze` later", file=sys.stderr)
        return 0
    try:
        assessment = assess_leak(read_samples(path))
    except ZcnbError as exc:
        print(f"verdict: none ({exc})")
        return 0
    rate = assessment.growth_bytes_per_hour
    rate_txt = "" if rate is None else f", growth {format_bytes(rate, unit='MiB', digits=2)}/h"
    print(f"verdict: {assessment.verdict} ({assessment.pattern}{rate_txt}, severity {assessment.severity})")
    if assessment.advice:
        print(f"advice: {assessment.advice}")
    return 0
