"""Record the bundled sample incident's samples.csv: a real run of zcnb's sampler against the simulator.

    python -m bench.record_sample [--duration 180] [--interval 1] [--out zcnb/data/sample_incident/samples.csv]

Simulator: real profile (token required, /metrics without memory metrics and without a status line),
leak ``per_request`` of kind ``unauth`` (each token-less request retains memory), with traffic: token-less
probes plus skill calls. Sampled at 1 Hz with sources psutil+metrics (metrics says once that it has no memory
metrics, as on the real gateway), for about 3 minutes, with one restart of the gateway in the middle
(followed through the pid file). cgroup is left out: on this build machine the simulator shares its cgroup
with everything else, so that figure would not be the gateway's.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "zcnb" / "data" / "sample_incident" / "samples.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=180.0, help="seconds (default 180)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    ap.add_argument("--unauth-rate", type=float, default=1.0, help="token-less probes per second (default 1)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="CSV to (over)write")
    args = ap.parse_args(argv)
    from zcnb.demo import SimulatedGateway, TrafficGenerator
    from zcnb.sampling import sample

    out = Path(args.out)
    tmp = out.with_name(out.name + ".recording")
    tmp.unlink(missing_ok=True)
    with SimulatedGateway(profile="real", leak="per_request", leak_kind="unauth", seed=7) as gw:
        traffic = TrafficGenerator(gw.url, token=gw.token, unauth_rate=args.unauth_rate,
                                   skills={"git_workflow": 0.2, "web-search": 0.1}, duration_s=args.duration, seed=7)
        traffic.start()
        restarter = threading.Timer(args.duration / 2, gw.restart)
        restarter.start()
        try:
            summary = sample(tmp, pid_file=str(gw.pid_file), url=gw.url, token=gw.token,
                             sources=["psutil", "metrics"], interval_s=args.interval, duration_s=args.duration,
                             metrics_interval_s=10.0, progress=True)
        finally:
            restarter.cancel()
            restarter.join()
            counts = traffic.stop()
    tmp.replace(out)
    out.chmod(0o644)  # package data, read by every user of an installed zcnb (incident copies are 0600)
    print(summary.to_dict())
    print(counts.to_dict())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
