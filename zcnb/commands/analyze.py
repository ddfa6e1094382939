"""``zcnb analyze FILE``: leak verdict table for a samples CSV, plus a PNG and optional JSON.

Exit codes: 0 no leak, 1 leak, 3 inconclusive (more data needed), 2 bad input (from zcnb.cli).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, SamplesFormatError

__all__ = ["EXIT_CODES", "load_samples", "parse_size", "register"]

EXIT_CODES = {"no_leak": 0, "leak": 1, "inconclusive": 3}

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """``2GiB``, ``512 MiB``, ``1.5G`` (decimal), ``1048576`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ConfigError(f"cannot read {text!r} as a size", hint="use e.g. 2GiB, 512MiB, 1.5GB or a byte count")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"size {text!r} must be positive", hint="give the memory limit, e.g. 2GiB")
    return value


def load_samples(path: str | Path) -> Any:
    """Read a samples CSV with zcnb.sampling.read_samples (a minimal pandas reader until it exists)."""
    p = Path(path)
    if not p.is_file():
        raise SamplesFormatError(f"samples file {p} does not exist", hint="give the CSV written by zcnb sample",
                                 path=str(p))
    try:
        from .. import sampling
    except ImportError:  # the sampling module is written concurrently; fall back until it lands
        sampling = None  # type: ignore[assignment]
    if sampling is not None and hasattr(sampling, "read_samples"):
        return sampling.read_samples(p)
    import pandas as pd

    try:
        df = pd.read_csv(p, comment="#", dtype={"event": str, "note": str, "source": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise SamplesFormatError(f"{p} is not a readable CSV ({exc})", hint="check the file", path=str(p)) from None
    if "timestamp" not in df.columns:
        raise SamplesFormatError(f"{p} has no timestamp column", hint="expected the zcnb samples CSV", path=str(p))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce", format="ISO8601")
    for col in ("event", "note", "source"):
        if col in df.columns:
            df[col] = df[col].fillna("")
    return df


def _run(args: argparse.Namespace) -> int:
    from ..analysis import assess_leak
    from ..files import write_json
    from ..plotting import plot_memory, save_figure

    limit = parse_size(args.limit) if args.limit else None
    df = load_samples(args.file)
    a = assess_leak(df, column=args.column, limit_bytes=limit, limit_source="--limit" if limit else None)
    width = max(len(k) for k, _ in a.rows())
    for key, value in a.rows():
        print(f"{key:<{width}}  {value}")
    png = Path(args.png) if args.png else Path(str(args.file) + ".png")
    if not args.no_png:
        save_figure(plot_memory(df, a), png)
        print(f"{'figure':<{width}}  {png}")
    if args.json:
        write_json(args.json, a.to_dict())
        print(f"{'json':<{width}}  {args.json}")
    return EXIT_CODES[a.verdict]


def register(subparsers: Any) -> None:
    """Add ``zcnb analyze``."""
    p = subparsers.add_parser(
        "analyze", help="leak verdict for a samples CSV (exit 0 no leak, 1 leak, 3 inconclusive)",
        description="Assess a memory samples CSV: verdict, growth, time to limit, advice; writes a PNG. "
                    "Exit codes: 0 no_leak, 1 leak, 3 inconclusive, 2 bad input.")
    p.add_argument("file", help="samples CSV (zcnb sample output, any timestamp+rss_bytes CSV, or the runbook loop)")
    p.add_argument("--column", help="memory column to analyse (default: first of rss, metrics_rss, cgroup, pss, uss)")
    p.add_argument("--limit", help="memory limit, e.g. 2GiB or 512MiB (default: current + available memory)")
    p.add_argument("--png", help="figure path (default: FILE.png)")
    p.add_argument("--no-png", action="store_true", help="do not write a figure")
    p.add_argument("--json", help="also write the assessment as JSON here")
    p.set_defaults(handler=_run)
