"""Record the simulated gateway into a real journal (and a samples CSV) for stage 03.

Runs the simulator process (``python -m zcnb.demo.server``, loopback), sends skill/tool traffic and
token-less probes at random per-bucket rates, stamps every log line on arrival (as journald does),
samples the process RSS with psutil, writes the lines as journal export entries through
``systemd-journal-remote`` into a ``.journal`` file, and exports it back with ``journalctl --file -o json``.

    python -m bench.record_journal --out DIR    # a real journal export of a longer simulator run
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SKILLS = ("git_workflow", "web-search", "code_review", "memory_sync")
TOOLS = ("shell", "web_fetch")


@dataclass
class Recording:
    """What one simulated run produced."""

    lines: list[tuple[int, bytes]]  # (epoch_us, raw log line)
    samples: list[tuple[float, int, int]]  # (epoch_s, pid, rss_bytes)
    pid: int
    token: str
    truth: dict[str, Any]


def _request(port: int, method: str, path: str, *, token: str | None, body: dict[str, Any] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"X-Auth-Token": token} if token else {}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def _wait_port(port_file: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited early with code {proc.returncode}")
        try:
            text = port_file.read_text().strip()
            if text:
                return int(text)
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError("simulator did not start listening in time")


def record(*, duration_s: float = 30.0, bucket_s: float = 2.0, leak: str = "per_request", leak_kind: str = "unauth",
           leak_bytes: int = 64 * 1024, profile: str = "real", max_per_bucket: int = 12, seed: int = 0,
           sample_interval_s: float = 0.1, samples_csv: str | os.PathLike[str] | None = None,
           workdir: str | os.PathLike[str] | None = None) -> Recording:
    """Run the simulator with random per-bucket traffic; return stamped log lines and RSS samples."""
    import psutil

    from zcnb.logs.journal import LogTail

    rng = random.Random(seed)
    tmp = Path(workdir or tempfile.mkdtemp(prefix="zcnb-rec-"))
    log_path, port_file = tmp / "gateway.log", tmp / "port"
    token = secrets.token_hex(16)
    env = {**os.environ, "GATEWAY_AUTH_TOKEN": token}
    argv = [sys.executable, "-m", "zcnb.demo.server", "--profile", profile, "--port", "0", "--port-file", str(port_file),
            "--log-file", str(log_path), "--no-stderr", "--leak", leak, "--leak-bytes", str(leak_bytes),
            "--rate-limit", "0", "--error-rate", "0.05", "--seed", str(seed), "--exit-with-parent"]
    if leak == "per_request":
        argv += ["--leak-kind", leak_kind]
    log_path.touch(mode=0o600)
    tail = LogTail(log_path).start()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()
    try:
        port = _wait_port(port_file, proc)
        ps = psutil.Process(proc.pid)

        def sampler() -> None:
            while not stop.wait(sample_interval_s):
                try:
                    samples.append((time.time(), proc.pid, ps.memory_info().rss))
                except psutil.Error:
                    return

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        zth = None
        if samples_csv is not None:  # zcnb's own sampler, same run: samples.csv that matches the journal
            from zcnb.collect.sampling import sample

            zth = threading.Thread(target=sample, args=(samples_csv,), daemon=True, kwargs={
                "pid": proc.pid, "sources": ["psutil"], "interval_s": 1.0, "duration_s": duration_s + 1.0,
                "progress": False})
            zth.start()
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            t_bucket = time.monotonic()
            jobs: list[tuple[str, str, str | None, dict[str, Any] | None]] = []
            jobs += [("GET", "/health", None, None)] * rng.randint(0, max_per_bucket)
            for _ in range(rng.randint(0, max_per_bucket)):
                jobs.append(("POST", "/agent", token, {"skill": rng.choice(SKILLS), "command": "/git-status"}))
            for _ in range(rng.randint(0, max_per_bucket // 2)):
                jobs.append(("POST", "/agent", token, {"tool": rng.choice(TOOLS), "args": {"q": "x"}}))
            jobs += [("POST", "/heartbeat", token, None)] * rng.randint(0, 3)
            rng.shuffle(jobs)
            gap = bucket_s * 0.8 / max(len(jobs), 1)  # spread over the bucket, like real traffic
            for method, path, tok, body in jobs:
                _request(port, method, path, token=tok, body=body)
                if bucket_s > 5:
                    time.sleep(gap)
            time.sleep(max(0.0, bucket_s - (time.monotonic() - t_bucket)))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/__ground_truth", headers={"X-Auth-Token": token})
        truth = json.loads(conn.getresponse().read() or b"{}")
        conn.close()
        time.sleep(0.3)
        stop.set()
        th.join(timeout=5)
        if zth is not None:
            zth.join(timeout=30)
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        lines = tail.stop()
    return Recording(lines=lines, samples=samples, pid=proc.pid, token=token, truth=truth)


def to_journal(rec: Recording, out_dir: Path, *, unit: str = "zeptoclaw-gateway.service",
               other_unit_lines: int = 20) -> list[Path]:
    """Write the recording (plus a few lines of another unit mentioning skills) as a real journal file."""
    from zcnb.logs.journal import stamped_to_export, write_journal

    def entries() -> Any:
        yield from stamped_to_export(rec.lines, unit=unit, pid=rec.pid)
        t0 = rec.lines[0][0] if rec.lines else int(time.time() * 1e6)
        for i in range(other_unit_lines):  # must never count as the gateway's skills
            yield {"__REALTIME_TIMESTAMP": t0 + i * 1000, "_SYSTEMD_USER_UNIT": "whatsapp-responder.service",
                   "SYSLOG_IDENTIFIER": "whatsapp-responder", "_PID": 4242, "PRIORITY": 6,
                   "MESSAGE": "info: [agent] tool skill args={\"name\":\"git_workflow\"} skill:git-workflow"}

    return write_journal(entries(), out_dir / "gateway.journal")


def export_json(files: list[Path], dest: Path, *, redact: Any) -> int:
    """``journalctl --file ... -o json`` of the gateway unit into ``dest`` (messages redacted)."""
    from zcnb.files import write_private

    argv = ["journalctl", "-o", "json", "--all", "--no-pager"] + [f"--file={f}" for f in files]
    out = subprocess.run(argv, capture_output=True, check=True).stdout
    rows = []
    for raw in out.splitlines():
        obj = json.loads(raw)
        msg = obj.get("MESSAGE")
        if isinstance(msg, str):
            obj["MESSAGE"] = redact(msg)
        for k in ("__CURSOR", "_BOOT_ID", "__MONOTONIC_TIMESTAMP"):
            obj.pop(k, None)
        rows.append(json.dumps(obj, sort_keys=True))
    write_private(dest, "\n".join(rows) + "\n")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.record_journal", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for journal.jsonl (and samples.csv)")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    p.add_argument("--bucket", type=float, default=60.0, help="seconds per traffic bucket (rates change per bucket)")
    p.add_argument("--max-per-bucket", type=int, default=40, help="most requests of one kind per bucket")
    p.add_argument("--with-samples", action="store_true",
                   help="also (over)write samples.csv, recorded by zcnb.collect.sampling in the same run")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args(argv)
    from zcnb.redact import Redactor

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp_csv = out / "samples.csv.recording"
    rec = record(duration_s=args.duration, bucket_s=args.bucket, seed=args.seed, max_per_bucket=args.max_per_bucket,
                 sample_interval_s=1.0, samples_csv=tmp_csv if args.with_samples else None)
    red = Redactor.create(secrets=[rec.token])
    with tempfile.TemporaryDirectory() as tmp:
        files = to_journal(rec, Path(tmp), other_unit_lines=0)
        n = export_json(files, out / "journal.jsonl", redact=red)
    if args.with_samples:
        tmp_csv.replace(out / "samples.csv")
        (out / "samples.csv").chmod(0o644)  # package data
    (out / "journal.jsonl").chmod(0o644)
    print(f"wrote {n} journal entries, {len(rec.samples)} samples to {out}; ground truth: {json.dumps(rec.truth)[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
