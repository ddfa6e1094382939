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
