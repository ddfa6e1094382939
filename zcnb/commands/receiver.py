"""``zcnb receiver``: an Alertmanager webhook that runs the non-destructive stages on a leak alert."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    from ..monitor.rules import LEAK_RUNBOOK_LABEL
    from .serving import GATEWAY_HELP

    v = sub.add_parser("receiver", help="Alertmanager webhook: run stages 01, 03 and the report on a leak alert",
                       description="Receive Alertmanager webhooks; on a firing leak alert collect the gateway's "
                                   "history from Prometheus and its log, then run the non-destructive stages (01 "
                                   "confirm, 03 diagnose, 05 report) headless into a dated incident folder. Never "
                                   "restarts, restores or rolls back.")
    v.add_argument("--listen", default="127.0.0.1:9841", help="address:port (default %(default)s)")
    v.add_argument("--token-env", default="ZCNB_RECEIVER_TOKEN",
                   help="env var holding the bearer token (default %(default)s)")
    v.add_argument("--token-file", default=None, help="0600 file holding the bearer token")
    v.add_argument("--no-auth", action="store_true", help="accept webhooks without a token (not recommended)")
    v.add_argument("--status-without-token", action="store_true",
                   help="serve the status page and reports without a token")
    v.add_argument("--incidents-dir", default=None, help="parent of the incident folders (default: the settings')")
    v.add_argument("--prometheus-url", default=None,
                   help="Prometheus to read history from (default: the server in the alert's generatorURL)")
    v.add_argument("--history", default="1h", help="how much history to assess (default 1h)")
    v.add_argument("--step", default="15s", help="resolution of that history (default 15s: the scrape interval)")
    v.add_argument("--gateway", action="append", default=[], metavar="SPEC",
                   help=GATEWAY_HELP + " (needed for log files and journal files only)")
    v.add_argument("--match", default=f"runbook={LEAK_RUNBOOK_LABEL}",
                   help="LABEL=VALUE of the alerts to act on (default %(default)s)")
    v.add_argument("--max-queue", type=int, default=8, help="runs waiting at most (default 8; more: 503)")
    v.add_argument("--workers", type=int, default=1, help="runs at the same time, each for another gateway (default 1)")
    v.add_argument("--rerun-after", default="6h", help="a fingerprint runs again only this long after its last run")
    v.add_argument("--retry-after", default="10m", help="... or this long after its last run failed")
    v.add_argument("--stage-timeout", type=float, default=600.0, help="seconds per stage (default 600)")
    v.add_argument("--external-url", default=None, help="URL the status page and log lines use for report links")
    v.set_defaults(handler=_receiver)


def _receiver(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..alerting.incidentrun import RunConfig, refresh_report, run_alert
    from ..alerting.receiver import Receiver, read_receiver_token
    from ..alerting.runs import RunQueue
    from ..config import load_settings
    from ..exceptions import ConfigError
    from ..monitor.targets import parse_target
    from .serving import parse_listen, wait_for_signal, warn_if_open

    token = read_receiver_token(token_env=args.token_env, token_file=args.token_file)
    if token is None and not args.no_auth:
        raise ConfigError(f"no token for the webhook: ${args.token_env} is empty and no --token-file was given",
                          hint="openssl rand -hex 32 > FILE; chmod 600 FILE; give --token-file FILE (Alertmanager: "
                               "http_config.authorization.credentials_file), or --no-auth to accept anyone")
    label, value = _match(args)
    host, port = parse_listen(args.listen)
    base = Path(args.incidents_dir).expanduser() if args.incidents_dir else load_settings().incidents_path
    cfg = RunConfig(incidents_dir=base, prometheus_url=args.prometheus_url,
                    history_s=_seconds(args.history, "--history"), step=args.step,
                    targets=tuple(parse_target(s) for s in args.gateway), stage_timeout_s=args.stage_timeout)
    if cfg.prometheus_url:
        from ..collect.prometheus import check_url

        check_url(cfg.prometheus_url)
    queue = RunQueue(base, lambda folder, alert: run_alert(folder, alert, cfg),
                     lambda folder: refresh_report(folder, cfg), max_queue=args.max_queue, workers=args.workers,
                     rerun_after_s=_seconds(args.rerun_after, "--rerun-after", zero_ok=True),
                     retry_after_s=_seconds(args.retry_after, "--retry-after", zero_ok=True),
                     log=lambda line: print(line, flush=True))
    rx = Receiver(queue, token=token, host=host, port=port, match=(label, value),
                  status_without_token=args.status_without_token, external_url=args.external_url,
                  log=lambda line: print(line, flush=True))
    if token is None:
        print("zcnb: warning: --no-auth: anyone who can reach the receiver can start runs", file=sys.stderr)
    warn_if_open(host)
    with rx:
        print(f"zcnb receiver: incidents in {base}; status {rx.url}/status", flush=True)
        print(f"zcnb receiver: listening on {rx.url}/alerts", flush=True)
        wait_for_signal()
    return 0


def _match(args: argparse.Namespace) -> tuple[str, str]:
    """``--match`` as (label, value); also checks ``--max-queue`` and ``--workers``."""
    from ..exceptions import ConfigError

    label, sep, value = args.match.partition("=")
    if not sep or not label or not value:
        raise ConfigError(f"--match {args.match!r} is not LABEL=VALUE", hint="e.g. runbook=memory-leak")
    if args.max_queue < 1 or args.workers < 1:
        raise ConfigError("--max-queue and --workers must be at least 1", hint="e.g. --max-queue 8 --workers 1")
    return label, value


def _seconds(text: str, flag: str, *, zero_ok: bool = False) -> float:
    """A duration option in seconds (``zcnb.units.parse_duration``); the error names the option."""
    from ..exceptions import ConfigError
    from ..units import parse_duration

    if zero_ok and text.strip().rstrip("mshdwy") == "0":
        return 0.0  # e.g. --rerun-after 0s: every new firing may run again once the last run ended
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc.message}", hint=exc.hint) from None
