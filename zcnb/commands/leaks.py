"""``zcnb leaks``: parse leak reports, run a command under a leak checker, capture the exit-time report.

    zcnb leaks REPORT_FILE [--top N] [--json [OUT]]
    zcnb leaks run [--tool valgrind|asan|lsan|massif] [--seconds 30] [--signal INT|TERM] [--json [OUT]] -- CMD ARGS...
    zcnb leaks capture --pid PID --port PORT --log FILE [--host H] [--timeout 10] [--method auto]
                       [--execute --confirm ID] [--json [OUT]]
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from ..exceptions import ConfigError
from .json_option import add_json_option, check_json_out, emit_json, json_to_stdout

_USAGE = __doc__.split("\n\n", 1)[1] if __doc__ else ""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("leaks", help="parse leak reports; run under valgrind/ASan/massif; clean-exit capture",
                              description=_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="REPORT_FILE | run ... | capture ...")
    p.set_defaults(handler=_dispatch)


def _file_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zcnb leaks", description="Print totals and top sites of a leak report.")
    p.add_argument("report", metavar="REPORT_FILE", help="ASan/LSan, valgrind memcheck, Zig allocator text or massif.out")
    add_json_option(p, "the parsed report")
    p.add_argument("--top", type=int, default=10, help="number of sites to list (default 10)")
    return p


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zcnb leaks run", description="Run CMD under a leak checker, stop it, parse.")
    p.add_argument("--tool", choices=("valgrind", "asan", "lsan", "massif"), default="valgrind")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to let it run (default 30)")
    p.add_argument("--signal", choices=("INT", "TERM"), default="INT", help="stop signal (default INT)")
    p.add_argument("--timeout", type=float, default=30.0, help="wait after the signal before SIGKILL (default 30)")
    p.add_argument("--out-dir", help="where to keep the tool's output files: redacted 0600 copies (default: a temp folder)")
    add_json_option(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    return p


def _capture_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zcnb leaks capture",
                                description="SIGTERM + one connection + wait, then parse the exit-time leak report. "
                                            "Dry run unless --execute --confirm PLAN_ID.")
    p.add_argument("--pid", type=int, required=True, help="the gateway's pid")
    p.add_argument("--port", type=int, required=True, help="the gateway's port (one connection wakes its accept loop)")
    p.add_argument("--host", default="127.0.0.1", help="the gateway's address (default 127.0.0.1)")
    p.add_argument("--log", metavar="FILE", required=True, help="log file the gateway's stderr goes to")
    p.add_argument("--method", choices=("auto", "shutdown-socket", "fd-limit", "connect"), default="auto",
                   help="how accept() is made to fail after SIGTERM: auto (shutdown-socket via pidfd_getfd, else "
                        "fd-limit), shutdown-socket, fd-limit (skips the gateway's state save), connect (one "
                        "connection only; not enough for the real gateway)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the exit before SIGKILL")
    p.add_argument("--execute", action="store_true", help="apply the plan (default: dry run that prints it)")
    p.add_argument("--confirm", metavar="PLAN_ID", help="the plan id printed by the dry run")
    add_json_option(p)
    return p


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    try:
        args = parser.parse_args(argv)
        check_json_out(args)
        return args
    except SystemExit as exc:  # argparse exits on bad arguments: turn that into a zcnb error (code 2)
        if exc.code == 0:
            raise
        raise ConfigError(f"bad arguments for {parser.prog}", hint=f"see `{parser.prog} --help`") from None


def _dispatch(ns: argparse.Namespace) -> int:
    argv = list(ns.args)
    if not argv:
        print(_USAGE, file=sys.stderr)
        return 2
    if argv[0] == "run":
        return _cmd_run(_parse(_run_parser(), argv[1:]))
    if argv[0] == "capture":
        return _cmd_capture(_parse(_capture_parser(), argv[1:]))
    return _cmd_file(_parse(_file_parser(), argv))


def _print_report(report: Any, top: int) -> None:
    print(report.summary)
    for kind, t in report.totals.items():
        b = "?" if t["bytes"] is None else t["bytes"]
        print(f"  {kind:16} {b:>10} bytes {t['blocks']:>6} blocks {t['records']:>5} records")
    sites = report.top_sites(top)
    if sites:
        print("top allocation sites:")
        for s in sites:
            b = "?" if s.bytes is None else s.bytes
            lines = ",".join(map(str, s.lines))
            print(f"  {b:>10} B {s.records:>4}x  {s.function}  {s.file or '?'}:{lines}"
                  + (f"  ({s.attributed} attributed: trace ends in {', '.join(s.via)})" if s.attributed else ""))
        if any(s.attributed for s in sites):
            print("  (attributed: the allocator kept only frames inside the standard library; counted at the "
                  "program's call site of that function seen in this report)")
    for r in report.errors:
        print(f"  {r.kind}: {r.site} {r.note}")
    for n in report.notes:
        print(f"  note: {n}")


def _print_massif(m: Any, top: int) -> None:
    print(m.summary)
    print("growth by site (first -> last detailed snapshot):")
    for s in m.growth_sites[:top]:
        print(f"  {s.growth_bytes:>+12} B  {s.function}  {s.file or '?'}:{s.line or '?'}")
    for n in m.notes:
        print(f"  note: {n}")


def _cmd_file(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..leaks.parse import parse_leak_file

    head = b""
    try:
        with open(args.report, "rb") as fh:
            head = fh.read(200)
    except OSError:
        pass  # parse_leak_file raises the proper error
    if b"\nsnapshot=" in head or head.startswith(b"desc:"):
        from ..leaks.massif import parse_massif_file

        m = parse_massif_file(Path(args.report))
        if not json_to_stdout(args):
            _print_massif(m, args.top)
        emit_json(args, m.to_dict())
        return 0
    report = parse_leak_file(args.report)
    if not json_to_stdout(args):
        _print_report(report, args.top)
    emit_json(args, report.to_dict())
    return 0 if report.recognized else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from ..leaks.capture import run_with_leak_check

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise ConfigError("no command given", hint="zcnb leaks run --tool valgrind --seconds 30 -- ./prog ARGS")
    sig = signal.SIGINT if args.signal == "INT" else signal.SIGTERM
    res = run_with_leak_check(cmd, tool=args.tool, seconds=args.seconds, stop_signal=sig, timeout=args.timeout,
                              out_dir=args.out_dir)
    if not json_to_stdout(args):
        print(res.summary)
        print(f"output: {res.output_path}")
        if res.report is not None:
            _print_report(res.report, 10)
        if res.massif is not None:
            _print_massif(res.massif, 10)
        for n in res.notes:
            print(f"  note: {n}")
    emit_json(args, res.to_dict())
    return 1 if res.killed else 0


def _cmd_capture(args: argparse.Namespace) -> int:
    from ..leaks.capture import capture_leak_report

    res = capture_leak_report(pid=args.pid, port=args.port, host=args.host, log_source=args.log,
                              timeout_s=args.timeout, execute=args.execute, confirm=args.confirm, method=args.method)
    if json_to_stdout(args):
        pass
    elif res.action.dry_run:
        print(f"DRY RUN: plan {res.plan.plan_id}: {res.plan.action} {res.plan.target}")
        for i, step in enumerate(res.plan.steps, 1):
            print(f"  {i}. {step}")
        print(f"apply with: --execute --confirm {res.plan.plan_id}")
    else:
        print(f"{res.action.outcome}: {res.action.message}")
        if res.capture_s is not None:
            print(f"capture took {res.capture_s:.1f} s (stop method {res.method})")
        if res.report is not None:
            _print_report(res.report, 10)
    emit_json(args, res.to_dict())
    if res.action.dry_run:
        return 0
    return 0 if res.action.outcome == "ok" else 1
