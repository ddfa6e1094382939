"""``zcnb preflight``: check the runbook's assumptions against the live gateway (exit 1 if a check fails);
``zcnb budget``: how much of the gateway's shared request budget zcnb processes are using, and who."""

from __future__ import annotations

import argparse
from typing import Any

from . import add_budget_option, apply_budget_option, port_arg, unit_arg


def register(sub: Any) -> None:
    from .json_option import add_json_option

    p = sub.add_parser(
        "preflight",
        help="check the runbook's assumptions against the live gateway and print a table",
        description="Probes /metrics (with the token; without it only with --probe-unauth), /health, the process, "
        "its cgroup, the systemd units, MemoryMax, the journal, the skill log form and the state folders. "
        "Exit 0 when no check fails, 1 otherwise.",
    )
    p.add_argument("--url", help="gateway base URL (default http://HOST:PORT from the settings, http://127.0.0.1:18789)")
    p.add_argument("--port", type=port_arg, default=None,
                   help="gateway port for the default URL (default: the port setting, 18789; --url wins)")
    p.add_argument("--token-env", help="NAME of the env var holding the token (default: the token_env setting, "
                   "GATEWAY_AUTH_TOKEN; the token_file setting is read when the variable is empty)")
    p.add_argument("--unit", type=unit_arg, help="systemd user unit (default: the unit setting, zeptoclaw-gateway.service)")
    p.add_argument("--pid", type=int, help="gateway pid")
    p.add_argument("--pid-file", help="file holding the gateway pid")
    p.add_argument("--pattern", help="regex on the command line (default: the process_pattern setting, "
                   "zeptoclaw-gateway)")
    p.add_argument("--log-file", help="a log file to look for the skill log form in")
    p.add_argument("--probe-unauth", action="store_true",
                   help="send one token-less /metrics request to learn whether the endpoint needs a token (off by "
                   "default: on the real gateway every token-less request leaks memory)")
    p.add_argument("--no-unauth-probe", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per probe (default 3)")
    p.add_argument("--budget-wait", type=float, default=15.0, metavar="SECONDS",
                   help="seconds a probe may wait for a free slot of the request budget before it is skipped "
                        "(default 15)")
    add_budget_option(p)
    add_json_option(p, "the checks")
    p.set_defaults(handler=_run)

    b = sub.add_parser(
        "budget",
        help="show the gateway's request budget: used in the window, by which zcnb process, next free slot",
        description="Every request zcnb sends to a gateway takes a slot of one budget per host:port shared by all "
        "zcnb processes of this user (default 60 per 60 s; the real gateway crashes at its 101st request in 60 s). "
        "Shows the ledger; sends nothing.")
    b.add_argument("--url", help="gateway base URL (default http://HOST:PORT from the settings)")
    b.add_argument("--port", type=port_arg, default=None, help="gateway port (default: the port setting, 18789)")
    b.add_argument("--history", type=int, default=0, metavar="N", help="also list the last N requests in the ledger")
    add_budget_option(b)
    add_json_option(b, "the budget")
    b.set_defaults(handler=_budget)


def _run(args: argparse.Namespace) -> int:
    import sys

    from ..collect.preflight import preflight
    from ..config import NO_TOKEN_LEAK, gateway_token, load_settings, token_source
    from .json_option import emit_json, json_to_stdout

    apply_budget_option(args)
    settings = load_settings(getattr(args, "config", None), token_env=args.token_env)
    token = gateway_token(settings=settings)
    if not token:
        sent = ("only the one token-less /metrics probe asked for (--probe-unauth) is sent" if args.probe_unauth
                else "/metrics and /health are not probed without one")
        print(f"warning: no gateway token in the {token_source(settings=settings)}: {sent} ({NO_TOKEN_LEAK})",
              file=sys.stderr)
    result = preflight(settings, url=args.url, token=token, unit=args.unit, pid=args.pid,
                       pid_file=args.pid_file, pattern=args.pattern, log_file=args.log_file,
                       probe_unauth=args.probe_unauth and not args.no_unauth_probe, timeout_s=args.timeout,
                       port=args.port, budget_wait_s=args.budget_wait)
    if not json_to_stdout(args):
        print(result.format_text())
    emit_json(args, result.to_dict())
    return 0 if result.ok else 1


def _budget(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from ..collect.budget import budget_for_url
    from ..config import load_settings
    from .json_option import emit_json, json_to_stdout

    apply_budget_option(args)
    s = load_settings(getattr(args, "config", None))
    budget = budget_for_url(args.url or f"http://{s.host}:{args.port or s.port}", settings=s)
    usage = budget.usage()
    hist = budget.history()[-args.history:] if args.history > 0 else []
    rows = [{"at": datetime.fromtimestamp(e.at, UTC).isoformat(timespec="milliseconds"), "kind": e.kind,
             "pid": e.pid, "caller": e.caller} for e in hist]
    if not json_to_stdout(args):
        print(usage.describe())
        if usage.callers:
            print("in the window: " + ", ".join(f"{c} {n}" for c, n in sorted(usage.callers.items())))
        for r in rows:
            print(f"  {r['at']}  {'token' if r['kind'] == 'T' else 'no token'}  pid {r['pid']}  {r['caller']}")
    emit_json(args, {**usage.to_dict(), "history": rows})
    return 0


__all__ = ["register"]
