"""The simulated ZeptoClaw gateway process: ``python -m zcnb.demo.server --profile real --port 0``.

Stdlib only (starts in well under a second). Single-threaded, one connection at a
time, like the real Zig gateway. The token comes from ``GATEWAY_AUTH_TOKEN`` in
the environment, never from argv. Exit codes: 0 clean exit, 2 bad arguments,
130 SIGINT.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import json
import os
import random
import select
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from ._http import BadRequest, Request, json_reply, metrics_text, read_request, reply, ws_accept
from ._leaks import LEAK_KINDS, LEAK_MODES, LeakEngine, LeakParams

__all__ = ["PROFILES", "main"]

PROFILES = ("real", "runbook")
TOKEN_ENV = "GATEWAY_AUTH_TOKEN"
_LOOPBACK = ("127.0.0.1", "localhost")
_TICK_S = 0.2
_ROUTES = {"/health": "health", "/metrics": "metrics", "/agent": "agent", "/agent/wait": "agent",
           "/heartbeat": "heartbeat", "/ws": "ws", "/__ground_truth": "ground_truth"}
_NOISE = ("error: [nim] provider timeout", "warning(gateway): agent turn took longer than 30s",
          "error: [whatsapp] send failed: error.ConnectionResetByPeer",
          "warning: [memory] journal compaction skipped: file busy", "error: [nim] HTTP 429 from provider, retrying")


class _Stop(Exception):
    """Raised by the runbook profile's SIGTERM handler: exit at once."""


class ZigLog:
    """Zig's default log format, no timestamps, to a log file and stderr, flushed per line."""

    def __init__(self, path: str | None, *, to_stderr: bool) -> None:
        self._file: TextIO | None = None
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # the banner holds the token
            self._file = open(fd, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 -- open for the process's life
        self._stderr = to_stderr

    def line(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text + "\n")
            self._file.flush()
        if self._stderr:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


class RateLimiter:
    """At most ``limit`` requests per ``window_s`` seconds (sliding window) per token."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._hits: collections.deque[float] = collections.deque()

    def allow(self, now: float) -> bool:
        while self._hits and now - self._hits[0] >= self.window_s:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            return False
        self._hits.append(now)
        return True


class Gateway:
    """Request handling and counters (the ground truth)."""

    def __init__(self, opts: argparse.Namespace, token: str, log: ZigLog) -> None:
        self.opts, self.token, self.log = opts, token, log
        self.real = opts.profile == "real"
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.rng = random.Random(opts.seed)
        params = LeakParams(mode=opts.leak, kind=opts.leak_kind, bytes_per_event=opts.leak_bytes,
                            rate_bps=opts.leak_rate, period_s=opts.leak_period, transient_bytes=opts.leak_transient,
                            warmup_s=opts.leak_warmup)
        self.leaks = LeakEngine(params, now=self.started, seed=opts.seed)
        self.limiter = RateLimiter(opts.rate_limit, opts.rate_window) if self.real and opts.rate_limit > 0 else None
        self.debug = (not self.real) and os.environ.get("LOG_LEVEL", "").lower() == "debug"  # real ignores LOG_LEVEL
        self.requests: collections.Counter[str] = collections.Counter()
        self.unauth_by_route: collections.Counter[str] = collections.Counter()
        self.skills: collections.Counter[str] = collections.Counter()
        self.tools: collections.Counter[str] = collections.Counter()
        self.noise: collections.Counter[str] = collections.Counter()
        self.requests_total = self.unauth = self.rate_limited = self.bad_requests = 0

    # -- one connection -------------------------------------------------------------------
    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.opts.read_timeout)
        try:
            req = read_request(conn)
            if req is not None:
                self._dispatch(conn, req)
        except BadRequest as exc:
            self.bad_requests += 1
            self.log.line(f"warning(gateway): bad request: {exc}")
            try:
                json_reply(conn, exc.status, {"error": str(exc)})
            except OSError:
                pass
        except OSError as exc:  # client went away or timed out: the gateway just drops it
            self.log.line(f"Connection error: error.{type(exc).__name__}")
        finally:
            conn.close()

    def _dispatch(self, conn: socket.socket, req: Request) -> None:
        kind = _ROUTES.get(req.path, "other")
        given = req.headers.get("x-auth-token")
        valid = given is not None and hmac.compare_digest(given.encode(), self.token.encode())
        if kind == "ground_truth":  # test hook: always needs the token, never counted or limited
            if not valid:
                json_reply(conn, 401, {"error": "Invalid or expired token"})
            else:
                json_reply(conn, 200, self.ground_truth())
            return
        self.requests_total += 1
        if self.debug:
            self.log.line(f"debug: [gateway] {req.method} {req.path}")
        if not valid:
            self.unauth += 1
            self.unauth_by_route[kind] += 1
            self.leaks.on_event("unauth")
            if self.real or given is not None:
                why = "Missing X-Auth-Token header" if given is None else "Invalid or expired token"
                self.log.line(f"warning(gateway): unauthorized {req.method} {req.path}: {why}")
                json_reply(conn, 401, {"error": why})
                return
        if valid and self.limiter is not None and not self.limiter.allow(time.monotonic()):
            self.rate_limited += 1
            self.log.line("Connection error: error.RateLimitExceeded")
            return  # closed with no reply at all, like the real gateway
        self.requests[kind] += 1
        self.leaks.on_event(kind)
        getattr(self, f"_route_{kind}")(conn, req)

    # -- routes ---------------------------------------------------------------------------
    def _route_health(self, conn: socket.socket, req: Request) -> None:
        body: dict[str, Any] = {"status": "healthy"}
        if self.opts.health_detail:  # newer gateway versions add these objects
            body["whatsapp"] = {"connected": False, "state": "disabled"}
            body["turns"] = {"active": 0, "total": sum(self.skills.values()) + sum(self.tools.values())}
        json_reply(conn, 200, body)

    def _route_metrics(self, conn: socket.socket, req: Request) -> None:
        text = metrics_text(requests_total=self.requests_total, uptime_s=time.monotonic() - self.started,
                            process=not self.real).encode()
        if self.real:
            conn.sendall(text)  # bare exposition text: no status line, no headers (HTTP/0.9 style)
        else:
            reply(conn, 200, text, content_type="text/plain; version=0.0.4; charset=utf-8")

    def _route_agent(self, conn: socket.socket, req: Request) -> None:
        if req.method != "POST":
            json_reply(conn, 405, {"error": "Method not allowed"})
            return
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            json_reply(conn, 400, {"error": "Invalid JSON body"})
            return
        if not isinstance(body, dict) or not (isinstance(body.get("skill"), str) or isinstance(body.get("tool"), str)):
            json_reply(conn, 400, {"error": "Expected {\"skill\": name} or {\"tool\": name}"})
            return
        if isinstance(body.get("skill"), str):
            name = body["skill"]
            args = {"name": name, **{k: v for k, v in body.items() if k not in ("skill", "delay_s")}}
            self.skills[name] += 1
            self.log.line(f"info: [agent] tool skill args={_compact(args)}")
            if not self.real:  # the runbook's grep looks for skill:NAME (hyphenated)
                self.log.line(f"info: [agent] invoking skill:{name.replace('_', '-')}")
        else:
            tool = body["tool"]
            self.tools[tool] += 1
            self.log.line(f"info: [agent] tool {tool} args={_compact(body.get('args', {}))}")
        self._maybe_noise()
        delay = body.get("delay_s", 0)
        if isinstance(delay, (int, float)) and delay > 0:
            time.sleep(min(float(delay), 30.0))  # a slow agent turn blocks the single-threaded server
        json_reply(conn, 200, {"status": "ok"})

    def _route_heartbeat(self, conn: socket.socket, req: Request) -> None:
        self.log.line("info: [heartbeat] ok")
        self._maybe_noise()
        json_reply(conn, 200, {"status": "ok"})

    def _route_ws(self, conn: socket.socket, req: Request) -> None:
        self.log.line("info: [ws] client connected")
        key = req.headers.get("sec-websocket-key")
        if req.headers.get("upgrade", "").lower() == "websocket" and key:
            reply(conn, 101, b"", content_type="application/octet-stream",
                  extra={"Upgrade": "websocket", "Sec-WebSocket-Accept": ws_accept(key)})
        else:
            json_reply(conn, 200, {"status": "ws"})

    def _route_other(self, conn: socket.socket, req: Request) -> None:
        json_reply(conn, 404, {"error": "Not found"})

    def _maybe_noise(self) -> None:
        if self.opts.error_rate > 0 and self.rng.random() < self.opts.error_rate:
            line = self.rng.choice(_NOISE)
            self.noise[line.split(":", 1)[0]] += 1
            self.log.line(line)

    def ground_truth(self) -> dict[str, Any]:
        return {
            "profile": self.opts.profile,
            "pid": os.getpid(),
            "started_at": self.started_wall,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "requests_total": self.requests_total,
            "requests": dict(sorted(self.requests.items())),
            "unauth": self.unauth,
            "unauth_by_route": dict(sorted(self.unauth_by_route.items())),
            "rate_limited": self.rate_limited,
            "bad_requests": self.bad_requests,
            "skills": dict(sorted(self.skills.items())),
            "tools": dict(sorted(self.tools.items())),
            "noise_lines": dict(sorted(self.noise.items())),
            "leak": self.leaks.summary(),
        }


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m zcnb.demo.server", description=__doc__.splitlines()[0])
    p.add_argument("--name", default="zeptoclaw-gateway", help="process name shown in argv (pgrep -f finds it)")
    p.add_argument("--profile", choices=PROFILES, default="real")
    p.add_argument("--host", default="127.0.0.1", help="loopback only")
    p.add_argument("--port", type=int, default=0, help="0 = a free port")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--pid-file", help="write the pid here")
    p.add_argument("--log-file", help="append Zig-format log lines here (also written to stderr)")
    p.add_argument("--no-stderr", action="store_true", help="log to --log-file only")
    p.add_argument("--leak", choices=LEAK_MODES, default="none")
    p.add_argument("--leak-kind", choices=LEAK_KINDS, help="request kind that leaks (per_request)")
    p.add_argument("--leak-bytes", type=int, default=64 * 1024, help="bytes leaked per request (per_request)")
    p.add_argument("--leak-rate", type=float, default=128 * 1024, help="bytes/s (linear, sawtooth-rising, warmup)")
    p.add_argument("--leak-period", type=float, default=10.0, help="sawtooth period, s")
    p.add_argument("--leak-transient", type=int, default=8 * 1024 * 1024, help="sawtooth peak above baseline, bytes")
    p.add_argument("--leak-warmup", type=float, default=20.0, help="warm-up growth time, s (warmup-plateau)")
    p.add_argument("--rate-limit", type=int, default=100, help="requests per window per token, real profile; 0 = off")
    p.add_argument("--rate-window", type=float, default=60.0, help="rate limit window, s")
    p.add_argument("--error-rate", type=float, default=0.05, help="chance of a noise error/warning line per agent call")
    p.add_argument("--read-timeout", type=float, default=10.0, help="per-connection read timeout, s")
    p.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM entirely (tests the kill fallback)")
    p.add_argument("--gpa-scope", default="gpa", choices=("gpa", "DebugAllocator"), help="leak report scope (Zig version)")
    p.add_argument("--health-detail", action="store_true", help="add whatsapp/turns objects to /health (newer versions)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    return p


def _check(p: argparse.ArgumentParser, opts: argparse.Namespace, token: str) -> None:
    if opts.host not in _LOOPBACK:
        p.error(f"--host {opts.host} is not loopback: the simulator binds 127.0.0.1 only")
    if opts.leak == "per_request" and opts.leak_kind is None:
        p.error(f"--leak per_request needs --leak-kind (one of {', '.join(LEAK_KINDS)})")
    if opts.profile == "real" and not token:
        p.error(f"the real profile needs a token: set {TOKEN_ENV} in the environment")
    if opts.leak_period <= 0 or opts.rate_window <= 0 or opts.leak_bytes < 0 or opts.leak_rate < 0:
        p.error("--leak-period and --rate-window must be > 0; --leak-bytes and --leak-rate >= 0")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").strip()
    _check(parser, opts, token)
    log = ZigLog(opts.log_file, to_stderr=not opts.no_stderr)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        lsock.bind(("127.0.0.1", opts.port))
    except OSError as exc:
        log.line(f"error: [gateway] cannot bind 127.0.0.1:{opts.port}: {exc.strerror}")
        return 1
    lsock.listen(64)
    port = lsock.getsockname()[1]
    gw = Gateway(opts, token, log)
    term = {"flag": False}
    if opts.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif gw.real:
        signal.signal(signal.SIGTERM, lambda *_: term.__setitem__("flag", True))  # seen when accept() fails
    else:
        signal.signal(signal.SIGTERM, _raise_stop)
    if opts.pid_file:
        _write_atomic(opts.pid_file, f"{os.getpid()}\n")
    log.line(f"ZeptoClaw Gateway v0.4.2 ({opts.profile} profile, simulated by zcnb)")
    log.line(f"Listening on http://127.0.0.1:{port}")
    log.line(f"Main Token: {token}" if token else "Main Token: (none, auth disabled)")
    if opts.port_file:
        _write_atomic(opts.port_file, f"{port}\n")
    parent = os.getppid()
    try:
        while True:
            ready, _, _ = select.select([lsock], [], [], _TICK_S)
            gw.leaks.tick(time.monotonic())
            if opts.exit_with_parent and os.getppid() != parent:
                return 0
            if not ready:
                continue
            try:
                conn, _addr = lsock.accept()
            except OSError as exc:
                # Like the real gateway: the SIGTERM flag is looked at only when accept() fails
                # (a shut-down listening socket, or EMFILE under a lowered fd limit).
                if term["flag"]:
                    for line in gw.leaks.report_lines(scope=opts.gpa_scope):
                        log.line(line)
                    return 0
                log.line(f"Accept error: error.{_errname(exc)}")
                time.sleep(_TICK_S)  # the real one spins here; a tick keeps the simulator's CPU low
                continue
            gw.serve(conn)  # a connection after SIGTERM is served normally, as by the real gateway
    except _Stop:
        log.line("info: [gateway] SIGTERM received, shutting down")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        lsock.close()


def _errname(exc: OSError) -> str:
    import errno

    names = {errno.EINVAL: "SocketNotListening", errno.EMFILE: "ProcessFdQuotaExceeded",
             errno.ENFILE: "SystemFdQuotaExceeded"}
    return names.get(exc.errno or 0, type(exc).__name__)


def _raise_stop(*_: object) -> None:
    raise _Stop()


if __name__ == "__main__":
    sys.exit(main())
