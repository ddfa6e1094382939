"""Byte sizes and durations: one parser and one formatter for every zcnb module.

``parse_size`` follows systemd's ``MemoryMax=``: a bare prefix is 1024-based (``2G`` = 2 GiB), ``GiB`` is
1024-based too, and only an explicit ``GB`` (prefix + ``B``, no ``i``) is decimal (10**9).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from .exceptions import ConfigError

__all__ = ["format_bytes", "format_duration", "parse_size"]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)(B?)\s*$", re.IGNORECASE)
_HINT = "use a byte count or a unit: 2GiB, 512MiB, 2G (= 2GiB, as systemd MemoryMax), 2GB (= 2*10^9)"


def parse_size(text: str | float) -> int:
    """Bytes in ``2GiB``, ``512 MiB``, ``2G`` (1024-based), ``2GB`` (1000-based), ``4096`` or a number."""
    if isinstance(text, bool):
        raise ConfigError(f"cannot read {text!r} as a size", hint=_HINT)
    if isinstance(text, (int, float)):
        if not math.isfinite(text):
            raise ConfigError(f"size {text!r} must be a finite number of bytes", hint=_HINT)
        value = Fraction(text)
    else:
        m = _SIZE_RE.match(str(text))
        if not m:
            raise ConfigError(f"cannot read {text!r} as a size", hint=_HINT)
        number, prefix, binary, b = m.groups()
        if binary and not prefix:  # "2iB" is a typo, not bytes
            raise ConfigError(f"cannot read {text!r} as a size", hint=_HINT)
        power = "KMGTP".find(prefix.upper()) + 1 if prefix else 0
        base = 1000 if (prefix and b and not binary) else 1024
        value = Fraction(number) * base**power  # exact: "3P" stays a whole number past float precision
    if value < 1:
        raise ConfigError(f"size {text!r} must be at least one byte", hint="give the memory limit, e.g. 2GiB")
    return round(value)


def format_bytes(value: float | None) -> str:
    """``12 B``, ``1.5 KiB``, ``-3.0 GiB`` (1024-based); ``-`` for None or NaN."""
    if value is None or not math.isfinite(value):
        return "-"
    sign = "-" if value < 0 else ""
    v = abs(float(value))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024:
            return f"{sign}{v:.0f} {unit}" if unit == "B" else f"{sign}{v:.1f} {unit}"
        v /= 1024
    return f"{sign}{v:.1f} TiB"


def format_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min`` (under 2 h), ``3.2 h`` (under 2 d), ``4.5 d``; ``-`` for None, ``never`` for inf."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "never"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 120:
        return f"{sign}{s:.0f} s"
    if s < 2 * 3600:
        return f"{sign}{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} d"
