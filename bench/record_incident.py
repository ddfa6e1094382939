"""Record the bundled sample incident (zcnb/data/sample_incident/) from one real demo run.

    python -m bench.record_incident [--sample-seconds 110] [--after-seconds 70]

Runs the demo's collection phase (``zcnb.demo.runner.run_demo(run_stages=False)``): the simulated gateway in the
``real`` profile leaking 64 KiB per token-less probe, with skill traffic, sampled at 1 Hz (psutil + /metrics),
restarted through the supervisor backend, its log captured as journald would. The samples, the journal, the
restart action and the simulator's ground truth of that ONE run are copied into the package, so the stage
notebooks' default (replay) runs see consistent data. ``leak_report.txt`` (a real Zig allocator report) is kept.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "zcnb" / "data" / "sample_incident"
FILES = ("samples.csv", "journal.jsonl", "actions.jsonl", "ground_truth.json")


KEEP_RECORDS = 100  # of the real exit report (thousands of records, ~1.4 KB each): the package stays small


def _real_leak_report(out: Path) -> None:
    """leak_report.txt: the first process's exit report (its journal lines from the first leak header on), cut
    at a record boundary after KEEP_RECORDS records; the journal is cut the same way. Both counts go to
    ground_truth.json (``leak_report_records``: total and kept)."""
    import json

    entries = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    first = next((i for i, e in enumerate(entries) if e["MESSAGE"].startswith("error(DebugAllocator)")), None)
    if first is None:
        raise SystemExit("the journal holds no leak report: the restart was not clean")
    pid = entries[first]["_PID"]
    kept: list[dict[str, str]] = []
    report: list[str] = []
    total = 0
    for i, e in enumerate(entries):
        in_report = i >= first and e["_PID"] == pid
        if in_report and e["MESSAGE"].startswith("error(DebugAllocator)"):
            total += 1
        if in_report and total > KEEP_RECORDS:
            continue
        kept.append(e)
        if in_report:
            report.append(e["MESSAGE"])
    with (out / "journal.jsonl").open("w") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in kept)
    (out / "leak_report.txt").write_text("\n".join(report) + "\n")
    (out / "leak_report.txt").chmod(0o644)
    truth = json.loads((out / "ground_truth.json").read_text())
    truth["leak_report_records"] = {"total": total, "kept": min(total, KEEP_RECORDS)}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def _check_no_token(out: Path) -> None:
    """No 32-hex-digit token (the gateway's banner form) and no GATEWAY_AUTH_TOKEN value in any file."""
    import os
    import re

    token = os.environ.get("GATEWAY_AUTH_TOKEN", "")
    for f in out.iterdir():
        data = f.read_text(errors="replace")
        if (token and token in data) or re.search(r"Token: (?!<redacted>|\[REDACTED\])\S", data):
            raise SystemExit(f"{f} holds a token: not recorded")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-seconds", type=float, default=110.0)
    ap.add_argument("--after-seconds", type=float, default=70.0)
    ap.add_argument("--out", default=None, help="default zcnb/data/sample_incident (sample_incident_real with "
                                                 "--gateway-binary)")
    ap.add_argument("--gateway-binary", help="record on a real zeptoclaw-gateway binary (zcnb demo --gateway-binary)")
    args = ap.parse_args(argv)
    from zcnb.demo.runner import DemoOptions, run_demo

    if args.out is None:
        args.out = str(OUT.with_name("sample_incident_real") if args.gateway_binary else OUT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = run_demo(incidents_dir=tmp, options=DemoOptions(sample_s=args.sample_seconds,
                                                                 after_s=args.after_seconds,
                                                                 gateway_binary=args.gateway_binary),
                          progress=True, run_stages=False)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(Path(folder) / name, out / name)
            (out / name).chmod(0o644)  # package data: readable; copies made by open_incident are private
        (out / "commit.txt").write_text("sample-recording\n")
        if args.gateway_binary:  # the real gateway's own exit report, from the captured (redacted) journal
            _real_leak_report(out)
            _check_no_token(out)
    print(f"recorded {', '.join(FILES)} into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
