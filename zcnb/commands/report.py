"""``zcnb report``: run the stage notebooks into a dated incident folder and build report.html."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="run the stage notebooks (papermill) into a dated incident folder and build report.html",
        description="Execute the runbook's stage notebooks into <incidents_dir>/<YYYY-MM-DDTHHMMSSZ>-<slug>/, then "
        "build summary.json, report.html and the incidents index.html. Exits 1 when a stage failed.",
    )
    p.add_argument("--incident-dir", help="reuse this folder (it may already hold samples.csv, journal.jsonl, ...)")
    p.add_argument("--incidents-dir", help="parent folder for new incidents (default ~/.local/share/zeptoclaw/incidents)")
    p.add_argument("--slug", default="memory-leak", help="short name appended to the folder name")
    p.add_argument("--stages", default="01,02,03,04,06",
                   help="comma-separated stages to run (default: 01,02,03,04,06; the report, 05, always runs last)")
    p.add_argument("--commit", help="the gateway's git commit hash, when not found in commit.txt")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="[NN.]NAME=VALUE",
                   help="notebook parameter for every stage, or for one stage with its number: -p 02.interval_s=1 "
                        "(VALUE parsed as JSON when it can be; repeatable)")
    p.add_argument("--pdf", action="store_true",
                   help="also print report.pdf with a headless Chromium (apt-get install chromium; or $ZCNB_CHROMIUM)")
    p.add_argument("--no-progress", action="store_true", help="hide papermill's progress bars")
    p.set_defaults(handler=_run)

    q = sub.add_parser(
        "pdf",
        help="print an incident's report.html to report.pdf with a headless Chromium",
        description="Print report.html of an incident folder (or the given HTML file) to PDF, next to it unless "
        "--out is given. Needs Chromium or Google Chrome (apt-get install chromium, or $ZCNB_CHROMIUM).",
    )
    q.add_argument("path", help="incident folder or an HTML report")
    q.add_argument("--out", help="PDF to write (default: report.pdf beside the HTML)")
    q.add_argument("--chromium", help="browser executable (default: $ZCNB_CHROMIUM, then chromium/google-chrome)")
    q.set_defaults(handler=_pdf)


def _pdf(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..report.pdf import export_pdf

    src = Path(args.path)
    html_path = src / "report.html" if src.is_dir() else src
    print(f"pdf: {export_pdf(html_path, args.out, chromium=args.chromium)}")
    return 0


def _parse_params(items: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``NAME=VALUE`` for every stage and ``NN.NAME=VALUE`` for stage NN: (common, per stage)."""
    from ..exceptions import ConfigError
    from ..report.runner import STAGES

    common: dict[str, Any] = {}
    per_stage: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        stage, dot, name = key.rpartition(".")
        if not sep or not name.isidentifier() or (dot and not stage):
            raise ConfigError(f"bad parameter {item!r}",
                              hint="write it as NAME=VALUE (every stage) or NN.NAME=VALUE (one stage), "
                                   "e.g. -p live=true -p 01.interval_s=30")
        if dot and stage not in STAGES:
            raise ConfigError(f"bad parameter {item!r}: no stage {stage!r}",
                              hint=f"stage numbers: {', '.join(sorted(STAGES))}")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        (per_stage.setdefault(stage, {}) if dot else common)[name] = parsed
    return common, per_stage


# Stages that only report on data collected live or already in the incident folder, and the
# parameters that tell them where to get it.
_DATA_STAGES = ("01", "03", "06")
_SOURCE_PARAMS = ("live", "prometheus_url")


def _run(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError
    from ..report.runner import run_incident

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    params, per_stage = _parse_params(args.parameter)
    given = set(params) | {k for d in per_stage.values() for k in d}
    if not args.incident_dir and not given & set(_SOURCE_PARAMS) and any(s in _DATA_STAGES for s in stages):
        raise ConfigError("nothing to report on: a new incident folder holds no samples or logs, and no parameter "
                          "says where to get them",
                          hint="add -p live=true to collect from the running gateway (see `zcnb preflight`), "
                               "-p 01.prometheus_url=URL for a fleet, --incident-dir FOLDER that already holds "
                               "samples.csv/journal.jsonl, or try `zcnb demo`")
    run = run_incident(
        incident_dir=args.incident_dir,
        incidents_dir=args.incidents_dir,
        slug=args.slug,
        stages=stages,
        parameters=params,
        stage_parameters=per_stage,
        commit=args.commit,
        progress=not args.no_progress,
        pdf=args.pdf,
    )
    return print_run(run)


def print_run(run: Any) -> int:
    """One line per stage, then the incident folder and report paths; the exit code (1 if a stage failed)."""
    for s in run.stages + ((run.report,) if run.report else ()):
        mark = "ok" if s.status == "ok" else "FAILED"
        extra = f"  {s.error} (cell {s.failed_cell}; see {s.output})" if s.status != "ok" else ""
        print(f"{mark:6} {s.notebook:28} {s.duration_s:6.1f} s{extra}")
    verdict = (run.summary.get("assessment") or {}).get("verdict") or "?"
    print(f"verdict: {verdict}")
    print(f"incident: {run.folder}")
    if run.report_html:
        print(f"report: {run.report_html}")
    if run.report_pdf:
        print(f"pdf: {run.report_pdf}")
    if run.pdf_error:
        print(f"pdf: FAILED {run.pdf_error}")
    return 0 if run.ok else 1
