"""Sub-commands of ``zcnb``: one module per area, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse


def unit_arg(text: str) -> str:
    """argparse ``type=`` for ``--unit``: a unit name, never one starting with ``-`` (exit 2 with the reason)."""
    from ..config import check_unit
    from ..exceptions import ConfigError

    try:
        return check_unit(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_arg(text: str) -> int:
    """argparse ``type=`` for ``--port``: 1-65535, else a usage error that says so."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def _budget_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of requests")
    return n


def add_budget_option(p: argparse.ArgumentParser) -> None:
    """``--request-budget N``: requests per window that zcnb may send to the gateway, all zcnb processes together."""
    p.add_argument("--request-budget", type=_budget_arg, default=None, metavar="N",
                   help="requests zcnb may send to the gateway per request_budget_window_s (60 s), shared by every "
                        "zcnb process on this host (default: the request_budget setting, 60; the real gateway "
                        "crashes at its 101st request in 60 s)")


def apply_budget_option(args: argparse.Namespace) -> None:
    """Make ``--request-budget`` the ``request_budget`` setting of this process and of what it starts (notebook
    kernels, ``zcnb`` children): through ``ZCNB_REQUEST_BUDGET``, which outranks the config file."""
    import os

    n = getattr(args, "request_budget", None)
    if n is not None:
        os.environ["ZCNB_REQUEST_BUDGET"] = str(n)
