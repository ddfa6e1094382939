"""The ``zcnb`` command: parse arguments, call the package, print, exit code.

Each area registers its sub-commands from a module in :mod:`zcnb.commands`
(``register(subparsers)``; handlers take the parsed namespace and return an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .exceptions import ZcnbError

__all__ = ["main"]

# Order = order in ``zcnb --help``.
COMMAND_MODULES = (
    "demo",
    "gateway",
    "preflight",
    "sample",
    "analyze",
    "fleet",
    "exporter",
    "alert_rules",
    "receiver",
    "logs",
    "leaks",
    "service",
    "state",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zcnb",
        description="Executable runbook for ZeptoClaw gateway memory leaks.",
        epilog="Destructive actions are dry runs unless given --execute and the --confirm id of the plan they print.",
    )
    parser.add_argument("--version", action="version", version=f"zcnb {__version__}")
    parser.add_argument("--config", help="TOML settings file (default: $ZCNB_CONFIG or ~/.config/zcnb/config.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"zcnb.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"zcnb.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _tolerant_output() -> None:
    """File names that are not UTF-8 (surrogate escapes) are printed as ``\\udcXX`` instead of ending the run
    with a UnicodeEncodeError on a strict UTF-8 terminal."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # e.g. a stream that is already closed
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zcnb`` console script; returns the exit code."""
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        # Every command loads its settings through load_settings(), which reads $ZCNB_CONFIG.
        os.environ["ZCNB_CONFIG"] = args.config
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        from .commands.json_option import check_json_out

        check_json_out(args)
        return int(handler(args) or 0)
    except ZcnbError as exc:
        print(f"zcnb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zcnb: interrupted", file=sys.stderr)
        return 130
