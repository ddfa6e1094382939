"""``zcnb preflight``: check the runbook's assumptions against the live gateway (exit 1 if a check fails)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "preflight",
        help="check the runbook's assumptions against the live gateway and print a table",
        description="Probes /metrics (with and without token, status line or not), /health, the process, its "
        "cgroup, the systemd units, MemoryMax, the journal, the skill log form and the state folders. "
        "Exit 0 when no check fails, 1 otherwise.",
    )
    p.add_argument("--url", help="gateway base URL (default from settings, http://127.0.0.1:18789)")
    p.add_argument("--token-env", default="GATEWAY_AUTH_TOKEN", help="NAME of the env var holding the token")
    p.add_argument("--unit", help="systemd user unit (default zeptoclaw-gateway.service)")
    p.add_argument("--pid", type=int, help="gateway pid")
    p.add_argument("--pid-file", help="file holding the gateway pid")
    p.add_argument("--pattern", help="regex on the command line (default zeptoclaw-gateway)")
    p.add_argument("--log-file", help="a log file to look for the skill log form in")
    p.add_argument("--no-unauth-probe", action="store_true",
                   help="skip the token-less /metrics probe (on the real gateway each one leaks a little)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per probe (default 3)")
    p.add_argument("--json", help="also write the result as JSON to this file (0600)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..config import load_settings, read_token
    from ..files import write_json
    from ..preflight import preflight

    settings = load_settings(getattr(args, "config", None), token_env=args.token_env)
    result = preflight(settings, url=args.url, token=read_token(args.token_env), unit=args.unit, pid=args.pid,
                       pid_file=args.pid_file, pattern=args.pattern, log_file=args.log_file,
                       probe_unauthenticated=not args.no_unauth_probe, timeout_s=args.timeout)
    print(result.format_text())
    if args.json:
        write_json(args.json, result.to_dict())
    return 0 if result.ok else 1


__all__ = ["register"]
