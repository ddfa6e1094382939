"""``zcnb exporter``: a Prometheus exporter for the gateways on this host (reads /proc and logs only)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    from .serving import GATEWAY_HELP

    p = sub.add_parser("exporter", help="Prometheus exporter: gateway memory, restarts, fds and log counters",
                       description="Serve per-gateway RSS, USS, PSS, cgroup memory and memory.max, start time, "
                                   "restarts, open fds, and skill/tool/error/crash counters from the journal or a "
                                   "log file. Reads /proc and logs only: sends nothing to the gateway.")
    p.add_argument("--gateway", action="append", default=[], metavar="SPEC", help=GATEWAY_HELP + " (default: the settings' unit)")
    p.add_argument("--listen", default="127.0.0.1:9840", help="address:port to serve /metrics on (default %(default)s)")
    p.add_argument("--log-start", choices=("end", "all"), default="end",
                   help="count log lines from now on (end, default) or the whole journal/file (all)")
    p.add_argument("--max-log-bytes", default="2MiB",
                   help="log-file bytes read per scrape at most; the rest waits for the next scrape (default 2MiB)")
    p.add_argument("--no-uss-pss", action="store_true", help="skip USS/PSS (smaps_rollup) for the cheapest scrape")
    p.add_argument("--once", action="store_true", help="print one exposition to stdout and exit")
    p.set_defaults(handler=_exporter)



def _exporter(args: argparse.Namespace) -> int:
    from ..monitor.exporter import Exporter, ExporterOptions
    from ..monitor.logcount import describe
    from ..monitor.targets import parse_targets
    from ..units import parse_size
    from .serving import parse_listen, wait_for_signal, warn_if_open

    targets = parse_targets(args.gateway)
    host, port = parse_listen(args.listen)
    opts = ExporterOptions(log_start=args.log_start, max_log_bytes=parse_size(args.max_log_bytes),
                           uss_pss=not args.no_uss_pss)
    exp = Exporter(targets, host=host, port=port, options=opts,
                   report=lambda line: print(line, file=sys.stderr, flush=True))
    if args.once:
        for w in exp.watches:
            w.start()
        try:
            sys.stdout.write(exp.scrape().decode())
        finally:
            exp.stop()
        return 0
    warn_if_open(host)
    with exp:
        for w in exp.watches:
            print(f"zcnb exporter: {w.target.instance}: process by {w.target.find_by()}; logs: {describe(w.log)}")
        print(f"zcnb exporter: listening on {exp.url}", flush=True)
        wait_for_signal()
    return 0
