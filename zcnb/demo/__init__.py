"""The simulated ZeptoClaw gateway: a real HTTP server process with leak modes.

``SimulatedGateway`` starts and controls ``python -m zcnb.demo.server``;
``TrafficGenerator`` sends skill/tool/probe traffic to it. Names are imported
lazily so that the server process (which imports this package) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._leaks import LEAK_KINDS, LEAK_MODES

__all__ = ["LEAK_KINDS", "LEAK_MODES", "PROFILES", "SimulatedGateway", "StopResult", "TrafficGenerator"]

PROFILES = ("real", "runbook")

if TYPE_CHECKING:
    from .gateway import SimulatedGateway, StopResult
    from .traffic import TrafficGenerator

_LAZY = {"SimulatedGateway": "gateway", "StopResult": "gateway", "TrafficGenerator": "traffic"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
