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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-seconds", type=float, default=110.0)
    ap.add_argument("--after-seconds", type=float, default=70.0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    from zcnb.demo.runner import DemoOptions, run_demo

    with tempfile.TemporaryDirectory() as tmp:
        folder = run_demo(incidents_dir=tmp, options=DemoOptions(sample_s=args.sample_seconds,
                                                                 after_s=args.after_seconds),
                          progress=True, run_stages=False)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(Path(folder) / name, out / name)
            (out / name).chmod(0o644)  # package data: readable; copies made by open_incident are private
        (out / "commit.txt").write_text("sample-recording\n")
    print(f"recorded {', '.join(FILES)} into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
