"""Fetch and parse the gateway's ``/metrics`` (Prometheus text or OpenMetrics).

The real gateway answers ``/metrics`` with bare exposition text and no HTTP status
line (an HTTP/0.9-style reply) that httpx refuses; :class:`MetricsClient` then
re-asks over a plain socket, reads until EOF under a size cap, and remembers that
the endpoint needs the socket path so later scrapes cost one request, not two.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..config import Secret
from ..exceptions import (
    ConfigError,
    EndpointAuthError,
    EndpointBodyTooLarge,
    EndpointRateLimited,
    EndpointUnreachable,
    MetricsFormatError,
)
from ..redact import redact, safe_url
from .bounded import DeadlineExceeded, ReplyTooLarge, get_bounded
from .budget import Grant, RequestBudget, budget_for_url

__all__ = [
    "MAX_BODY_BYTES",
    "MEMORY_METRICS",
    "MetricSet",
    "MetricsClient",
    "MetricsReply",
    "fetch_metrics",
    "parse_metrics",
]

MAX_BODY_BYTES = 8 * 1024 * 1024
# Names the runbook greps for; any Prometheus client's process collector exports the first two.
MEMORY_METRICS = ("process_resident_memory_bytes", "process_virtual_memory_bytes", "memory_usage_bytes")


@dataclass(frozen=True)
class MetricsReply:
    """One /metrics reply: body text plus how it arrived."""

    url: str
    text: str
    status: int | None  # None: the reply had no status line
    via: str  # "http" or "socket"
    elapsed_s: float
    content_type: str = ""

    @property
    def status_line(self) -> bool:
        return self.status is not None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "status": self.status, "status_line": self.status_line, "via": self.via,
                "elapsed_s": self.elapsed_s, "content_type": self.content_type, "bytes": len(self.text)}

    def _repr_markdown_(self) -> str:
        line = f"HTTP {self.status}" if self.status_line else "no status line (bare body)"
        return f"`{self.url}`: {line} via {self.via}, {len(self.text)} chars in {self.elapsed_s * 1000:.0f} ms"


@dataclass(frozen=True)
class MetricSet:
    """Parsed exposition: samples keyed by name and label set."""

    samples: tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]
    types: Mapping[str, str] = field(default_factory=dict)
    format: str = "text"
    notes: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted({name for name, _, _ in self.samples}))

    def get(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """Value of ``name``; with ``labels``, of the series carrying those labels.

        Without labels: the unlabelled series, else the only series of that name;
        None when absent or ambiguous (several labelled series).
        """
        rows = [(lab, v) for n, lab, v in self.samples if n == name]
        if not rows:
            return None
        if labels is None:
            for lab, v in rows:
                if not lab:
                    return v
            return rows[0][1] if len(rows) == 1 else None
        want = {str(k): str(v) for k, v in labels.items()}
        hits = [v for lab, v in rows if want.items() <= dict(lab).items()]
        return hits[0] if len(hits) == 1 else None

    def memory_metrics(self) -> dict[str, float]:
        """The runbook's memory metrics that this set exports (empty for the real gateway)."""
        out: dict[str, float] = {}
        for name in MEMORY_METRICS:
            value = self.get(name)
            if value is not None:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "notes": list(self.notes),
                "samples": [{"name": n, "labels": dict(lab), "value": None if math.isnan(v) else v}
                            for n, lab, v in self.samples]}

    def _repr_markdown_(self) -> str:
        lines = [f"**/metrics** ({self.format}): {len(self.samples)} series", "", "| name | labels | value |",
                 "|---|---|---|"]
        for n, lab, v in self.samples[:50]:
            lines.append(f"| `{n}` | {', '.join(f'{k}={val}' for k, val in lab) or '-'} | {v:g} |")
        mem = self.memory_metrics()
        lines.append("")
        lines.append(f"memory metrics: {', '.join(mem) if mem else 'none (use psutil / cgroup)'}")
        return "\n".join(lines + [f"- {n}" for n in self.notes])


def parse_metrics(text: str | bytes, *, content_type: str = "") -> MetricSet:
    """Parse Prometheus text (or OpenMetrics) exposition; bad input -> :class:`MetricsFormatError`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MetricsFormatError(f"/metrics body is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                     hint="check that the URL points at a Prometheus /metrics endpoint") from None
    if "\x00" in text:
        raise MetricsFormatError("/metrics body contains NUL bytes: not exposition text",
                                 hint="check that the URL points at a Prometheus /metrics endpoint")
    openmetrics = "openmetrics" in content_type.lower() or text.rstrip().endswith("# EOF")
    try:
        if openmetrics:
            from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
            families = list(om_parse(text if text.endswith("\n") else text + "\n"))  # type: ignore[no-untyped-call]
        else:
            from prometheus_client.parser import text_string_to_metric_families
            families = list(text_string_to_metric_families(text))
    except Exception as exc:  # noqa: BLE001 -- the parsers raise ValueError, IndexError, KeyError, TypeError ...
        first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
        raise MetricsFormatError(
            f"/metrics body is not valid {'OpenMetrics' if openmetrics else 'Prometheus text'} exposition "
            f"({type(exc).__name__}: {str(exc)[:200]}); first data line: {first[:120]!r}",
            hint="check that the URL points at a Prometheus /metrics endpoint (not an HTML or JSON page)",
        ) from None
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    rows: list[tuple[str, tuple[tuple[str, str], ...], float]] = []
    types: dict[str, str] = {}
    dups = 0
    for fam in families:
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, tuple(sorted((str(k), str(v)) for k, v in s.labels.items())))
            try:
                value = float(s.value)
            except (TypeError, ValueError):
                raise MetricsFormatError(f"sample {s.name} has a non-numeric value {s.value!r}",
                                         hint="the endpoint emits invalid exposition; report it upstream") from None
            if key in seen:
                dups += 1
                rows[seen[key]] = (key[0], key[1], value)  # later line wins, as Prometheus would keep one
                continue
            seen[key] = len(rows)
            rows.append((key[0], key[1], value))
    notes = (f"{dups} duplicate series line(s): kept the last value of each",) if dups else ()
    return MetricSet(samples=tuple(rows), types=types, format="openmetrics" if openmetrics else "text", notes=notes)


def _check_url(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"metrics URL {safe_url(url)!r} cannot be parsed",
                          hint="use e.g. http://127.0.0.1:18789/metrics") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"metrics URL {safe_url(url)!r} is not an http(s) URL",
                          hint="use e.g. http://127.0.0.1:18789/metrics")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"metrics URL {safe_url(url)!r} has an invalid port",
                          hint="use e.g. http://127.0.0.1:18789") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def _looks_like_auth_error(body: str) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "token" in str(data.get("error", "")).lower()


class MetricsClient:
    """Scrapes one /metrics URL; learns whether it needs the plain-socket path."""

    def __init__(self, url: str, *, token: Secret | None = None, timeout_s: float = 5.0,
                 max_bytes: int = MAX_BODY_BYTES, exact_url: bool = False, budget: RequestBudget | None = None,
                 budget_wait_s: float | None = None, background: bool = False, caller: str = "metrics") -> None:
        if not exact_url and not url.rstrip("/").endswith("/metrics"):
            url = url.rstrip("/") + "/metrics"
        self.scheme, self.host, self.port, self.path = _check_url(url)
        if timeout_s <= 0 or max_bytes <= 0:
            raise ConfigError("timeout_s and max_bytes must be positive", hint="e.g. timeout_s=5")
        self.url = url
        self.shown_url = safe_url(url)  # for messages, errors and stored replies: no user:pw@, no query secrets
        self._token = token
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.bare_replies = False  # set once the endpoint answered without a status line
        # Every request draws from the gateway's shared request budget first (see zcnb.collect.budget).
        self.budget, self.background, self.caller = budget, background, caller
        self.budget_wait_s = timeout_s if budget_wait_s is None else budget_wait_s
        self.last_grant: Grant | None = None

    def __repr__(self) -> str:
        return f"MetricsClient({self.shown_url!r}, token={'***' if self._token else None})"

    def _headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self._token.reveal()} if self._token else {}

    def _spend(self) -> None:
        """Take a slot of the gateway's request budget, or raise RequestBudgetExhausted (nothing is sent)."""
        if self.budget is None:
            self.budget = budget_for_url(self.url)
        self.last_grant = self.budget.acquire(token=bool(self._token), wait_s=self.budget_wait_s,
                                              background=self.background, caller=self.caller)

    def fetch(self) -> MetricsReply:
        """One scrape. Raises the Endpoint* errors of :mod:`zcnb.exceptions` on failure, and
        RequestBudgetExhausted when the request budget had no slot in ``budget_wait_s`` (nothing sent)."""
        if self.bare_replies:
            return self._fetch_socket()
        self._spend()
        start = time.monotonic()
        try:
            # trust_env=False: HTTP(S)_PROXY/ALL_PROXY must never see the X-Auth-Token header. The read is
            # bounded in size and by one deadline for the whole reply (a drip-fed reply ends on time too).
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False, trust_env=False) as client:
                reply = get_bounded(client, self.url, headers=self._headers(), max_bytes=self.max_bytes,
                                    deadline=start + self.timeout_s)
            body = reply.content.decode("utf-8", errors="replace")
            status, ctype = reply.status_code, reply.headers.get("content-type", "")
        except ReplyTooLarge as exc:
            raise self._too_large(exc.size) from None
        except DeadlineExceeded as exc:
            raise self._unreachable("timeout", f"no complete reply within {self.timeout_s:g} s "
                                               f"({exc.read} bytes received)") from None
        except httpx.RemoteProtocolError:
            # No (valid) status line, or closed with nothing: ask again the raw way and decide from the bytes.
            return self._fetch_socket()
        except httpx.TimeoutException:
            raise self._unreachable("timeout", f"no reply within {self.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise self._unreachable("endpoint down", f"{type(exc).__name__}: {redact(str(exc))[:120]}") from None
        return self._finish(status, body, ctype, "http", start)

    def _fetch_socket(self) -> MetricsReply:
        self._spend()  # a second request when it follows an unparsable httpx reply: the gateway counts both
        start = time.monotonic()
        deadline = start + self.timeout_s
        req = [f"GET {self.path} HTTP/1.0", f"Host: {self.host}:{self.port}", "Connection: close"]
        req += [f"{k}: {v}" for k, v in self._headers().items()]
        buf = bytearray()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as raw:
                sock: socket.socket = raw
                if self.scheme == "https":
                    sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.host)
                sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode("latin-1"))
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > self.max_bytes:
                        raise self._too_large(len(buf))
        except TimeoutError:
            raise self._unreachable("timeout", f"no complete reply within {self.timeout_s:g} s") from None
        except ConnectionResetError:
            raise self._rate_limited() from None
        except OSError as exc:
            raise self._unreachable("endpoint down", exc.strerror or type(exc).__name__) from None
        if not buf:
            raise self._rate_limited()
        data = bytes(buf)
        if data.startswith(b"HTTP/"):
            head, _, body_b = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            try:
                status = int(lines[0].split()[1])
            except (IndexError, ValueError):
                status = 0
            ctype = next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("content-type:")), "")
            return self._finish(status, body_b.decode("utf-8", errors="replace"), ctype, "socket", start)
        self.bare_replies = True
        return self._finish(None, data.decode("utf-8", errors="replace"), "", "socket", start)

    def _finish(self, status: int | None, body: str, ctype: str, via: str, start: float) -> MetricsReply:
        if status == 401 or (status is None and _looks_like_auth_error(body)):
            has = "a token that was rejected" if self._token else "no X-Auth-Token"
            raise EndpointAuthError(f"{self.shown_url} answered 401: sent {has}", url=self.shown_url, reason="401",
                                    hint="set the gateway token in the env var named by token_env (default GATEWAY_AUTH_TOKEN) "
                                         "or in the settings' 0600 token_file")
        if status == 429:
            raise self._rate_limited()
        if status is not None and status >= 400:
            raise EndpointUnreachable(f"{self.shown_url} answered HTTP {status}", url=self.shown_url, reason=f"http {status}",
                                      hint="check the URL and that the gateway is healthy")
        return MetricsReply(url=self.shown_url, text=body, status=status, via=via,
                            elapsed_s=time.monotonic() - start, content_type=ctype)

    def _too_large(self, size: int) -> EndpointBodyTooLarge:
        return EndpointBodyTooLarge(f"{self.shown_url} sent more than {self.max_bytes} bytes (read {size}); stopped reading",
                                    url=self.shown_url, reason="body too large",
                                    hint="check the URL points at /metrics, or raise max_bytes")

    def _unreachable(self, reason: str, detail: str) -> EndpointUnreachable:
        return EndpointUnreachable(f"{self.shown_url} unreachable: {detail}", url=self.shown_url, reason=reason,
                                   hint="check the gateway is running and the host/port (GATEWAY_PORT)")

    def _rate_limited(self) -> EndpointRateLimited:
        return EndpointRateLimited(f"{self.shown_url} closed the connection without a reply", url=self.shown_url,
                                   reason="rate limited",
                                   hint="the gateway allows 100 requests/60 s per token: scrape less often")


def fetch_metrics(url: str, *, token: Secret | None = None, timeout_s: float = 5.0,
                  max_bytes: int = MAX_BODY_BYTES) -> MetricsReply:
    """Scrape ``url`` once (adds ``/metrics`` if missing); see :class:`MetricsClient`."""
    return MetricsClient(url, token=token, timeout_s=timeout_s, max_bytes=max_bytes).fetch()
