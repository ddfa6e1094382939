"""Benchmark the simulated gateway: start-up latency and /health round trips.

Baselines measured in the same run: a bare interpreter start (``python -c pass``) for
start-up, and one request to the stdlib ``http.server`` (ThreadingHTTPServer in a child
process) for the round trip. ``python -m bench.simulator [--quick] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_start(n: int) -> dict[str, float]:
    from zcnb.demo import SimulatedGateway

    base, sim = [], []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
        gw = SimulatedGateway(profile="real")
        t = time.perf_counter()
        gw.start()
        sim.append(time.perf_counter() - t)
        gw.kill()
        gw.close()
    return {"start_median_ms": _median_ms(sim), "baseline_python_c_pass_median_ms": _median_ms(base),
            "ratio_vs_baseline": round(statistics.median(sim) / statistics.median(base), 2)}


def _round_trips(port: int, n: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health", headers=headers)
        conn.getresponse().read()
        conn.close()
        out.append(time.perf_counter() - t)
    return out


def bench_health(n: int) -> dict[str, float]:
    from zcnb.demo import SimulatedGateway

    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        base_proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                      "--directory", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.02)
            base = _round_trips(port, n, {})
        finally:
            base_proc.kill()
            base_proc.wait()
    with SimulatedGateway(profile="real", rate_limit=False, error_rate=0.0) as gw:
        sim = _round_trips(gw.port, n, {"X-Auth-Token": gw.token.reveal()})
    return {"health_median_ms": _median_ms(sim), "baseline_stdlib_http_server_median_ms": _median_ms(base),
            "health_ratio_vs_baseline": round(statistics.median(sim) / statistics.median(base), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    n_start, n_req = (5, 100) if args.quick else (15, 500)
    res = {**bench_start(n_start), **bench_health(n_req), "n_start": n_start, "n_requests": n_req,
           "cpus": os.cpu_count()}
    for k, v in res.items():
        print(f"{k:42} {v}")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
