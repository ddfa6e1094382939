"""Benchmark the cost of the shared request budget per request (zcnb.collect.budget) against the request itself.

    python -m bench.request_budget [--quick] [--runs N] [--out results.json]

Measured per slot taken (``RequestBudget.try_acquire``: flock, read the window's tail, parse it, append a
record), median wall microseconds and CPU microseconds, in three states of the ledger:
``empty`` (first request), ``steady`` (the window holding ~59 of 60 records, the worst case of normal use: a
fake clock advances 1.02 s per request), ``contended`` (two other processes taking slots of the same gateway
at the same time). Baselines measured in the same run: a bare ``flock`` + append + unlock of one record on the
same folder (what any shared ledger costs), one loopback HTTP GET /health with httpx (what every slot guards:
``probe_health`` opens a client per probe, so does the baseline), and the same GET over a raw socket (the cheapest
request zcnb sends: ``MetricsClient``'s path for the real gateway's bare replies).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _per_call(fn: Any, n: int) -> tuple[float, float]:
    """(median wall us, median CPU us) per call over ``n`` calls, timed one by one."""
    walls, cpus = [], []
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls) * 1e6, statistics.mean(cpus) * 1e6  # process_time ticks: a mean is honest


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


_COMPETITOR = """
import sys, time
from zcnb.collect.budget import RequestBudget
b = RequestBudget("127.0.0.1", 9, limit=60, window_s=60, folder=sys.argv[1], caller="competitor")
end = time.time() + float(sys.argv[2])
while time.time() < end:
    b.try_acquire()
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import httpx

    from zcnb.collect.budget import RECORD_SIZE, RequestBudget

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    n = 300 if args.quick else args.runs
    folder = Path(tempfile.mkdtemp(prefix="zcnb-bench-budget-"))
    os.chmod(folder, 0o700)
    res: dict[str, Any] = {"calls": n, "load_before": os.getloadavg()}

    empty = RequestBudget("127.0.0.1", 1, limit=10**9, window_s=60, folder=folder)
    res["empty_us"], res["empty_cpu_us"] = _per_call(lambda: (empty.try_acquire(), empty.path.unlink()), n)

    t = [1_800_000_000.0]

    def clock() -> float:
        t[0] += 1.02
        return t[0]

    steady = RequestBudget("127.0.0.1", 2, limit=60, window_s=60, folder=folder, clock=clock)
    for _ in range(120):
        steady.try_acquire()
    assert steady.usage().used >= 55
    res["steady_us"], res["steady_cpu_us"] = _per_call(steady.try_acquire, n)
    res["steady_window"] = steady.usage().used

    contended = RequestBudget("127.0.0.1", 9, limit=60, window_s=60, folder=folder)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    dur = 3.0 if args.quick else 8.0
    others = [subprocess.Popen([sys.executable, "-c", _COMPETITOR, str(folder), str(dur + 2)], env=env)
              for _ in range(2)]
    time.sleep(1.5)  # let them start and run
    res["contended_us"], res["contended_cpu_us"] = _per_call(contended.try_acquire, min(n, 1000))
    for p in others:
        p.wait()
    res["contended_records"] = len(contended.history())  # the window fills at once: then slots are refused

    path = folder / "bare.ledger"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    rec = b"x" * (RECORD_SIZE - 1) + b"\n"

    def bare() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, rec)
        fcntl.flock(fd, fcntl.LOCK_UN)

    res["bare_flock_us"], res["bare_flock_cpu_us"] = _per_call(bare, n)
    os.close(fd)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"

    def get() -> None:
        with httpx.Client(timeout=5, trust_env=False) as c:
            c.get(url).raise_for_status()

    res["http_get_us"], res["http_get_cpu_us"] = _per_call(get, max(100, n // 10))
    port = int(server.server_address[1])

    def raw_get() -> None:  # the cheapest request: what MetricsClient's socket path sends
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            while s.recv(65536):
                pass

    res["socket_get_us"], res["socket_get_cpu_us"] = _per_call(raw_get, max(200, n // 5))
    server.shutdown()
    res["load_after"] = os.getloadavg()
    res["steady_vs_http"] = res["steady_us"] / res["http_get_us"]
    res["steady_vs_socket"] = res["steady_us"] / res["socket_get_us"]
    res["steady_vs_bare"] = res["steady_us"] / res["bare_flock_us"]
    shutil.rmtree(folder)

    print(f"request budget, median per slot ({n} calls; load {res['load_before'][0]:.2f} -> {res['load_after'][0]:.2f}):")
    print(f"  empty ledger        {res['empty_us']:8.1f} us wall  {res['empty_cpu_us']:7.1f} us CPU")
    print(f"  steady ({res['steady_window']}/60 window) {res['steady_us']:8.1f} us wall  {res['steady_cpu_us']:7.1f} us CPU")
    print(f"  contended (2 procs) {res['contended_us']:8.1f} us wall  {res['contended_cpu_us']:7.1f} us CPU "
          f"(two processes polling the same full ledger in a tight loop; {res['contended_records']} slots taken)")
    print(f"baseline: bare flock+append {res['bare_flock_us']:.1f} us; loopback GET /health (httpx) "
          f"{res['http_get_us']:.1f} us wall, {res['http_get_cpu_us']:.1f} us CPU")
    print(f"  raw socket GET /health (HTTP/1.0) {res['socket_get_us']:.1f} us wall, {res['socket_get_cpu_us']:.1f} us CPU")
    print(f"steady slot = {res['steady_vs_http']:.4f}x an httpx probe, {res['steady_vs_socket']:.2f}x a raw-socket "
          f"request; {res['steady_vs_bare']:.0f}x a bare flock+append")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
