"""The ``--json [OUT]`` option every zcnb command shares.

- ``--json`` (or ``--json -``): the result as JSON on standard output *instead of* the text; notes about files
  written go to standard error, so the output pipes straight into ``jq``.
- ``--json OUT``: the text as usual, and the result also written to ``OUT`` (0600, atomic).

``OUT`` is never allowed to replace a file that is not JSON (a mistyped ``--json samples.csv`` would otherwise
overwrite the data the command reads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError

__all__ = ["add_json_option", "emit_json", "info", "json_to_stdout"]

STDOUT = "-"


def add_json_option(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """Add ``--json [OUT]`` to ``p``."""
    p.add_argument("--json", nargs="?", const=STDOUT, default=None, metavar="OUT",
                   help=f"{what} as JSON: bare --json (or --json -) prints it instead of the text; "
                        "--json OUT also writes it to the file OUT (0600)")


def json_to_stdout(args: argparse.Namespace) -> bool:
    """True when the JSON replaces the text on standard output."""
    return getattr(args, "json", None) == STDOUT


def info(args: argparse.Namespace, line: str) -> None:
    """A note for the reader (e.g. a file written): stdout normally, stderr when stdout carries the JSON."""
    print(line, file=sys.stderr if json_to_stdout(args) else sys.stdout)


def _check_out(path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"--json {path}: is a folder", hint="give a file name, e.g. result.json, or - for stdout")
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError as exc:
        raise ConfigError(f"--json {path}: cannot read the existing file ({exc.strerror})",
                          hint="choose another file name") from None
    if head and head[:1] not in (b"{", b"["):
        raise ConfigError(f"--json {path}: the file exists and is not JSON; zcnb does not replace it",
                          hint="give a new file name (e.g. result.json), or - to print the JSON")


def emit_json(args: argparse.Namespace, obj: Any) -> None:
    """Print ``obj`` as JSON (bare ``--json``) or write it to ``--json OUT``; nothing without ``--json``."""
    dest = getattr(args, "json", None)
    if not dest:
        return
    from ..files import dumps_json, write_json

    if dest == STDOUT:
        sys.stdout.write(dumps_json(obj) + "\n")
        sys.stdout.flush()
        return
    path = Path(dest).expanduser()
    _check_out(path)
    write_json(path, obj)
    info(args, f"wrote {path}")


def check_json_out(args: argparse.Namespace) -> None:
    """Refuse a bad ``--json OUT`` before the command does any work."""
    dest = getattr(args, "json", None)
    if dest and dest != STDOUT:
        _check_out(Path(dest).expanduser())
