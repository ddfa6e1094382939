"""``zcnb backup list|verify|create`` and ``zcnb restore [resume|undo]`` (stage 04)."""

from __future__ import annotations

import argparse
from typing import Any

from . import unit_arg
from .json_option import add_json_option, emit_json, json_to_stdout


def _common(p: argparse.ArgumentParser, *, state: bool = True) -> None:
    p.add_argument("--backups-dir", help="backups folder (default: <data dir>/backups, ~/.local/share/zeptoclaw/backups)")
    if state:
        p.add_argument("--state-dir", help="live state folder (default: <data dir>/state, the runbook layout, e.g. "
                       "~/.local/share/zeptoclaw/state; the real gateway keeps its state in ~/.zeptoclaw: pass "
                       "--state-dir ~/.zeptoclaw for it)")
    add_json_option(p)


def _action_opts(p: argparse.ArgumentParser, *, service: bool = True) -> None:
    p.add_argument("--execute", action="store_true", help="apply the plan (default: dry run that prints it)")
    p.add_argument("--confirm", metavar="PLAN_ID", help="the plan id printed by the dry run")
    if service:
        p.add_argument("--stop-gateway", action="store_true", help="stop the gateway through the service manager if it runs (started again after)")
        p.add_argument("--backend", choices=("systemd", "supervisor", "none"), default="systemd",
                       help="how to check/stop the gateway (default systemd user units; none: no service manager, "
                       "zcnb refuses while a process matching --process-pattern runs and you stop it yourself)")
        p.add_argument("--process-pattern", help="regex for the gateway's command line, checked when there is no "
                       "service manager (default: the settings' process_pattern, zeptoclaw-gateway)")
        p.add_argument("--supervisor-file", help="services JSON for --backend supervisor")
        p.add_argument("--unit", type=unit_arg, help="the gateway's unit name (default: the unit setting, zeptoclaw-gateway.service)")


def register(sub: Any) -> None:
    b = sub.add_parser("backup", help="list, verify or create state backups",
                       description="Backups in the runbook layout (backups/<YYYYmmdd-HHMMSS>/{state/,commit.txt,binaries}) "
                       "and plain ~/.zeptoclaw copies.")
    bsub = b.add_subparsers(dest="backup_cmd", metavar="ACTION")
    p = bsub.add_parser("list", help="backups newest first")
    _common(p, state=False)
    p.set_defaults(handler=_list)
    p = bsub.add_parser("verify", help="check a backup (JSON parses, entries, manifest); exit 1 if invalid")
    p.add_argument("name", help="backup folder name or 'latest'")
    _common(p, state=False)
    p.set_defaults(handler=_verify)
    p = bsub.add_parser("create", help="make a dated backup (state + binaries + commit.txt + MANIFEST.sha256)")
    _common(p)
    p.add_argument("--binary", action="append", default=[], help="gateway binary to include (repeatable)")
    p.add_argument("--commit", help="the gateway's git commit for commit.txt")
    _action_opts(p, service=False)
    p.set_defaults(handler=_create)
    b.set_defaults(handler=lambda a: (b.print_help(), 2)[1])

    r = sub.add_parser("restore", help="restore the state from a backup (dry run unless --execute --confirm)",
                       description="Stage, verify, swap; the current state is moved to backups/corrupt-<ts>/state, never deleted.")
    r.add_argument("--backup", help="backup folder name or 'latest' (default)")
    r.add_argument("--quarantine-dir", help="where the current state goes (default backups/corrupt-<ts>)")
    _common(r)
    _action_opts(r)
    r.set_defaults(handler=_restore)
    rsub = r.add_subparsers(dest="restore_cmd", metavar="ACTION")
    p = rsub.add_parser("resume", help="finish an interrupted restore")
    _common(p)
    _action_opts(p)
    p.set_defaults(handler=_resume)
    p = rsub.add_parser("undo", help="put the quarantined state back (keeping what it replaces)")
    p.add_argument("--quarantine-dir", help="quarantine folder to put back (default: from the last restore's journal)")
    _common(p)
    _action_opts(p)
    p.set_defaults(handler=_undo)
    for sp in rsub.choices.values():
        _keep_parent_values(sp)


def _keep_parent_values(p: argparse.ArgumentParser) -> None:
    """Options of ``restore`` given before ``resume``/``undo`` stay in force: the sub-command's own copies of
    the options do not put their defaults over them (argparse would, silently)."""
    for action in p._actions:
        if action.option_strings and action.dest != "help":
            action.default = argparse.SUPPRESS


def _not_for(args: argparse.Namespace, action: str, names: tuple[str, ...]) -> None:
    """Refuse options that ``restore ACTION`` does not use, rather than ignore them."""
    given = [n for n in names if getattr(args, n.lstrip("-").replace("-", "_"), None) not in (None, False)]
    if given:
        from ..exceptions import ConfigError

        raise ConfigError(f"{', '.join(given)} does not apply to `zcnb restore {action}`",
                          hint="resume finishes the recorded restore with its own backup and options; undo takes "
                               "--quarantine-dir, --state-dir, --stop-gateway and the service options")


def _settings(args: argparse.Namespace) -> Any:
    from ..config import load_settings

    return load_settings(getattr(args, "config", None))


def _backups_dir(args: argparse.Namespace) -> Any:
    return args.backups_dir or _settings(args).backups_dir


def _state_dir(args: argparse.Namespace) -> Any:
    if args.state_dir:
        return args.state_dir
    s = _settings(args)
    if not s.state_dir.exists() and (s.zeptoclaw_home / "config.json").exists():
        from ..exceptions import ConfigError

        raise ConfigError(f"no --state-dir given and the runbook layout's {s.state_dir} does not exist, but the real "
                          f"gateway's state is in {s.zeptoclaw_home}",
                          hint=f"pass --state-dir {s.zeptoclaw_home} (the real layout) or the folder you mean")
    return s.state_dir


def _service(args: argparse.Namespace) -> Any:
    if args.backend == "none":
        return None
    from ..service import make_manager

    s = _settings(args)
    return make_manager(args.backend, supervisor_file=args.supervisor_file, host=s.host, port=s.port)


def _print_result(res: Any, args: argparse.Namespace) -> int:
    if not json_to_stdout(args):
        mode = "DRY RUN" if res.dry_run else "EXECUTED"
        print(f"{res.action} {res.target} ({mode}): {res.outcome}")
        for i, c in enumerate(res.commands, 1):
            print(f"  {i}. {c}")
        if res.plan_id:
            print(f"plan id: {res.plan_id}")
        print(res.message)
    emit_json(args, res)
    return 0 if res.ok else 1


def _list(args: argparse.Namespace) -> int:
    from ..state import list_backups

    backups = list_backups(_backups_dir(args))
    if json_to_stdout(args):
        pass
    elif not backups:
        print("no backups found")
    else:
        print(backups.to_frame().to_string(index=False))
    emit_json(args, backups)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..state import resolve_backup, verify_backup

    res = verify_backup(resolve_backup(args.name, backups_dir=_backups_dir(args)).path)
    if not json_to_stdout(args):
        print(f"{res.path} ({res.layout}): {'OK' if res.ok else 'INVALID'}; {res.file_count} files, "
              f"{res.json_checked} JSON parsed, manifest: {res.manifest or 'none'} ({res.manifest_checked} matched)")
        for line in res.problems:
            print(f"  problem: {line}")
        for line in res.warnings:
            print(f"  warning: {line}")
    emit_json(args, res)
    return 0 if res.ok else 1


def _create(args: argparse.Namespace) -> int:
    from ..state import make_backup

    res = make_backup(_state_dir(args), backups_dir=_backups_dir(args), binaries=args.binary, commit=args.commit,
                      execute=args.execute, confirm=args.confirm)
    return _print_result(res, args)


def _restore(args: argparse.Namespace) -> int:
    from ..state import restore_state

    res = restore_state(args.backup or "latest", state_dir=_state_dir(args), backups_dir=_backups_dir(args),
                        quarantine_dir=args.quarantine_dir, service=_service(args), unit=args.unit or _settings(args).unit,
                        stop_gateway=args.stop_gateway, execute=args.execute, confirm=args.confirm,
                        process_pattern=args.process_pattern)
    return _print_result(res, args)


def _resume(args: argparse.Namespace) -> int:
    from ..state import resume_restore

    _not_for(args, "resume", ("--backup", "--quarantine-dir", "--stop-gateway", "--unit", "--process-pattern"))
    res = resume_restore(state_dir=_state_dir(args), service=_service(args), execute=args.execute, confirm=args.confirm)
    return _print_result(res, args)


def _undo(args: argparse.Namespace) -> int:
    from ..state import undo_restore

    _not_for(args, "undo", ("--backup",))
    res = undo_restore(state_dir=_state_dir(args), quarantine_dir=args.quarantine_dir, service=_service(args),
                       unit=args.unit or _settings(args).unit, stop_gateway=args.stop_gateway, execute=args.execute, confirm=args.confirm,
                       process_pattern=args.process_pattern)
    return _print_result(res, args)
