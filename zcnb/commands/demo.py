"""``zcnb demo``: the demo incident on the built-in simulated gateway."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run a whole demo incident on the built-in simulated gateway (or a real binary) and print the report path",
        description="Start the simulated gateway (real profile, leaking on token-less probes) with traffic, sample "
        "it, restart it, collect its logs, run every stage notebook, build report.html and the incidents index.html "
        "(about 1.5 minutes; one line per step).",
    )
    p.add_argument("--incidents-dir", help="where the incident folder goes (default ~/.local/share/zeptoclaw/incidents)")
    p.add_argument("--sample-seconds", type=float, default=42.0, help="sampling before the restart (default 42)")
    p.add_argument("--after-seconds", type=float, default=19.0,
                   help="sampling after the restart (default 19; with the time before, at least the 60 s a verdict "
                        "needs)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between samples (default 0.5)")
    p.add_argument("--leak-kind", default="unauth", help="request kind that leaks (unauth, agent, heartbeat, ws, ...)")
    p.add_argument("--pdf", action="store_true",
                   help="also print report.pdf with a headless Chromium (apt-get install chromium; or $ZCNB_CHROMIUM)")
    p.add_argument("--gateway-binary", metavar="PATH",
                   help="run the demo on a real zeptoclaw-gateway binary (bash .ci/build-real-gateway builds one) "
                        "instead of the simulator: loopback, private HOME, token-less probes with many headers, "
                        "restart with the clean stop")
    p.add_argument("--probe-headers", type=int, default=20,
                   help="with --gateway-binary: extra headers per token-less probe (what the real gateway leaks; "
                        "default 20)")
    p.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar (the step lines stay)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..demo.runner import DemoOptions, run_demo
    from .report import print_run

    opts = DemoOptions(sample_s=args.sample_seconds, after_s=args.after_seconds, interval_s=args.interval,
                       leak_kind=args.leak_kind, pdf=args.pdf, gateway_binary=args.gateway_binary,
                       probe_headers=args.probe_headers)
    run = run_demo(incidents_dir=args.incidents_dir, options=opts, progress=not args.no_progress)
    return print_run(run)
