"""Re-record ``query_range.json.gz``: a real Prometheus scraping six simulated gateways.

Run from the repo root: ``python tests/data/fleet/record.py [--seconds 150]``. Starts
``python -m zcnb.demo.server --profile runbook`` six times with different leak modes and a
real ``prometheus`` (1 s scrapes) on 127.0.0.1, waits, then saves the raw
``/api/v1/query_range`` reply (step 1 s) and the expected verdicts. Everything is stopped
at the end. Not run by the tests (it takes minutes); the tests replay the recording.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
# instance name -> (server leak args, expected verdict)
GATEWAYS = {
    "gw-linear": (["--leak", "linear", "--leak-rate", str(256 * 1024)], "leak"),
    "gw-per-scrape": (["--leak", "per_request", "--leak-kind", "metrics", "--leak-bytes", str(384 * 1024)], "leak"),
    "gw-sawtooth-rising": (["--leak", "sawtooth-rising", "--leak-rate", str(128 * 1024), "--leak-period", "10"], "leak"),
    "gw-none": (["--leak", "none"], "no_leak"),
    "gw-sawtooth-flat": (["--leak", "sawtooth-flat", "--leak-period", "10"], "no_leak"),
    "gw-warmup": (["--leak", "warmup-plateau", "--leak-rate", str(512 * 1024), "--leak-warmup", "20"], "no_leak"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="zcnb-record-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        targets = []
        for name, (leak, _verdict) in GATEWAYS.items():
            port = _free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "zcnb.demo.server", "--profile", "runbook",
                                           "--port", str(port), "--no-stderr", "--exit-with-parent", *leak],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            targets.append(f"      - targets: ['127.0.0.1:{port}']\n        labels: {{gateway: '{name}'}}\n")
        prom_port = _free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: zeptoclaw-gateway\n"
                       "    relabel_configs:\n      - source_labels: [gateway]\n        target_label: instance\n"
                       "    static_configs:\n" + "".join(targets))
        procs.append(subprocess.Popen([shutil.which("prometheus") or "prometheus", f"--config.file={cfg}",
                                       f"--web.listen-address=127.0.0.1:{prom_port}", f"--storage.tsdb.path={tmp / 'data'}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        t0 = time.time()
        time.sleep(args.seconds)
        t1 = time.time()
        reply = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query_range", timeout=30, params={
            "query": 'process_resident_memory_bytes{job="zeptoclaw-gateway"}', "start": f"{t0:.3f}",
            "end": f"{t1:.3f}", "step": "1"})
        reply.raise_for_status()
        with gzip.open(args.out / "query_range.json.gz", "wt", encoding="utf-8") as fh:
            json.dump(reply.json(), fh)
        expected = {name: verdict for name, (_l, verdict) in GATEWAYS.items()}
        (args.out / "expected.json").write_text(json.dumps({"query": 'process_resident_memory_bytes{job="zeptoclaw-gateway"}',
                                                             "step_s": 1, "seconds": args.seconds,
                                                             "modes": {n: " ".join(words) for n, (words, _v) in GATEWAYS.items()},
                                                             "expected_verdict": expected}, indent=2) + "\n")
        print(f"recorded {args.seconds:.0f} s into {args.out}")
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
