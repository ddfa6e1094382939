"""Record the stderr logs of the real ZeptoClaw gateway used as test fixtures (tests/data/logs/real/).

    python tests/data/logs/real/record.py [--binary PATH] [--out DIR]

Three runs of the real binary (default /work/scratch/zc/bin/zeptoclaw-gateway, or $ZEPTOCLAW_GATEWAY), each on
127.0.0.1 with a temporary HOME, as REAL-GATEWAY.md describes:

- ``start.log``: a plain start, one authenticated /health, then SIGKILL (no exit output);
- ``crash.log``: 101 authenticated /health requests within 60 s: the 101st makes the Debug build print
  ``Connection error: error.RateLimitExceeded`` and crash (``thread N panic: reached unreachable code`` + trace);
- ``clean_exit.log``: 20 token-less requests with three headers (each leaks its parsed headers), then the
  open-files limit lowered below what the process holds, SIGTERM and one connection: accept() fails, the loop
  ends and the DebugAllocator prints its leak report.

The throwaway token is replaced by ``TOKEN_PLACEHOLDER`` and the temporary paths by fixed ones before writing,
so the files are stable and hold no secret.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLACEHOLDER = "TOKEN_PLACEHOLDER"
DEFAULT_BINARY = "/work/scratch/zc/bin/zeptoclaw-gateway"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """One real gateway process on loopback with a temporary HOME; stderr goes to ``log``."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.home, self.work = tmp / "home", tmp / "workspace"
        (self.home / ".zeptoclaw").mkdir(parents=True)
        self.work.mkdir()
        self.port = _free_port()
        self.token = "t" + secrets.token_hex(16)
        self.log = tmp / "gateway.log"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "WORKSPACE": str(self.work),
               "NVIDIA_API_KEY": "unused", "GATEWAY_BIND": "127.0.0.1", "GATEWAY_PORT": str(self.port),
               "GATEWAY_AUTH_TOKEN": self.token, "ZEPTO_MEMORY_SECS": "0"}
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen([binary], cwd=self.home, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 15
        while b"Gateway server listening" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not start: {self.log.read_text(errors='replace')[-400:]}")
            time.sleep(0.05)
        time.sleep(0.3)  # the lines printed right after "listening"

    def get(self, path: str, *, token: bool, headers: int = 0) -> int | None:
        """One request; the status, or None when the connection closed without a reply."""
        hdrs = {f"X-Extra-{i}": f"value-{i}" for i in range(headers)}
        if token:
            hdrs["X-Auth-Token"] = self.token
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers=hdrs)
            return conn.getresponse().status
        except (http.client.HTTPException, ConnectionError, TimeoutError):
            return None
        finally:
            conn.close()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def text(self) -> str:
        out = self.log.read_text(encoding="utf-8", errors="replace").replace(self.token, PLACEHOLDER)
        out = out.replace(str(self.home), "/home/gateway").replace(str(self.work), "/home/gateway/workspace")
        return out.replace(f"port = {self.port}", "port = 18789").replace(f"Port: {self.port}", "Port: 18789")


def record_start(gw: Gateway) -> str:
    assert gw.get("/health", token=True) == 200
    time.sleep(0.2)
    gw.stop()
    return gw.text()


def record_crash(gw: Gateway) -> str:
    codes = [gw.get("/health", token=True) for _ in range(101)]
    if codes[:100] != [200] * 100 or codes[100] is not None:
        raise SystemExit(f"unexpected answers: {codes}")
    if gw.wait(10) is None:
        raise SystemExit("the gateway did not crash after its 101st request")
    return gw.text()


def record_clean_exit(gw: Gateway) -> str:
    import psutil

    for _ in range(20):
        assert gw.get("/health", token=False, headers=3) == 401
    proc = psutil.Process(gw.proc.pid)
    fds = proc.num_fds()
    limit = proc.rlimit(psutil.RLIMIT_NOFILE)
    proc.rlimit(psutil.RLIMIT_NOFILE, (fds - 1, limit[1]))  # the soft limit only: it can be raised again
    os.kill(gw.proc.pid, signal.SIGTERM)
    fd_dir = f"/proc/{gw.proc.pid}/fd"
    deadline = time.monotonic() + 5
    n = 0
    while len(os.listdir(fd_dir)) >= fds:  # tight: the accept loop ends and closes the listener
        n += 1
        if n % 1000 == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the accept loop did not end after SIGTERM")
            try:  # one connection makes accept() fail when SIGTERM alone did not end the loop
                socket.create_connection(("127.0.0.1", gw.port), timeout=1).close()
            except OSError:
                pass
    # the old limit back at once, so the leak report can open the debug info for its stack traces
    proc.rlimit(psutil.RLIMIT_NOFILE, limit)
    if gw.wait(20) != 0:
        raise SystemExit("the gateway did not exit cleanly")
    return gw.text()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.environ.get("ZEPTOCLAW_GATEWAY", DEFAULT_BINARY))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = ap.parse_args(argv)
    if not (shutil.which(args.binary) or Path(args.binary).is_file()):
        raise SystemExit(f"no gateway binary at {args.binary} (build it as REAL-GATEWAY.md shows)")
    out = Path(args.out)
    for name, run in (("start.log", record_start), ("crash.log", record_crash),
                      ("clean_exit.log", record_clean_exit)):
        for _attempt in range(5):  # the limit must be back before the report opens the debug info: a race
            with tempfile.TemporaryDirectory(prefix="zcnb-real-") as tmp:
                gw = Gateway(args.binary, Path(tmp))
                try:
                    text = run(gw)
                finally:
                    gw.stop()
            if "???:?:?: 0x" not in text.split("leaked:", 1)[-1][:200]:
                break
        (out / name).write_text(text, encoding="utf-8")
        print(f"{name}: {len(text.splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
