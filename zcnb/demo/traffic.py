"""Background traffic for the simulated (or a real) gateway: skills, tools, probes.

Rate-limit budget: the real gateway allows 100 requests per 60 s per token and
drops the connection past it. The generator caps its own token-carrying requests
at ``budget_per_min`` (default 60) in any sliding 60 s window, leaving ~40/min for
a sampler's /metrics scrapes, health checks and ground-truth reads. Requests
without a token (``unauth_rate``) are not counted against the budget.
"""

from __future__ import annotations

import collections
import heapq
import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from ..config import Secret
from ..exceptions import ConfigError

__all__ = ["TrafficCounts", "TrafficGenerator"]

_WS_HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@dataclass(frozen=True)
class TrafficCounts:
    """What the generator sent and got back. ``skills``/``tools`` count answered calls."""

    skills: dict[str, int] = field(default_factory=dict)
    tools: dict[str, int] = field(default_factory=dict)
    unauth: int = 0
    heartbeat: int = 0
    ws: int = 0
    health: int = 0
    dropped: int = 0  # connection closed with no reply (rate limit) or reset
    failed: int = 0  # could not connect / timed out
    skipped_budget: int = 0  # not sent: would have exceeded budget_per_min
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def sent_with_token(self) -> int:
        return sum(self.skills.values()) + sum(self.tools.values()) + self.heartbeat + self.ws + self.health

    def to_dict(self) -> dict[str, Any]:
        return {"skills": dict(self.skills), "tools": dict(self.tools), "unauth": self.unauth,
                "heartbeat": self.heartbeat, "ws": self.ws, "health": self.health, "dropped": self.dropped,
                "failed": self.failed, "skipped_budget": self.skipped_budget,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}

    def _repr_markdown_(self) -> str:
        rows = [f"| skill `{k}` | {v} |" for k, v in sorted(self.skills.items())]
        rows += [f"| tool `{k}` | {v} |" for k, v in sorted(self.tools.items())]
        rows += [f"| {k} | {getattr(self, k)} |" for k in ("unauth", "heartbeat", "ws", "health", "dropped",
                                                            "failed", "skipped_budget")]
        return "**Traffic sent**\n\n| kind | count |\n|---|---|\n" + "\n".join(rows)


class TrafficGenerator:
    """Send requests at the given rates (per second) from a background thread."""

    def __init__(
        self, url: str, *, token: Secret | str | None, skills: dict[str, float] | None = None,
        tools: dict[str, float] | None = None, unauth_rate: float = 0.0, heartbeat_rate: float = 0.0,
        ws_rate: float = 0.0, health_rate: float = 0.0, duration_s: float | None = None, seed: int = 0,
        budget_per_min: int = 60, timeout_s: float = 10.0, jitter: float = 0.2, probe_headers: int = 0,
    ) -> None:
        """``probe_headers``: extra headers (``X-Probe-N: ...``) on every token-less request; the real gateway
        leaks each request's parsed headers on its 401 path, so they set the size of its leak."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"traffic target {url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:18789")
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._https else 80)
        self._token = token if isinstance(token, Secret) or token is None else Secret(token)
        streams: list[tuple[str, str, float]] = [("skill", k, v) for k, v in (skills or {}).items()]
        streams += [("tool", k, v) for k, v in (tools or {}).items()]
        streams += [(kind, kind, rate) for kind, rate in (("unauth", unauth_rate), ("heartbeat", heartbeat_rate),
                                                          ("ws", ws_rate), ("health", health_rate))]
        bad = [f"{n}={r!r}" for _k, n, r in streams if not isinstance(r, (int, float)) or r < 0]
        if bad:
            raise ConfigError(f"traffic rates must be numbers >= 0 (calls per second): {', '.join(bad)}",
                              hint="e.g. skills={'git_workflow': 0.5}")
        self._streams = [s for s in streams if s[2] > 0]
        if any(k != "unauth" for k, _n, _r in self._streams) and not self._token:
            raise ConfigError("traffic with a token was asked for but no token was given",
                              hint="pass token=gateway.token (or only unauth_rate)")
        if not isinstance(probe_headers, int) or not 0 <= probe_headers <= 100:
            raise ConfigError(f"probe_headers must be an integer 0..100, got {probe_headers!r}", hint="e.g. 20")
        self.probe_headers = probe_headers
        self.duration_s, self.budget_per_min, self.timeout_s, self.jitter = duration_s, budget_per_min, timeout_s, jitter
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sent: collections.deque[float] = collections.deque()
        self._c: dict[str, Any] = {"skills": collections.Counter(), "tools": collections.Counter(),
                                   "statuses": collections.Counter()}

    def start(self) -> Self:
        if self._thread is not None and self._thread.is_alive():
            raise ConfigError("traffic generator already running", hint="call stop() first")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="zcnb-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> TrafficCounts:
        """Stop sending (waits for the request in flight) and return the counts."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 5 if timeout is None else timeout)
        return self.counts()

    def wait(self, timeout: float | None = None) -> TrafficCounts:
        """Block until ``duration_s`` has run out (or ``timeout``)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.counts()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counts(self) -> TrafficCounts:
        with self._lock:
            c = self._c
            return TrafficCounts(skills=dict(c["skills"]), tools=dict(c["tools"]), statuses=dict(c["statuses"]),
                                 **{k: int(c.get(k, 0)) for k in ("unauth", "heartbeat", "ws", "health", "dropped",
                                                                  "failed", "skipped_budget")})

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        t0 = time.monotonic()
        heap = [(t0 + self._rng.uniform(0, 1 / r), i) for i, (_k, _n, r) in enumerate(self._streams)]
        heapq.heapify(heap)
        while heap and not self._stop.is_set():
            due, i = heapq.heappop(heap)
            if self.duration_s is not None and due - t0 > self.duration_s:
                break
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            kind, name, rate = self._streams[i]
            self._send(kind, name)
            step = (1 / rate) * (1 + self._rng.uniform(-self.jitter, self.jitter))
            heapq.heappush(heap, (max(due + step, time.monotonic()), i))

    def _budget_ok(self, now: float) -> bool:
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.budget_per_min:
            return False
        self._sent.append(now)
        return True

    def _send(self, kind: str, name: str) -> None:
        headers: dict[str, str] = {}
        if kind != "unauth":
            if not self._budget_ok(time.monotonic()):
                self._bump("skipped_budget")
                return
            assert self._token is not None
            headers["X-Auth-Token"] = self._token.reveal()
        else:
            headers.update({f"X-Probe-{i}": f"value-{i:04d}-{'p' * 24}" for i in range(self.probe_headers)})
        method, path, body = "GET", "/health", None
        if kind == "skill":
            method, path = "POST", "/agent"
            body = json.dumps({"skill": name, "command": "/" + name.replace("_", "-")})
        elif kind == "tool":
            method, path = "POST", "/agent"
            body = json.dumps({"tool": name, "args": {"query": "zeptoclaw status"}})
        elif kind == "heartbeat":
            method, path = "POST", "/heartbeat"
        elif kind == "ws":
            path = "/ws"
            headers.update(_WS_HEADERS)
        if body is not None:
            headers["Content-Type"] = "application/json"
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.timeout_s)
        try:
            try:
                conn.connect()
            except OSError:
                self._bump("failed")
                return
            try:
                conn.request(method, path, body=body, headers=headers)
                status = conn.getresponse().status
            except (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionError):
                self._bump("dropped")  # the rate limit closes the connection with no reply
                return
            except OSError:
                self._bump("failed")
                return
        finally:
            conn.close()
        with self._lock:
            self._c["statuses"][status] += 1
            if kind in ("skill", "tool"):
                self._c[kind + "s"][name] += 1
            else:
                self._c[kind] = self._c.get(kind, 0) + 1

    def _bump(self, key: str) -> None:
        with self._lock:
            self._c[key] = self._c.get(key, 0) + 1
