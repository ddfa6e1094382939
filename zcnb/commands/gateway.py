"""``zcnb gateway``: run the simulated ZeptoClaw gateway (or, with ``--real PATH``, a real binary) in the
foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import time
from typing import Any

__all__ = ["register"]

_DEFAULT_TRAFFIC: dict[str, Any] = {  # 0.7 token calls/s = 42/min: under the 60/min generator budget
    "skills": {"git_workflow": 0.3, "web_research": 0.2}, "tools": {"web_search": 0.1},
    "heartbeat_rate": 0.1, "unauth_rate": 0.5,
}


def register(subparsers: Any) -> None:
    from ..demo import LEAK_KINDS, LEAK_MODES

    p = subparsers.add_parser(
        "gateway", help="run the simulated gateway (real or runbook profile) until Ctrl-C",
        description="Run the simulated ZeptoClaw gateway on 127.0.0.1. The token is read from the environment "
                    "variable named by --token-env (generated when unset; --token-file saves it, mode 0600); "
                    "it is never printed by zcnb (the simulated banner in the log shows it, like the real one).")
    p.add_argument("--profile", choices=("real", "runbook"), default="real",
                   help="real: like the shipped gateway (TARGET.md); runbook: as the runbook pictures it (default real)")
    p.add_argument("--leak", choices=LEAK_MODES, default="none", help="how memory grows (default none)")
    p.add_argument("--leak-kind", choices=LEAK_KINDS, help="request kind that leaks (with --leak per_request)")
    p.add_argument("--leak-bytes", type=int, default=64 * 1024, help="bytes per leaking request (default 64 KiB)")
    p.add_argument("--leak-rate", type=float, default=128 * 1024, help="bytes/s for linear/sawtooth-rising/warmup")
    p.add_argument("--leak-period", type=float, default=10.0, help="sawtooth period in s")
    p.add_argument("--port", type=int, default=18789, help="0 = a free port (default 18789)")
    p.add_argument("--token-env", default="GATEWAY_AUTH_TOKEN", help="env var holding the token")
    p.add_argument("--token-file", help="write the token used here (mode 0600)")
    p.add_argument("--log-file", help="gateway log (default: $XDG_DATA_HOME/zeptoclaw/simulator/gateway.log)")
    p.add_argument("--pid-file", help="write the pid here (for the supervisor backend)")
    p.add_argument("--rate-limit", type=int, default=100, help="requests per window per token; 0 = off")
    p.add_argument("--rate-window", type=float, default=60.0, help="rate-limit window in s (default 60)")
    p.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM (a hanging stop, for kill fallbacks)")
    p.add_argument("--seed", type=int, default=0, help="random seed of errors and traffic (default 0)")
    p.add_argument("--traffic", action="store_true", help="also send skill/tool/probe traffic (42 token calls/min)")
    p.add_argument("--duration", type=float, help="stop after this many seconds instead of waiting for Ctrl-C")
    p.add_argument("--real", metavar="PATH", nargs="?", const="",
                   help="run a real zeptoclaw-gateway binary instead of the simulator (PATH; without it: "
                        "$ZCNB_REAL_GATEWAY or the .ci/build-real-gateway cache), on 127.0.0.1 with a private HOME; "
                        "Ctrl-C stops it cleanly (its leak report goes to the log)")
    p.add_argument("--work-dir", help="--real: folder for its HOME, log and pid file "
                                      "(default: $XDG_DATA_HOME/zeptoclaw/real-gateway)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Secret, read_token
    from ..demo import SimulatedGateway, TrafficGenerator
    from ..exceptions import ConfigError
    from ..files import write_private

    if args.real is not None:
        return _run_real(args)
    if args.leak == "per_request" and not args.leak_kind:
        raise ConfigError("--leak per_request needs --leak-kind", hint="e.g. --leak-kind unauth")
    given = read_token(args.token_env)
    token = given or Secret(secrets.token_urlsafe(24))
    if args.token_file:
        write_private(args.token_file, token.reveal() + "\n")
    log_file = args.log_file
    if not log_file:  # outlive this command (the controller's temp folder does not)
        from ..config import xdg_data_dir
        from ..files import ensure_private_dir

        log_file = str(ensure_private_dir(xdg_data_dir() / "simulator") / "gateway.log")
    gw = SimulatedGateway(
        profile=args.profile, leak=args.leak, leak_kind=args.leak_kind if args.leak == "per_request" else None,
        leak_bytes=args.leak_bytes, leak_rate=args.leak_rate, leak_period=args.leak_period, token=token,
        port=args.port, log_path=log_file, pid_file=args.pid_file, ignore_sigterm=args.ignore_sigterm,
        seed=args.seed, rate_limit=args.rate_limit > 0, rate_limit_max=max(args.rate_limit, 1),
        rate_limit_window_s=args.rate_window)
    traffic = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` of this command also stops cleanly
    try:
        gw.start()
        origin = f"from ${args.token_env}" if given else (
            f"generated, saved to {args.token_file}" if args.token_file else "generated (pass --token-file to save it)")
        print(f"simulated gateway ({args.profile} profile, leak {args.leak}) at {gw.url}  pid {gw.pid}")
        print(f"token: {origin}; send it as X-Auth-Token (env var name: {args.token_env})")
        print(f"log: {gw.log_path}   pid file: {gw.pid_file}")
        if args.traffic:
            traffic = TrafficGenerator(gw.url, token=token, seed=args.seed, **_DEFAULT_TRAFFIC).start()
            print("traffic: " + ", ".join(f"{k}={v}" for k, v in _DEFAULT_TRAFFIC.items()))
        print("Ctrl-C stops it (clean SIGTERM stop, leak report in the log)", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while gw.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        if not gw.running:
            print("zcnb: the simulated gateway exited by itself", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        if traffic is not None:
            traffic.stop()
        result = gw.stop()
        signal.signal(signal.SIGTERM, previous)
    print(f"stopped: {'clean exit' if result.clean else result.note}; {len(gw.leak_report_lines())} leak report lines")
    return 0


def _run_real(args: argparse.Namespace) -> int:
    from ..config import Secret, read_token, xdg_data_dir
    from ..demo.realgw import RealGatewayProcess, locate_real_gateway
    from ..exceptions import ConfigError
    from ..files import ensure_private_dir, write_private
    from ..leaks.parse import parse_leak_report

    exe = locate_real_gateway(args.real or None)
    if exe is None:
        raise ConfigError("no real zeptoclaw-gateway binary found",
                          hint="pass --real PATH, set $ZCNB_REAL_GATEWAY, or build it: bash .ci/build-real-gateway")
    given = read_token(args.token_env)
    token = given or Secret(secrets.token_hex(16))
    if args.token_file:
        write_private(args.token_file, token.reveal() + "\n")
    work = ensure_private_dir(args.work_dir or (xdg_data_dir() / "real-gateway"))
    gw = RealGatewayProcess.start(exe, work, port=args.port or None, token=token.reveal(),
                                  log_path=args.log_file, pid_file=args.pid_file, name="gateway")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    offset = gw.log_path.stat().st_size
    try:
        origin = f"from ${args.token_env}" if given else (
            f"generated, saved to {args.token_file}" if args.token_file else "generated (pass --token-file to save it)")
        print(f"real gateway {exe} at {gw.url}  pid {gw.pid}")
        print(f"token: {origin}; send it as X-Auth-Token (env var name: {args.token_env}); its startup banner in "
              "the log prints it in clear")
        print(f"log: {gw.log_path}   pid file: {gw.pid_file}   HOME: {gw.home}")
        print("it ignores SIGTERM; Ctrl-C here stops it cleanly (accept() made to fail, leak report in the log)",
              flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while gw.proc.poll() is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        if gw.proc.poll() is not None:
            print(f"zcnb: the real gateway exited by itself (code {gw.proc.returncode}); see {gw.log_path}",
                  file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        res = gw.stop_clean(timeout_s=30) if gw.proc.poll() is None else None
    with gw.log_path.open("rb") as fh:
        fh.seek(offset)
        report = parse_leak_report(fh.read())
    how = (f"clean exit after {res.waited_s:.1f} s (stop method {res.method})" if res is not None and res.exited
           else "killed: the leak report is lost")
    print(f"stopped: {how}; {report.summary}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
