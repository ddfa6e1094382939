"""Byte sizes, durations and points in time: one parser and one formatter of each for every zcnb module.

``parse_size`` follows systemd's ``MemoryMax=``: a bare prefix is 1024-based (``2G`` = 2 GiB), ``GiB`` is
1024-based too, and only an explicit ``GB`` (prefix + ``B``, no ``i``) is decimal (10**9).
``parse_duration`` reads Prometheus-style durations (``15s``, ``1h30m``); ``to_epoch`` reads a point in time
(ISO 8601, epoch seconds, or a duration back from now like ``2h``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from .exceptions import ConfigError

__all__ = ["BYTES_MAX", "BYTE_UNITS", "EPOCH_MAX", "EPOCH_MIN", "epoch_seconds", "format_bytes", "format_duration", "format_time",
           "parse_duration",
           "parse_size", "plausible_epoch", "time_range_text", "to_epoch"]

#: Times zcnb takes from data: 1970-01-01 .. 2200-01-01 UTC. Anything outside is a broken clock or a typo (and
#: beyond pandas' nanosecond range, 1677-2262, computing with it would overflow).
EPOCH_MIN, EPOCH_MAX = 0.0, 7_258_118_400.0
#: The largest memory size zcnb accepts as a reading: 2**53 bytes (8 PiB), far above any machine and still exact
#: in float64; a bigger value (1e300) is a corrupt cell, not a measurement.
BYTES_MAX = float(2**53)


def plausible_epoch(seconds: float) -> bool:
    """True for a finite time between :data:`EPOCH_MIN` and :data:`EPOCH_MAX` (epoch seconds)."""
    return math.isfinite(seconds) and EPOCH_MIN <= seconds < EPOCH_MAX


def epoch_seconds(ts: Any) -> Any:
    """Seconds since 1970 of a tz-aware pandas datetime Series or Index, in its own unit (no nanosecond overflow
    for year 9999); NaT gives NaN."""
    import pandas as pd

    unit = getattr(ts.dtype, "unit", "ns")
    return (ts - pd.Timestamp(0, tz="UTC").as_unit(unit)) / pd.Timedelta(1, "s")


def time_range_text() -> str:
    """The accepted time range, for hints."""
    return "times must lie between 1970-01-01 and 2200-01-01 (UTC); check the clock of the machine that wrote them"

BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

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


def format_bytes(value: float | None, *, unit: str | None = None, digits: int = 1, signed: bool = False) -> str:
    """``12 B``, ``1.5 KiB``, ``-3.0 GiB`` (1024-based); ``-`` for None or NaN.

    The unit is the largest that keeps the number at or above 1 (up to TiB), or ``unit`` (one of
    :data:`BYTE_UNITS`) for columns and rates that must compare (``+12.34 MiB/h``). ``digits`` after the
    point (whole bytes have none); ``signed`` puts ``+`` before a positive number (growth).
    """
    if value is None or not math.isfinite(value):
        return "-"
    if unit is None:
        power = 0
        size = abs(float(value))
        while size >= 1024 and power < len(BYTE_UNITS) - 1:
            size /= 1024
            power += 1
    elif unit in BYTE_UNITS:
        power = BYTE_UNITS.index(unit)
    else:
        raise ConfigError(f"unknown byte unit {unit!r}", hint=f"one of {', '.join(BYTE_UNITS)}")
    spec = f"{'+' if signed else ''}.{0 if power == 0 else digits}f"
    return f"{float(value) / 1024**power:{spec}} {BYTE_UNITS[power]}"


def format_duration(seconds: float | None) -> str:
    """``40 ms`` (under 0.1 s), ``0.6 s`` (under 10 s), ``45 s``, ``12 min`` (under 2 h), ``3.2 h`` (under 2 d),
    ``4.5 d``; ``-`` for None, ``never`` for inf."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if math.isinf(seconds):
        return "never"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s == 0:
        return "0 s"
    if s < 0.1:
        return f"{sign}{max(s * 1000, 1):.0f} ms" if s >= 0.0005 else f"{sign}< 1 ms"
    if s < 9.95:
        return f"{sign}{s:.1f} s"
    if s < 120:
        return f"{sign}{s:.0f} s"
    if s < 2 * 3600:
        return f"{sign}{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} d"


def format_time(value: datetime | str | float | None) -> str:
    """A point in time as ISO 8601 to the second in UTC (truncated): ``2026-12-04 17:44:48 UTC``.

    Takes a datetime (naive = UTC; a pandas Timestamp is one), ISO 8601 text or epoch seconds; ``-`` for None
    and for text that is not an ISO time.
    """
    if value is None or value == "" or isinstance(value, bool):
        return "-"
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return "-"
        value = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    epoch = to_epoch(value)
    if epoch is None or not math.isfinite(epoch):
        return "-"
    return datetime.fromtimestamp(math.floor(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def parse_duration(text: str | float) -> float:
    """Seconds in a Prometheus-style duration (``15s``, ``1h30m``, ``500ms``, ``2d``) or a number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip()
        try:
            seconds = float(s)
        except ValueError:
            parts = _DURATION_RE.findall(s)
            if not parts or "".join(n + u for n, u in parts) != s:
                raise ConfigError(f"cannot read duration {text!r}",
                                  hint="use a number of seconds or units ms/s/m/h/d/w/y, e.g. 15s, 1h30m") from None
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive", hint="e.g. 15s or 1h")
    return seconds


def to_epoch(value: datetime | str | float | None, *, now: datetime | None = None) -> float | None:
    """Epoch seconds from a datetime (naive = UTC; a pandas Timestamp is one), ISO text, a number (``@`` allowed,
    as journalctl writes it), or a duration back from now (``2h``, ``90min``); None for None or ``""``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConfigError(f"time {value!r} is not a time", hint="give an ISO time, epoch seconds or e.g. '2h'")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ConfigError(f"time {value!r} is not a number of seconds", hint="give an ISO time, epoch seconds or e.g. '2h'")
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    text = str(value).strip()
    text = text.removeprefix("@")
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return to_epoch(number)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        pass
    import pandas as pd

    try:
        delta = pd.Timedelta(text.lstrip("-"))
    except (ValueError, TypeError):
        raise ConfigError(f"cannot read time {value!r}",
                          hint="give ISO 8601 (2026-11-28T10:00:00Z), epoch seconds, or a duration back from now like 2h") from None
    return ((now or datetime.now(UTC)) - timedelta(seconds=delta.total_seconds())).timestamp()
