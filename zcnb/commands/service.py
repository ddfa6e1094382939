"""``zcnb status|restart|debug-logging|health|rollback|escalate``: service control and escalation (stages 02, 06)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..units import format_bytes
from . import add_budget_option, apply_budget_option, unit_arg
from .json_option import add_json_option, emit_json, json_to_stdout

__all__ = ["register"]


def _common(p: argparse.ArgumentParser, *, unit: bool = True) -> None:
    p.add_argument("--backend", choices=("systemd", "supervisor"), default="systemd",
                   help="systemd --user units (default) or the process supervisor (needs --supervisor-file)")
    p.add_argument("--supervisor-file", help="JSON services file of the supervisor backend")
    if unit:
        p.add_argument("--unit", type=unit_arg, help="unit / service name (default: the gateway, first in the order)")
    p.add_argument("--token-env", help="env var holding the gateway token, name only (default: the token_env "
                   "setting, GATEWAY_AUTH_TOKEN; the token_file setting is read when the variable is empty)")
    p.add_argument("--port", type=_port, default=None,
                   help="gateway port for the systemd backend's health check (default: the settings', 18789)")
    p.add_argument("--incident", help="incident folder: append the ActionResult to its actions.jsonl")
    add_budget_option(p)
    add_json_option(p)


def _port(text: str) -> int:
    """A TCP port for argparse: 1-65535, else a usage error that says so."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def _destructive(p: argparse.ArgumentParser) -> None:
    p.add_argument("--execute", action="store_true", help="apply the plan (default: dry run that prints it)")
    p.add_argument("--confirm", default="", metavar="PLAN_ID", help="the plan id printed by the dry run")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per stop/start/restart command")
    p.add_argument("--health-timeout", type=float, default=30.0, help="seconds to wait for /health after a start")


def _settings(args: argparse.Namespace) -> Any:
    from ..config import load_settings

    apply_budget_option(args)
    return load_settings(getattr(args, "config", None), token_env=getattr(args, "token_env", None))


def _manager(args: argparse.Namespace) -> Any:
    from ..service import make_manager

    if args.backend != "systemd":
        return make_manager(args.backend, supervisor_file=args.supervisor_file, port=args.port)
    from ..service import HealthCheck, SystemdUserBackend
    from ..service.systemd import default_health_checks

    s = _settings(args)
    port = args.port or s.port
    # The settings' units, the gateway unit first (TARGET.md's order); its /health check under its own name.
    units = (s.unit, *(u for u in s.units if u != s.unit))
    health = default_health_checks(s.host, port)
    if s.unit in health:
        return make_manager("systemd", units=units, host=s.host, port=port)
    health[s.unit] = HealthCheck(f"http://{s.host}:{port}/health", needs_token=True)
    return SystemdUserBackend(units=units, health=health)


def _token(args: argparse.Namespace, *, health_command: bool = False) -> Any:
    """The gateway token (``--token-env``, else the settings' token_env / token_file); warns when there is none."""
    from ..config import NO_TOKEN_LEAK, gateway_token, token_source

    s = _settings(args)
    token = gateway_token(settings=s)
    if not token:
        if getattr(args, "probe_unauth", False):
            what = "/health is probed without a token as asked (--probe-unauth)"
        else:
            what = "/health is not probed (health: not_probed)" + (
                "; pass --probe-unauth for a gateway that serves it openly" if health_command else "")
        print(f"warning: no gateway token in the {token_source(settings=s)}: {what}; {NO_TOKEN_LEAK}", file=sys.stderr)
    return token


def _print_result(res: Any, args: argparse.Namespace) -> int:
    if not json_to_stdout(args):
        mode = "DRY RUN" if res.dry_run else "EXECUTED"
        print(f"{res.action} {res.target} [{mode}] -> {res.outcome}" + (f"  (plan {res.plan_id})" if res.plan_id else ""))
        for c in res.commands:
            print(f"  {c}")
        if res.health_before or res.health_after:
            print(f"health before: {res.health_before}; after: {res.health_after}")
        if res.message:
            print(res.message)
        if res.dry_run and res.plan_id:
            print(f"to apply: add --execute --confirm {res.plan_id}")
    emit_json(args, res)
    return 0 if res.ok else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from ..exceptions import UnitNotFound
    from ..service import check_health

    m = _manager(args)
    units = [args.unit] if args.unit else list(m.units)
    rows: list[dict[str, Any]] = []
    for u in units:
        try:
            rows.append(m.status(u).to_dict())
        except UnitNotFound as exc:
            if args.unit:
                raise
            rows.append({"unit": u, "active_state": "not-found", "notes": [exc.message]})
    health = check_health(m, units[0], token=_token(args), timeout_s=2.0, once=True)
    result = {"units": rows, "health": health.to_dict() if health else None}
    if json_to_stdout(args):
        emit_json(args, result)
        return 0
    for r in rows:
        mem = f"{format_bytes(r['memory_bytes'], unit='MiB')} ({r['memory_source']})" if r.get("memory_bytes") else "-"
        lim = format_bytes(r["memory_max_bytes"], unit="MiB", digits=0) if r.get("memory_max_bytes") else "none"
        print(f"{r['unit']:32} {r.get('active_state', '?'):10} pid {r.get('pid') or '-':<8} mem {mem:28} "
              f"limit {lim:10} restarts {r.get('restarts') if r.get('restarts') is not None else '-'}")
        for n in r.get("notes") or []:
            print(f"    note: {n}")
    if health is not None:
        print(f"health of {units[0]}: {health.state} {health.detail}".rstrip())
    emit_json(args, result)  # --json OUT: after the text, like every other command
    return 0


def _cmd_restart(args: argparse.Namespace) -> int:
    from ..service import restart_service

    if args.backend == "systemd" and not args.execute:
        _warn_without_user_manager()
    order = [u.strip() for u in args.order.split(",") if u.strip()] if args.order else None
    res = restart_service(_manager(args), unit=args.unit, full=args.full, execute=args.execute, confirm=args.confirm,
                  token=_token(args), wait_s=args.wait, order=order, timeout_s=args.timeout,
                  health_timeout_s=args.health_timeout, incident=args.incident)
    return _print_result(res, args)


def _warn_without_user_manager() -> None:
    """A dry run of ``systemctl --user`` steps on a host where they cannot work says so before the plan."""
    from ..service.systemd import user_manager_reachable

    ok, why = user_manager_reachable()
    if not ok:
        print(f"warning: this plan uses `systemctl --user`, but no systemd user manager is reachable here ({why}); "
              "applying it would fail. Run zcnb as the user that owns the gateway's units (with XDG_RUNTIME_DIR set), "
              "or use --backend supervisor --supervisor-file FILE", file=sys.stderr)


def _cmd_debug(args: argparse.Namespace) -> int:
    from ..service import set_debug_logging

    if args.backend == "systemd" and not args.execute:
        _warn_without_user_manager()

    res = set_debug_logging(_manager(args), unit=args.unit, enable=args.state == "on", execute=args.execute,
                            confirm=args.confirm, token=_token(args), window_s=args.window, timeout_s=args.timeout,
                            incident=args.incident)
    return _print_result(res, args)


def _cmd_health(args: argparse.Namespace) -> int:
    from ..service.health import HealthResult, pid_alive, wait_healthy

    s = _settings(args)
    url = args.url or f"http://{s.host}:{args.port or s.port}/health"
    token = _token(args, health_command=True)
    if token is None and not args.probe_unauth:
        # Every token-less request leaks on the real gateway: no probe unless asked (--probe-unauth).
        res = HealthResult(url, "not_probed", "no gateway token is set: /health was not probed", pid=args.pid,
                           pid_alive=pid_alive(args.pid), token_sent=False, token_env=s.token_env)
    else:
        res = wait_healthy(url, token=token, timeout_s=args.timeout, pid=args.pid,
                           expect="text-ok" if args.text_ok else "json-healthy", token_env=s.token_env)
    if not json_to_stdout(args):
        print(f"{res.state}: {res.url} ({res.attempts} probes, {res.elapsed_s:.1f} s) {res.detail}".rstrip())
        if res.advice:
            print(res.advice)
    emit_json(args, res)
    return 0 if res.healthy else 1


def _cmd_rollback(args: argparse.Namespace) -> int:
    from ..ops.rollback import rollback

    s = _settings(args)
    res = rollback(_manager(args), backup=args.backup, backups_dir=args.backups_dir or s.backups_dir,
                   bin_dir=args.bin_dir, state_dir=args.state_dir, restore_state=not args.no_state,
                   execute=args.execute, confirm=args.confirm, token=_token(args), timeout_s=args.timeout,
                   health_timeout_s=args.health_timeout, incident=args.incident)
    return _print_result(res, args)


def _yes_no(v: str | None) -> bool | None:
    return None if v is None else v == "yes"


def _cmd_escalate(args: argparse.Namespace) -> int:
    from ..analysis.escalation import decide
    from ..exceptions import DataError
    from ..files import read_input

    raw = read_input(args.assessment, what="assessment file", error=DataError, hint="pass stage 01's assessment.json")
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise DataError(f"{args.assessment} is not JSON ({exc})", hint="pass stage 01's assessment.json") from None
    d = decide(data, persisted_after_restart=_yes_no(args.persisted_after_restart),
               persisted_after_restore=_yes_no(args.persisted_after_restore), unit=args.unit or _settings(args).unit)
    if args.incident:
        from ..incident import open_incident

        open_incident(args.incident).write_json("escalation", d)
    if not json_to_stdout(args):
        print(d.text())
    emit_json(args, d)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status", help="state, pid, memory and limit of the units, and gateway health",
        description="Show each unit's state, main pid, memory (and its source), memory limit and restart count, "
        "then the gateway's /health (with the token; not probed without one). Changes nothing.")
    _common(p)
    p.set_defaults(handler=_cmd_status)

    p = subparsers.add_parser(
        "restart", help="restart the gateway (or --full ordered restart); dry run by default",
        description="Runbook step 2: restart the gateway unit (or, with --full, stop every unit in reverse order, "
        "wait, start them in order), then wait for /health. Prints the exact steps and a plan id; applied only "
        "with --execute --confirm PLAN_ID. The result is appended to --incident's actions.jsonl.")
    _common(p)
    _destructive(p)
    p.add_argument("--full", action="store_true", help="stop all (reverse order), wait, start in order")
    p.add_argument("--wait", type=float, default=10.0, help="pause between stop-all and start (full restart)")
    p.add_argument("--order", help="comma-separated start order (default: gateway, webhook, shell2http, the rest)")
    p.set_defaults(handler=_cmd_restart)

    p = subparsers.add_parser(
        "debug-logging", help="LOG_LEVEL=debug drop-in on/off, then check debug lines appear",
        description="Runbook step 3: write (on) or remove (off) a systemd drop-in setting LOG_LEVEL=debug, restart "
        "the unit, and watch its log for --window seconds to check that debug lines really appear (the real "
        "gateway ignores LOG_LEVEL). Dry run unless --execute --confirm PLAN_ID.")
    p.add_argument("state", choices=("on", "off"))
    _common(p)
    _destructive(p)
    p.add_argument("--window", type=float, default=10.0, help="seconds to watch the log for debug lines")
    p.set_defaults(handler=_cmd_debug)

    p = subparsers.add_parser(
        "health", help="wait until /health is healthy; says why not (busy/down/401/rate limit)",
        description="Poll the gateway's /health with its token until healthy or --timeout, and say why not: busy "
        "(alive but not answering), down, 401, rate limited. Without a token nothing is sent (health: not_probed; "
        "every token-less request leaks on the real gateway) unless --probe-unauth. Exit 0 when healthy, else 1.")
    p.add_argument("--url", help="health URL (default http://HOST:PORT/health, host from the settings)")
    p.add_argument("--port", type=_port, default=None, help="gateway port (default: the port setting, 18789)")
    p.add_argument("--token-env", help="NAME of the env var holding the token (default: the token_env setting, "
                   "GATEWAY_AUTH_TOKEN; the token_file setting is read when the variable is empty)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--pid", type=int, help="gateway pid: tells 'busy' (alive) from 'down' (gone)")
    p.add_argument("--text-ok", action="store_true", help="healthy body is plain 'ok' (the webhook)")
    add_budget_option(p)
    p.add_argument("--probe-unauth", action="store_true",
                   help="probe even without a token (only for a gateway or webhook that serves /health openly: on "
                        "the real gateway every token-less request leaks memory)")
    add_json_option(p)
    p.set_defaults(handler=_cmd_health)

    p = subparsers.add_parser(
        "rollback", help="stop all, restore binaries + state from a dated backup, start, verify",
        description="The runbook's Rollback: stop every unit, put back the binaries (and, unless --no-state, the "
        "state) of a dated backup, start, verify /health. The replaced binaries are kept. Dry run that prints the "
        "steps and a plan id; applied only with --execute --confirm PLAN_ID.")
    _common(p, unit=False)
    _destructive(p)
    p.add_argument("--backup", required=True, help="backup folder name (YYYYmmdd-HHMMSS) or 'latest'")
    p.add_argument("--backups-dir", help="backups folder (default: <data dir>/backups)")
    p.add_argument("--bin-dir", required=True, help="folder holding the live binaries to replace")
    p.add_argument("--state-dir", help="live state folder (default: the state stage's default)")
    p.add_argument("--no-state", action="store_true", help="restore binaries only")
    p.set_defaults(handler=_cmd_rollback)

    p = subparsers.add_parser(
        "escalate", help="the runbook's escalation decision from assessment.json",
        description="The runbook's When to Escalate, decided from stage 01's assessment.json (and whether the leak "
        "persisted after a restart / a state restore): roll back now, collect a repro, schedule restarts (a "
        "systemd timer and cron line, shown, not installed), or gather more data. Changes nothing.")
    p.add_argument("--assessment", required=True, help="assessment.json from stage 01")
    p.add_argument("--persisted-after-restart", choices=("yes", "no"))
    p.add_argument("--persisted-after-restore", choices=("yes", "no"))
    p.add_argument("--unit", type=unit_arg, help="unit the restart schedule targets (default: the unit setting, "
                   "zeptoclaw-gateway.service)")
    p.add_argument("--incident", help="incident folder: write escalation.json")
    add_json_option(p)
    p.set_defaults(handler=_cmd_escalate)

