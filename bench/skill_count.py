"""Benchmark: full ``summarize_logs`` on big logs of several shapes vs the runbook's skill-count pipeline.

Baseline (same file, same run): ``grep -oP 'skill:[A-Za-z-]+' FILE | sort | uniq -c | sort -nr``.
Shapes (each written to a temporary file of ``--size-mb``):

- ``sparse``: short-iso, 20-80 lines per distinct second, 3 % ``skill:NAME`` and 7 % ``tool skill`` lines;
- ``dense``: short-iso, a new timestamp on every line (a line every 1-400 ms), 18 % ``skill:NAME`` and 12 %
  ``[agent] tool skill args={"name":...}`` lines, 21 skills (snake_case and hyphenated);
- ``dense-precise``: the same with ``journalctl -o short-iso-precise`` stamps (microseconds: no two prefixes alike);
- ``dense-short``: the same in journalctl's default ``short`` format (``Nov 20 00:00:00 host ident[pid]: ...``: no year,
  so no times or buckets; what the runbook's ``journalctl --user -u zeptoclaw-gateway`` prints);
- ``error-heavy``: dense timing, 40 % errors and warnings of many shapes (numbers, addresses, leak reports with
  stack traces, ``Connection error: error.X``, ``Warn:``, panics with their traces), 10 % skill lines;
- ``journal``: a saved ``journalctl -o json`` export (the fields journalctl writes for a user unit, in its
  hash order) of dense traffic;
- ``journal-export``: the same entries as ``journalctl -o export`` writes them (the form ``read_journal`` reads);
- ``host-journal``: a whole host's short-iso journal (no ``-u``): the dense gateway lines with 35 % lines of six
  other units and processes in between, each with its own syslog prefix.

For each shape the pipeline and ``summarize_logs`` (native engine, in a child that only summarises; pandas is
imported before the clock starts, as in a notebook or the CLI) alternate ``--repeat`` times; medians, the
ratio (pipeline time / zcnb time: throughput relative to the pipeline), the CPU seconds of both (the
pipeline's four processes; every zcnb thread) and the child's peak RSS are reported. Target: ratio >= 2 on every shape, peak < 128 MiB and independent of the file size (``--quarter``
also measures each shape at a quarter of the size).

    python -m bench.skill_count [--size-mb 500] [--repeat 5] [--shapes dense,journal] [--python] [--quick]
                                [--quarter] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PREFIX_HOST = "gw01 zeptoclaw-gateway"
SKILLS = ("git_workflow", "web-search", "code_review", "memory-sync", "calendar", "shell_helper")
DENSE_SKILLS = (
    "git_workflow", "web-search", "code_review", "memory-sync", "calendar", "shell_helper", "pdf-reader",
    "image_gen", "translate", "weather", "news-digest", "email_draft", "todo-list", "summarize", "math_solver",
    "browser", "docker-ops", "k8s_status", "sql-query", "notes", "timer",
)
_SPARSE_BODIES = (
    (30, "info: [agent] turn started session=s{n} model=nim/llama-3.1-70b"),
    (18, "info: [nim] request tokens={n} latency_ms={m}"),
    (7, 'info: [agent] tool skill args={{"name":"{s}","command":"/git-status"}}'),
    (3, "info: [agent] invoking skill:{h}"),
    (5, 'info: [agent] tool shell args={{"cmd":"ls -la /tmp/{n}"}}'),
    (3, 'info: [agent] tool web_fetch args={{"url":"https://example.org/{n}"}}'),
    (12, "info: [whatsapp] message from +4915{n} delivered"),
    (5, "info: [heartbeat] ok"),
    (8, "info: [memory] journal entry appended id={n}"),
    (4, "info: [cron] job memory-update ran in {m}ms"),
    (2, "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header"),
    (1, "warning: [cron] job memory-update late by {m}ms"),
    (0.5, "error: [nim] upstream returned 503 after {m}ms"),
    (0.2, "Connection error: error.RateLimitExceeded"),
)
_DENSE_BODIES = (
    (18, "info: [agent] invoking skill:{h} session=s{n}"),
    (12, 'info: [agent] tool skill args={{"name":"{s}","command":"/run {n}"}}'),
    (16, "info: [agent] turn started session=s{n} model=nim/llama-3.1-70b"),
    (12, "info: [nim] request tokens={n} latency_ms={m}"),
    (6, 'info: [agent] tool shell args={{"cmd":"ls -la /tmp/{n}"}}'),
    (4, 'info: [agent] tool web_fetch args={{"url":"https://example.org/{n}"}}'),
    (10, "info: [whatsapp] message from +4915{n} delivered"),
    (5, "info: [heartbeat] ok"),
    (8, "info: [memory] journal entry appended id={n}"),
    (4, "info: [cron] job memory-update ran in {m}ms"),
    (3, "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header"),
    (1.5, "error: [nim] upstream returned 503 after {m}ms"),
    (0.5, "Warn: [cron] job memory-update late by {m}ms"),
)
_ERROR_BODIES = (
    (6, "info: [agent] invoking skill:{h} session=s{n}"),
    (4, 'info: [agent] tool skill args={{"name":"{s}","command":"/run {n}"}}'),
    (20, "info: [agent] turn started session=s{n} model=nim/llama-3.1-70b"),
    (15, "info: [nim] request tokens={n} latency_ms={m}"),
    (8, "warning(gateway): unauthorized GET /health: Missing X-Auth-Token header"),
    (6, "error: [nim] upstream returned 503 after {m}ms (attempt {k} of 5)"),
    (5, "error(DebugAllocator): memory address 0x7f{x} leaked: "),
    (6, "/work/zeptoclaw/src/gateway/http_server.zig:{k}0:52: 0x12{x} in parseRequest (root.zig)"),
    (4, "            try headers.put(try self.allocator.dupe(u8, key), try self.allocator.dupe(u8, value));"),
    (4, "                                                   ^"),
    (4, "Connection error: error.{e}"),
    (3, "Warn: MOLTBOOK_API_KEY not set (EnvironmentVariableNotFound) session s{n}"),
    (3, "warning: [agent] tool {s} took {m}ms, over budget {k}00ms"),
    (3, "error: [whatsapp] send to +4915{n} failed: error.{e}"),
    (2, "debug: [gateway] GET /metrics freed {m} bytes"),
    (0.002, "thread {n} panic: reached unreachable code"),
    (0.3, "error(gpa): Double free detected. Allocation: 0x7f{x} free: 0x7f{x}"),
)
_ERRNAMES = ("RateLimitExceeded", "ConnectionResetByPeer", "BrokenPipe", "Timeout", "OutOfMemory", "Unexpected")


def _pool(bodies: tuple[tuple[float, str], ...], skills: tuple[str, ...], rng: random.Random,
          size: int = 20000) -> list[str]:
    weights = [w for w, _ in bodies]
    out = []
    for _ in range(size):
        tmpl = rng.choices([b for _, b in bodies], weights)[0]
        s = rng.choice(skills)
        hyphen = s.replace("_", "-") if rng.random() < 0.7 else s  # both spellings of a name
        out.append(tmpl.format(n=rng.randint(1, 999999), m=rng.randint(1, 9999), k=rng.randint(1, 9), s=s,
                               h=hyphen, x=f"{rng.getrandbits(40):010x}", e=rng.choice(_ERRNAMES)))
    return out


def gen_sparse(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """A short-iso log with 20-80 lines per distinct second (one unit, two restarts); returns lines written."""
    rng = random.Random(seed)
    pool = _pool(_SPARSE_BODIES, SKILLS, rng, 5000)
    target = int(size_mb * 1024 * 1024)
    t = datetime(2026, 11, 20, tzinfo=UTC)
    written = lines = 0
    pid = 4100
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            block = []
            if written > target // 3 and pid == 4100 or written > 2 * target // 3 and pid == 4101:
                pid += 1  # a restart: new pid and banner
                block.append(f"{t:%Y-%m-%dT%H:%M:%S}+0000 {PREFIX_HOST}[{pid}]: ZeptoClaw Gateway v0.4.2\n")
            prefix = f"{t:%Y-%m-%dT%H:%M:%S}+0000 {PREFIX_HOST}[{pid}]: "
            block += [prefix + body + "\n" for body in rng.choices(pool, k=rng.randint(20, 80))]
            text = "".join(block)
            fh.write(text)
            written += len(text)
            lines += len(block)
            t += timedelta(seconds=1)
    return lines


def _stamps(rng: random.Random, n: int, t0: float, *, precise: bool, short: bool = False) -> tuple[list[str], float]:
    """``n`` short-iso(-precise) stamps (journalctl's ``short`` ones with ``short``), a line every 1-400 ms; returns
    them and the next start time."""
    out = []
    t = t0
    cache: dict[int, str] = {}
    for _ in range(n):
        t += rng.randint(1, 400) / 1000
        sec = int(t)
        head = cache.get(sec)
        if head is None:
            cache.clear()
            head = cache[sec] = datetime.fromtimestamp(sec, UTC).strftime("%b %d %H:%M:%S" if short else "%Y-%m-%dT%H:%M:%S")
        out.append(head if short else f"{head}.{int((t - sec) * 1e6):06d}+0000" if precise else head + "+0000")
    return out, t


def _gen_lines(path: Path, size_mb: float, bodies: tuple[tuple[float, str], ...], *, seed: int,
               precise: bool = False, short: bool = False) -> int:
    rng = random.Random(seed)
    pool = _pool(bodies, DENSE_SKILLS, rng)
    target = int(size_mb * 1024 * 1024)
    t = datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    written = lines = 0
    pid = 4100
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            if written > target // 2 and pid == 4100:
                pid = 4101
                fh.write(f"{_stamps(rng, 1, t, precise=precise, short=short)[0][0]} {PREFIX_HOST}[{pid}]: "
                         "Main Token: [REDACTED]\n")
            stamps, t = _stamps(rng, 2000, t, precise=precise, short=short)
            bodies_k = rng.choices(pool, k=2000)
            text = "".join(f"{s} {PREFIX_HOST}[{pid}]: {b}\n" for s, b in zip(stamps, bodies_k))
            fh.write(text)
            written += len(text)
            lines += 2000
    return lines


def gen_dense(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """A new short-iso stamp on every line (a line every 1-400 ms), 30 % skill lines of both forms, 21 skills."""
    return _gen_lines(path, size_mb, _DENSE_BODIES, seed=seed)


def gen_dense_precise(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """:func:`gen_dense` with microsecond stamps (``journalctl -o short-iso-precise``)."""
    return _gen_lines(path, size_mb, _DENSE_BODIES, seed=seed, precise=True)


def gen_dense_short(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """:func:`gen_dense` in journalctl's default ``short`` format (the runbook's ``journalctl --user -u ...``)."""
    return _gen_lines(path, size_mb, _DENSE_BODIES, seed=seed, short=True)


def gen_error_heavy(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """Dense timing, ~40 % errors/warnings of many shapes, leak reports and panics with stack-trace lines."""
    return _gen_lines(path, size_mb, _ERROR_BODIES, seed=seed)


_HOST_OTHERS = (
    "systemd[1]: Started session-{n}.scope - Session {n} of User ops.",
    "kernel: audit: type=1400 audit({n}.123:42): apparmor=\"DENIED\" operation=\"open\" pid={n}",
    "sshd[{n}]: Accepted publickey for ops from 10.0.{k}.{m} port {m} ssh2",
    "CRON[{n}]: (root) CMD (/usr/local/bin/backup --quiet)",
    "dockerd[811]: time=\"2026-11-20T00:00:00Z\" level=info msg=\"ignoring event\" container={x}",
    "nginx[{n}]: 10.0.{k}.{m} - - \"GET /api/v1/items/{n} HTTP/1.1\" 200 {m}",
)


def gen_host_journal(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """A whole host's ``journalctl -o short-iso`` (no ``-u``): the dense gateway lines with 35 % lines of other
    units and processes in between (systemd, kernel, sshd, cron, docker, nginx, each with its own syslog prefix)."""
    rng = random.Random(seed)
    pool = _pool(_DENSE_BODIES, DENSE_SKILLS, rng)
    others = [rng.choice(_HOST_OTHERS).format(n=rng.randint(1, 99999), m=rng.randint(1, 9999), k=rng.randint(0, 255),
                                              x=f"{rng.getrandbits(48):012x}") for _ in range(5000)]
    target = int(size_mb * 1024 * 1024)
    t = datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    written = lines = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            pid = 4100 if written < target // 2 else 4101
            stamps, t = _stamps(rng, 2000, t, precise=False)
            text = "".join(f"{s} gw01 {rng.choice(others)}\n" if rng.random() < 0.35
                           else f"{s} {PREFIX_HOST}[{pid}]: {rng.choice(pool)}\n" for s in stamps)
            fh.write(text)
            written += len(text)
            lines += 2000
    return lines


def gen_journal(path: Path, size_mb: float, *, seed: int = 0, form: str = "json") -> int:
    """A saved ``journalctl --user -u zeptoclaw-gateway -o json`` of dense traffic (fields in hash order), or
    with ``form="export"`` the same entries as ``-o export`` writes them (what ``read_journal`` reads)."""
    rng = random.Random(seed)
    pool = _pool(_DENSE_BODIES, DENSE_SKILLS, rng)
    target = int(size_mb * 1024 * 1024)
    usec = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1e6)
    boot, machine = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(128):032x}"
    written = lines = 0
    pid = 4100
    keys = ["_UID", "_GID", "_COMM", "_EXE", "_CMDLINE", "_CAP_EFFECTIVE", "_SYSTEMD_CGROUP", "_SYSTEMD_OWNER_UID",
            "_SYSTEMD_UNIT", "_SYSTEMD_SLICE", "_SYSTEMD_USER_SLICE", "_SYSTEMD_INVOCATION_ID", "_BOOT_ID",
            "_MACHINE_ID", "_HOSTNAME", "_TRANSPORT", "_STREAM_ID", "SYSLOG_FACILITY", "PRIORITY",
            "SYSLOG_IDENTIFIER", "_PID", "_SYSTEMD_USER_UNIT", "MESSAGE", "__CURSOR", "__REALTIME_TIMESTAMP",
            "__MONOTONIC_TIMESTAMP"]
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            if written > target // 2 and pid == 4100:
                pid = 4101
            chunk = []
            for body in rng.choices(pool, k=200):
                usec += rng.randint(1000, 400000)
                lines += 1
                fields = {
                    "_UID": "1000", "_GID": "1000", "_COMM": "zeptoclaw-gatew",
                    "_EXE": "/opt/zeptoclaw/bin/zeptoclaw-gateway", "_CMDLINE": "/opt/zeptoclaw/bin/zeptoclaw-gateway",
                    "_CAP_EFFECTIVE": "0",
                    "_SYSTEMD_CGROUP": "/user.slice/user-1000.slice/user@1000.service/app.slice/zeptoclaw-gateway.service",
                    "_SYSTEMD_OWNER_UID": "1000", "_SYSTEMD_UNIT": "user@1000.service", "_SYSTEMD_SLICE": "user-1000.slice",
                    "_SYSTEMD_USER_SLICE": "app.slice", "_SYSTEMD_INVOCATION_ID": "3f1c0d2e9b8a47c6a5d4e3f2a1b0c9d8",
                    "_BOOT_ID": boot, "_MACHINE_ID": machine, "_HOSTNAME": "gw01", "_TRANSPORT": "stdout",
                    "_STREAM_ID": "9a8b7c6d5e4f40312233445566778899", "SYSLOG_FACILITY": "3", "PRIORITY": "6",
                    "SYSLOG_IDENTIFIER": "zeptoclaw-gateway", "_PID": str(pid),
                    "_SYSTEMD_USER_UNIT": "zeptoclaw-gateway.service", "MESSAGE": body,
                    "__CURSOR": f"s={machine};i={lines:x};b={boot};m={usec % 10**9:x};t={usec:x};x={lines * 7919:016x}",
                    "__REALTIME_TIMESTAMP": str(usec), "__MONOTONIC_TIMESTAMP": str(usec % 10**10),
                }
                if form == "export":
                    order = ["__CURSOR", "__REALTIME_TIMESTAMP", "__MONOTONIC_TIMESTAMP", "_BOOT_ID"]
                    order += [k for k in keys if k not in order]
                    chunk.append("".join(f"{k}={fields[k]}\n" for k in order))
                    continue
                order = keys[:]
                rng.shuffle(order)
                chunk.append(json.dumps({k: fields[k] for k in order}, ensure_ascii=False, separators=(",", ":")))
            text = "\n".join(chunk) + "\n"
            fh.write(text)
            written += len(text.encode())
    return lines


def gen_journal_export(path: Path, size_mb: float, *, seed: int = 0) -> int:
    """:func:`gen_journal`'s entries as ``journalctl -o export`` writes them."""
    return gen_journal(path, size_mb, seed=seed, form="export")


SHAPES: dict[str, Callable[..., int]] = {
    "sparse": gen_sparse, "dense": gen_dense, "dense-precise": gen_dense_precise, "dense-short": gen_dense_short,
    "error-heavy": gen_error_heavy,
    "journal": gen_journal, "journal-export": gen_journal_export, "host-journal": gen_host_journal,
}


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_pipeline(path: Path) -> tuple[float, dict[str, int], float]:
    """The runbook's pipeline as four real processes joined by pipes (no shell); (wall s, counts, CPU s)."""
    c0 = _children_cpu()
    t0 = time.perf_counter()
    grep = subprocess.Popen(["grep", "-oP", "skill:[A-Za-z-]+", str(path)], stdout=subprocess.PIPE)
    srt = subprocess.Popen(["sort"], stdin=grep.stdout, stdout=subprocess.PIPE)
    uniq = subprocess.Popen(["uniq", "-c"], stdin=srt.stdout, stdout=subprocess.PIPE)
    assert grep.stdout and srt.stdout and uniq.stdout
    grep.stdout.close()
    srt.stdout.close()
    out = subprocess.run(["sort", "-nr"], stdin=uniq.stdout, capture_output=True, check=True).stdout.decode()
    uniq.stdout.close()
    for p in (grep, srt, uniq):
        p.wait()
    dt = time.perf_counter() - t0
    return dt, {ln.split()[1]: int(ln.split()[0]) for ln in out.splitlines() if ln.strip()}, _children_cpu() - c0


_CHILD = """
import json, sys, time
import pandas  # imported before timing: a notebook/CLI session has it loaded already
from zcnb.logs import summarize_logs
t0, c0 = time.perf_counter(), time.process_time()
s = summarize_logs(sys.argv[1], unit="zeptoclaw-gateway.service", bucket="1min", engine=sys.argv[2])
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu": cpu, "skills": s.skill_counts, "lines": s.n_lines, "restarts": len(s.restarts),
                  "levels": s.levels, "crashes": len(s.crashes), "buckets": len(s.buckets),
                  "engine": [n for n in s.notes if n.startswith("engine:")]}))
"""


def run_zcnb(path: Path, engine: str) -> tuple[float, float, dict[str, Any]]:
    """summarize_logs in a child that does only that; returns (seconds inside, peak RSS MiB, result).

    Peak memory is the child's ``ru_maxrss`` (from ``wait4``: the largest of it and its reaped workers), so
    neither the parent's memory nor the generated file's page cache counts.
    """
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), engine], stdout=subprocess.PIPE,
                            cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"zcnb child ({engine}) failed with exit code {proc.returncode}")
    result = json.loads(out)
    return result["seconds"], usage.ru_maxrss / 1024, result


def bench_shape(shape: str, size: float, *, repeat: int, engines: list[str], tmp: Path,
                quarter: bool) -> dict[str, Any]:
    """Generate one shape, then alternate pipeline and zcnb runs; medians and ratios of this run."""
    path = tmp / f"{shape}.log"
    t0 = time.perf_counter()
    lines = SHAPES[shape](path, size)
    mb = path.stat().st_size / (1 << 20)
    print(f"[{shape}] generated {mb:.0f} MB ({lines} lines) in {time.perf_counter() - t0:.1f} s; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    base: list[float] = []
    base_cpu: list[float] = []
    cpus: dict[str, list[float]] = {e: [] for e in engines}
    times: dict[str, list[float]] = {e: [] for e in engines}
    peaks: dict[str, list[float]] = {e: [] for e in engines}
    res: dict[str, dict[str, Any]] = {}
    ref: dict[str, int] = {}
    for _ in range(repeat):  # interleaved, so a burst of load on the shared machine hits all alike
        dt, ref, dc = run_pipeline(path)
        base.append(dt)
        base_cpu.append(dc)
        for e in engines:
            dz, peak, res[e] = run_zcnb(path, e)
            times[e].append(dz)
            cpus[e].append(res[e]["cpu"])
            peaks[e].append(peak)
    b, bc = statistics.median(base), statistics.median(base_cpu)
    out: dict[str, Any] = {"mb": mb, "lines": lines, "pipeline_s": b, "pipeline_runs_s": base,
                           "pipeline_cpu_s": bc, "pipeline_mb_per_s": mb / b, "skills_pipeline": ref,
                           "load_avg": os.getloadavg()[0]}
    print(f"[{shape}] runbook pipeline: median {b:.3f} s ({mb / b:.0f} MB/s), CPU {bc:.3f} s, runs {_fmt(base)}",
          flush=True)
    for e in engines:
        z, zc = statistics.median(times[e]), statistics.median(cpus[e])
        row = {"summarize_s": z, "runs_s": times[e], "mb_per_s": mb / z, "ratio_vs_pipeline": b / z,
               "cpu_s": zc, "cpu_ratio_vs_pipeline": bc / zc,
               "peak_rss_mib": max(peaks[e]), **{k: res[e][k] for k in ("engine", "skills", "restarts", "levels",
                                                                          "crashes", "lines", "buckets")}}
        out[e] = row
        print(f"[{shape}] zcnb {e}: median {z:.3f} s ({mb / z:.0f} MB/s), CPU {zc:.3f} s, runs {_fmt(times[e])} "
              f"ratio {b / z:.2f}x (target >= 2), CPU ratio {bc / zc:.2f}x, peak RSS {max(peaks[e]):.0f} MiB "
              f"[{'; '.join(res[e]['engine'])}]", flush=True)
    if len(engines) > 1 and len({json.dumps(res[e]["skills"], sort_keys=True) for e in engines}) > 1:
        print(f"[{shape}] WARNING: the engines disagree on the skill counts")
    path.unlink()
    if quarter:
        small = tmp / f"{shape}-quarter.log"
        SHAPES[shape](small, size / 4, seed=1)
        for e in engines:
            out[e]["peak_rss_mib_quarter_size"] = run_zcnb(small, e)[1]
            print(f"[{shape}] zcnb {e} at a quarter of the size: peak RSS {out[e]['peak_rss_mib_quarter_size']:.0f} MiB")
        small.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.skill_count", description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=500.0, help="log size per shape (default 500)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    ap.add_argument("--quick", action="store_true", help="50 MB, one repetition")
    ap.add_argument("--python", action="store_true", help="also run the (slow) Python engine")
    ap.add_argument("--quarter", action="store_true", help="also measure peak memory at a quarter of the size")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args(argv)
    size, repeat = (50.0, 1) if args.quick else (args.size_mb, args.repeat)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    bad = [s for s in shapes if s not in SHAPES]
    if bad:
        ap.error(f"unknown shape(s) {', '.join(bad)}: use {', '.join(SHAPES)}")
    engines = ["native"] + (["python"] if args.python else [])
    results: dict[str, Any] = {"size_mb": size, "cpus": os.cpu_count(), "repeat": repeat,
                               "load_avg_before": os.getloadavg(), "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="zcnb-bench-") as tmp:
        for shape in shapes:
            results["shapes"][shape] = bench_shape(shape, size, repeat=repeat, engines=engines, tmp=Path(tmp),
                                                   quarter=args.quarter)
    results["load_avg_after"] = os.getloadavg()
    print()
    print("| shape | MB | zcnb (native) | pipeline | ratio | CPU zcnb / pipeline | CPU ratio | peak MiB | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape, r in results["shapes"].items():
        n = r["native"]
        quarter = f" ({n['peak_rss_mib_quarter_size']:.0f})" if "peak_rss_mib_quarter_size" in n else ""
        print(f"| {shape} | {r['mb']:.0f} | {n['summarize_s']:.3f} s | {r['pipeline_s']:.3f} s | "
              f"**{n['ratio_vs_pipeline']:.2f}x** | {n['cpu_s']:.3f} / {r['pipeline_cpu_s']:.3f} s | "
              f"{n['cpu_ratio_vs_pipeline']:.2f}x | {n['peak_rss_mib']:.0f}{quarter} | {r['load_avg']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _fmt(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.3f}" for x in xs) + "]"


if __name__ == "__main__":
    sys.exit(main())
