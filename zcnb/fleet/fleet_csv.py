"""Fleet samples as CSV(.gz): ``instance,timestamp,<memory column>`` with epoch-second timestamps.

A compact exchange format for fleet history (e.g. exported from Prometheus once and
analysed offline, or the benchmark's recorded fixture); read back as the samples layout
with an ``instance`` column, like :func:`zcnb.collect.prometheus.query_range` returns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..files import open_input
from ..units import BYTES_MAX, EPOCH_MAX, EPOCH_MIN, epoch_seconds, time_range_text

__all__ = ["read_fleet_csv", "write_fleet_csv"]

_MEMORY_COLUMNS = ("rss_bytes", "metrics_rss_bytes", "cgroup_bytes", "pss_bytes", "uss_bytes")


def write_fleet_csv(df: pd.DataFrame, path: str | os.PathLike[str], *, column: str | None = None) -> Path:
    """Save ``instance,timestamp,<column>`` (epoch seconds) as CSV, gzip-compressed when the name ends in .gz."""
    from ..analysis import pick_column

    col = pick_column(df, column)
    out = pd.DataFrame({"instance": df["instance"].to_numpy(),
                        "timestamp": ((df["timestamp"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(),
                        col: df[col].to_numpy()})
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # gzip level 1: ~3x faster to write than the default 9, barely bigger for numbers.
    compression: Any = {"method": "gzip", "compresslevel": 1} if p.name.endswith(".gz") else None
    out.to_csv(p, index=False, float_format="%.15g", compression=compression)
    os.chmod(p, 0o600)
    return p


def read_fleet_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a fleet CSV(.gz) (``instance``, ``timestamp`` as epoch seconds or ISO, one memory column) as samples."""
    from ..collect.prometheus import samples_frame

    p = Path(path)
    try:
        with open_input(p, what="fleet file", error=DataError) as fh:
            raw = pd.read_csv(fh, comment="#", dtype={"instance": str}, compression="gzip" if p.suffix == ".gz" else None)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read fleet file {p}: {exc}", hint="expect CSV with instance,timestamp,rss_bytes",
                        path=str(p)) from None
    cols = [c for c in _MEMORY_COLUMNS if c in raw.columns]
    if "instance" not in raw.columns or "timestamp" not in raw.columns or not cols:
        raise DataError(f"fleet file {p} lacks columns instance, timestamp and a memory column",
                        hint=f"header must be e.g. instance,timestamp,rss_bytes (found {', '.join(map(str, raw.columns))})",
                        path=str(p))
    ts = raw["timestamp"]
    if not pd.api.types.is_numeric_dtype(ts):
        try:
            ts = epoch_seconds(pd.to_datetime(ts, utc=True, format="ISO8601"))
        except (ValueError, TypeError, OverflowError, NotImplementedError, pd.errors.OutOfBoundsDatetime):
            raise DataError(f"fleet file {p} has unreadable timestamps", hint="use epoch seconds or ISO 8601; "
                            + time_range_text(), path=str(p)) from None
    epoch = np.asarray(ts, dtype=np.float64)
    outside = ~((epoch >= EPOCH_MIN) & (epoch < EPOCH_MAX))
    if outside.any():
        raise DataError(f"fleet file {p} has {int(outside.sum())} timestamp(s) out of range (NaN, negative, or beyond "
                        f"2200), e.g. {raw['timestamp'][outside].head(3).tolist()}", hint=time_range_text(), path=str(p))
    values = pd.to_numeric(raw[cols[0]], errors="coerce")
    huge = (values > BYTES_MAX) | (values < 0) | np.isinf(values)
    if huge.any():
        raise DataError(f"fleet file {p} has {int(huge.sum())} {cols[0]} value(s) that are not memory sizes (negative, "
                        f"infinite or above 8 PiB), e.g. {raw[cols[0]][huge].head(3).tolist()}",
                        hint="memory cells are byte counts; fix or remove those rows", path=str(p))
    return samples_frame(raw["instance"].to_numpy(), epoch, values.to_numpy(),
                         value_column=cols[0], source="prometheus")
