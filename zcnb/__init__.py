"""zcnb: the ZeptoClaw memory-leak runbook as executable notebooks.

Import what you need from the modules (``zcnb.collect.sampling``, ``zcnb.analysis``, ...);
this package root stays small so that ``import zcnb`` is cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
