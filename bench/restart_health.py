"""Restart-to-healthy time: zcnb (supervisor restart + wait_healthy polling) vs the runbook's fixed wait.

Baseline, measured in the same run: the runbook's ``restart; sleep 5; curl -s .../health`` (restart through the
same supervisor, then a fixed 5 s sleep and one curl). Both restart the real simulated gateway on 127.0.0.1.

    python -m bench.restart_health [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    p.add_argument("--out", help="write results JSON here")
    args = p.parse_args(argv)
    from zcnb.ops.demo_target import mitigation_demo_target
    from zcnb.service import ProcessSupervisorBackend, wait_healthy

    rounds = 2 if args.quick else 5
    demo = mitigation_demo_target(units=("zeptoclaw-gateway.service",), leak="none")
    m: ProcessSupervisorBackend = demo.manager
    ours, base = [], []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            m.restart(demo.unit)
            res = wait_healthy(demo.url, token=demo.token, timeout_s=30, interval_s=0.05)
            assert res.healthy, res
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            m.restart(demo.unit)
            time.sleep(5)  # the runbook's `sleep 5`
            with tempfile.NamedTemporaryFile("w", suffix=".hdr") as hdr:  # token via a header file, not argv
                hdr.write(f"X-Auth-Token: {demo.token.reveal()}\n")
                hdr.flush()
                out = subprocess.run(["curl", "-s", "-H", f"@{hdr.name}", demo.url], capture_output=True, text=True,
                                     check=False, timeout=30)
            assert "healthy" in out.stdout, out.stdout
            base.append(time.perf_counter() - t0)
    finally:
        demo.close()
    med_ours, med_base = statistics.median(ours), statistics.median(base)
    result = {"rounds": rounds, "zcnb_restart_to_healthy_s": med_ours, "runbook_restart_sleep5_curl_s": med_base,
              "ratio_runbook_over_zcnb": med_base / med_ours}
    print(f"zcnb restart -> healthy (median of {rounds}): {med_ours:.3f} s")
    print(f"runbook restart; sleep 5; curl (median):   {med_base:.3f} s")
    print(f"ratio (runbook / zcnb): {med_base / med_ours:.1f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
