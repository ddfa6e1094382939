"""``zcnb analyze FILE``: leak verdict table for a samples CSV, plus a PNG and optional JSON.

Exit codes: 0 no leak, 1 leak, 3 inconclusive (more data needed), 2 bad input (from zcnb.cli).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import SamplesFormatError
from ..units import parse_size

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXIT_CODES", "column_name", "load_samples", "parse_size", "register"]

EXIT_CODES = {"no_leak": 0, "leak": 1, "inconclusive": 3}


def load_samples(path: str | Path, *, compact: bool = False) -> pd.DataFrame:
    """Read a samples CSV (any format zcnb.collect.samples_csv.read_samples accepts) into the contract's DataFrame.

    ``compact=True`` leaves out memory columns without a value (bounded memory on huge files)."""
    from ..collect.samples_csv import ANALYZE_MAX_ROWS, read_samples

    p = Path(path)
    if p.is_dir():  # a folder gets its own hint (the CSV inside it); everything else: read_samples says it
        raise SamplesFormatError(f"{p} is a directory, not a samples file",
                                 hint=f"give the CSV inside it, e.g. {p / 'samples.csv'} (written by zcnb sample)",
                                 path=str(p))
    return read_samples(p, compact=compact, max_rows=ANALYZE_MAX_ROWS if compact else None)


def column_name(name: str | None) -> str | None:
    """``--column``: the short names of the help (rss, metrics_rss, cgroup, pss, uss, ...) or full column names."""
    if not name:
        return None
    name = name.strip()
    return name if name.endswith("_bytes") else f"{name}_bytes"


def _run(args: argparse.Namespace) -> int:
    from ..analysis import assess_leak
    from ..viz.memory import plot_memory, save_figure
    from .json_option import emit_json, info, json_to_stdout

    limit = parse_size(args.limit) if args.limit else None
    df = load_samples(args.file, compact=True)
    column = args.column if args.column in df.columns else column_name(args.column)
    # The limit: --limit, else the one the sampler recorded in the file's header, else unknown (never this
    # machine's memory: the same file gives the same verdict on any machine).
    a = assess_leak(df, column=column, limit_bytes=limit, limit_source="--limit" if limit else None)
    width = max(len(k) for k, _ in a.rows())
    if not json_to_stdout(args):
        for key, value in a.rows():
            print(f"{key:<{width}}  {value}")
    png = Path(args.png) if args.png else Path(str(args.file) + ".png")
    if not args.no_png:
        save_figure(plot_memory(df, a), png)
        info(args, f"{'figure':<{width}}  {png}")
    emit_json(args, a.to_dict())
    return EXIT_CODES[a.verdict]


def register(subparsers: Any) -> None:
    """Add ``zcnb analyze``."""
    from .json_option import add_json_option

    p = subparsers.add_parser(
        "analyze", help="leak verdict for a samples CSV (exit 0 no leak, 1 leak, 3 inconclusive)",
        description="Assess a memory samples CSV: verdict, growth, time to limit, advice; writes a PNG. "
                    "Exit codes: 0 no_leak, 1 leak, 3 inconclusive, 2 bad input.")
    p.add_argument("file", help="samples CSV (zcnb sample output, any timestamp+rss_bytes CSV, or the runbook loop)")
    p.add_argument("--column", help="memory column to analyse: rss, vms, uss, pss, metrics_rss, metrics_vms, cgroup "
                   "(or the full name, e.g. rss_bytes; default: first of rss, metrics_rss, cgroup, pss, uss with data)")
    p.add_argument("--limit", help="the target's memory limit, e.g. 2GiB (the unit's MemoryMax); default: the limit "
                   "recorded in the samples header by zcnb sample, else unknown (no time to limit projected)")
    p.add_argument("--png", help="figure path (default: FILE.png)")
    p.add_argument("--no-png", action="store_true", help="do not write a figure")
    add_json_option(p, "the assessment")
    p.set_defaults(handler=_run)
