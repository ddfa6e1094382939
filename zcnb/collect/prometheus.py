"""Read memory history from a Prometheus server's HTTP API (``/api/v1/query_range``).

:func:`query_range` returns the live sampler's samples layout (docs/CONTRACTS.md
"Samples") plus an ``instance`` column, one series per instance, so the same
analysis runs on Prometheus history as on a live sample. Long ranges are split
into chunks under Prometheus' 11,000-points-per-series limit and merged.
Credentials come from environment variables named in :class:`PrometheusAuth`;
their values never appear in arguments, frames, errors or output.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

from ..config import Secret, read_token
from ..exceptions import ConfigError, PrometheusError
from ..redact import safe_url
from ..units import format_bytes, parse_duration, to_epoch
from .bounded import BoundedReply, DeadlineExceeded, ReplyTooLarge, get_bounded

__all__ = [
    "MAX_POINTS_PER_SERIES",
    "MAX_RESPONSE_BYTES",
    "SAMPLE_COLUMNS",
    "PrometheusAuth",
    "check_url",
    "query_instant",
    "query_range",
    "samples_frame",
]

MAX_POINTS_PER_SERIES = 11_000  # Prometheus refuses (end-start)/step > 11000
MAX_RESPONSE_BYTES = 512 * 1024 * 1024  # per API reply; 1,000 series x 5,760 points is ~170 MB of JSON
SAMPLE_COLUMNS = ("timestamp", "pid", "source", "rss_bytes", "vms_bytes", "uss_bytes", "pss_bytes",
                  "cgroup_bytes", "metrics_rss_bytes", "metrics_vms_bytes", "event", "note")
_VALUE_COLUMNS = SAMPLE_COLUMNS[3:10]
_RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class PrometheusAuth:
    """Names of the environment variables holding credentials (never the values).

    Either ``bearer_token_env`` or both ``basic_user_env`` and ``basic_password_env``.
    """

    bearer_token_env: str | None = None
    basic_user_env: str | None = None
    basic_password_env: str | None = None

    def __post_init__(self) -> None:
        basic = (self.basic_user_env, self.basic_password_env)
        if self.bearer_token_env and any(basic):
            raise ConfigError("give either a bearer token or basic auth for Prometheus, not both",
                              hint="drop one of --bearer-token-env / --basic-user-env")
        if any(basic) and not all(basic):
            raise ConfigError("basic auth needs both a user and a password environment variable",
                              hint="set basic_user_env and basic_password_env (CLI: --basic-user-env, --basic-password-env)")

    def headers(self, *, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The Authorization header, read from the environment at call time."""
        if self.bearer_token_env:
            token = self._read(self.bearer_token_env, env)
            return {"Authorization": f"Bearer {token.reveal()}"}
        if self.basic_user_env and self.basic_password_env:
            user = self._read(self.basic_user_env, env, ascii_only=False)  # sent base64-encoded
            password = self._read(self.basic_password_env, env, ascii_only=False)
            raw = f"{user.reveal()}:{password.reveal()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    @staticmethod
    def _read(name: str, env: Mapping[str, str] | None, *, ascii_only: bool = True) -> Secret:
        secret = read_token(name, env=env, ascii_only=ascii_only)
        if secret is None:
            raise ConfigError(f"environment variable {name} (named for Prometheus auth) is not set or empty",
                              hint=f"export {name}=... before running, or drop the auth option")
        return secret

    def to_dict(self) -> dict[str, Any]:
        return {"bearer_token_env": self.bearer_token_env, "basic_user_env": self.basic_user_env,
                "basic_password_env": self.basic_password_env}

    def _repr_markdown_(self) -> str:
        if self.bearer_token_env:
            return f"bearer token from `${self.bearer_token_env}`"
        if self.basic_user_env:
            return f"basic auth from `${self.basic_user_env}` / `${self.basic_password_env}`"
        return "no auth"


def check_url(url: str) -> str:
    """Validate a Prometheus base URL and return it without a trailing API path."""
    shown = safe_url(url)  # messages never carry user:password@ or secret query values
    try:
        parts = urlsplit(url)
    except ValueError:
        raise PrometheusError(f"bad Prometheus URL {shown!r}", hint="use e.g. http://127.0.0.1:9090", url=shown) from None
    if parts.scheme not in ("http", "https"):
        raise PrometheusError(f"refusing Prometheus URL with scheme {parts.scheme or '(none)'!r}: only http and https",
                              hint="use e.g. http://127.0.0.1:9090", url=shown)
    if not parts.hostname:
        raise PrometheusError(f"Prometheus URL {shown!r} has no host", hint="use e.g. http://127.0.0.1:9090", url=shown)
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and error messages: take them from env instead.
        raise PrometheusError("refusing a Prometheus URL with credentials in it",
                              hint="remove user:password@ and use --basic-user-env/--basic-password-env or --bearer-token-env",
                              url=f"{parts.scheme}://{parts.hostname}")
    try:
        _ = parts.port
    except ValueError:
        raise PrometheusError(f"Prometheus URL {shown!r} has an invalid port", hint="use e.g. http://127.0.0.1:9090",
                              url=shown) from None
    base = url.split("?", 1)[0].rstrip("/")
    for suffix in ("/api/v1/query_range", "/api/v1/query"):
        base = base.removesuffix(suffix)
    return base


def _client(timeout_s: float, transport: httpx.BaseTransport | None) -> httpx.Client:
    """An API client that ignores HTTP(S)_PROXY/ALL_PROXY: the Authorization header goes to Prometheus only."""
    return httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False, trust_env=False)


def _api_get(client: httpx.Client, base: str, endpoint: str, params: dict[str, str], *, headers: dict[str, str],
             retries: int, backoff_s: float, sleep: Callable[[float], None], deadline: float,
             timeout_s: float, max_bytes: int) -> dict[str, Any]:
    """One API call with retries on 5xx/429 and connection errors, all within ``deadline``; returns ``data``.

    Every reply is read through :func:`zcnb.collect.bounded.get_bounded`: at most ``max_bytes`` and never past
    the deadline (``timeout_s`` is the caller's total, shown in messages).
    """
    url = f"{base}/api/v1/{endpoint}"
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            pause = min(backoff_s * 2 ** (attempt - 1), 30.0)
            if time.monotonic() + pause >= deadline:
                break
            sleep(pause)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if "timeout" in params:  # ask Prometheus to give up before we do
            params = {**params, "timeout": f"{max(int(left * 1000), 1)}ms"}
        try:
            resp = get_bounded(client, url, params=params, headers=headers, max_bytes=max_bytes, deadline=deadline)
        except ReplyTooLarge as exc:
            raise PrometheusError(
                f"Prometheus reply from {base} is larger than {format_bytes(exc.limit)} "
                + (f"(announced {format_bytes(exc.size)}; not read)" if exc.announced
                   else f"(stopped reading at {format_bytes(exc.size)})"), url=base,
                hint="narrow the query (a label filter, a coarser --step, a shorter --since) or raise the cap "
                     "(--max-response)") from None
        except DeadlineExceeded as exc:
            raise PrometheusError(
                f"Prometheus at {base} did not complete the reply within the {timeout_s:g} s deadline "
                f"({format_bytes(exc.read)} received)", url=base,
                hint="raise --timeout (the total for the whole query), or narrow the query / coarsen --step") from None
        except httpx.TimeoutException:
            last = f"timed out (deadline {timeout_s:g} s)"
            continue
        except (httpx.TransportError, OSError) as exc:
            last = f"cannot connect ({type(exc).__name__})"
            continue
        if resp.status_code in _RETRY_STATUS:
            last = f"HTTP {resp.status_code}: {_api_error(resp) or resp.reason_phrase}"
            continue
        return _decode(resp, url)
    if not last:
        last = f"the {timeout_s:g} s deadline passed"
    raise PrometheusError(f"Prometheus at {base} failed after {retries + 1} attempt(s): {last}",
                          hint="check that Prometheus is running and the URL/port are right; raise --timeout for slow queries",
                          url=base)


def _json(resp: BoundedReply) -> Any:
    try:
        return json.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _api_error(resp: BoundedReply) -> str:
    body = _json(resp)
    if isinstance(body, dict) and body.get("status") == "error":
        return f"{body.get('errorType', 'error')}: {body.get('error', '')}"
    return ""


def _decode(resp: BoundedReply, url: str) -> dict[str, Any]:
    if resp.status_code in (401, 403):
        raise PrometheusError(f"Prometheus refused the request: HTTP {resp.status_code} (authentication failed)",
                              hint="check the credentials in the env vars named by --bearer-token-env / --basic-*-env",
                              url=url, status=resp.status_code)
    body = _json(resp)
    if isinstance(body, dict) and body.get("status") == "error":
        raise PrometheusError(f"Prometheus rejected the query ({body.get('errorType', 'error')}): {body.get('error', '')}",
                              hint="fix the PromQL expression (try it in the Prometheus UI) or the time range/step",
                              url=url, status=resp.status_code, error_type=str(body.get("errorType", "")))
    if resp.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
        raise PrometheusError(f"unexpected reply from {url}: HTTP {resp.status_code}, not a Prometheus API response",
                              hint="point --prometheus-url at the Prometheus server root, e.g. http://127.0.0.1:9090",
                              url=url, status=resp.status_code)
    data = body.get("data")
    if not isinstance(data, dict):
        raise PrometheusError(f"Prometheus reply from {url} has no data", hint="check the server version", url=url)
    return data


def _chunks(start: float, end: float, step: float, max_points: int) -> list[tuple[float, float]]:
    """Split [start, end] on the step grid so each chunk has at most ``max_points`` points."""
    if max_points < 2:
        raise ConfigError("max_points_per_series must be at least 2", hint="use the default 11000")
    out: list[tuple[float, float]] = []
    k = 0
    while True:
        # Chunk k covers grid points k*max_points .. (k+1)*max_points-1: no overlap, no drift.
        s = start + k * max_points * step
        if s > end:
            return out
        out.append((s, min(s + (max_points - 1) * step, end)))
        k += 1


def _series_keys(labels: list[dict[str, str]], instance_label: str) -> list[str]:
    """A readable, unique key per series: its instance label, plus labels that tell clashes apart."""
    def fmt(lab: dict[str, str], keys: list[str]) -> str:
        return "{" + ",".join(f'{k}="{lab.get(k, "")}"' for k in keys) + "}"

    base = []
    for lab in labels:
        if instance_label in lab:
            base.append(lab[instance_label])
        else:
            rest = sorted(k for k in lab if k != "__name__")
            base.append(fmt(lab, rest) if rest else lab.get("__name__", "series"))
    counts: dict[str, list[int]] = {}
    for i, key in enumerate(base):
        counts.setdefault(key, []).append(i)
    keys = list(base)
    for key, idx in counts.items():
        if len(idx) > 1:
            all_keys = sorted({k for i in idx for k in labels[i]} - {instance_label, "__name__"})
            differing = [k for k in all_keys if len({labels[i].get(k) for i in idx}) > 1]
            for i in idx:
                keys[i] = key + fmt(labels[i], differing or all_keys)
    return keys


def query_range(url: str, promql: str, *, start: datetime | float | str, end: datetime | float | str,
                step: float | str = "15s", auth: PrometheusAuth | None = None, timeout_s: float = 30.0,
                retries: int = 3, backoff_s: float = 0.5, max_points_per_series: int = MAX_POINTS_PER_SERIES,
                value_column: str = "rss_bytes", instance_label: str = "instance",
                transport: httpx.BaseTransport | None = None,
                sleep: Callable[[float], None] = time.sleep,
                max_response_bytes: int = MAX_RESPONSE_BYTES) -> pd.DataFrame:
    """Run a PromQL range query and return samples (one series per ``instance_label`` value).

    ``timeout_s`` is the deadline for the whole call (every chunk and retry); each reply is read up to
    ``max_response_bytes``. Either exceeded is a :class:`PrometheusError` saying which.

    Columns: the samples layout (``source`` = "prometheus", ``pid`` NA, values in
    ``value_column``) plus ``instance``; sorted by instance then time.
    """
    if value_column not in _VALUE_COLUMNS:
        raise ConfigError(f"value_column {value_column!r} is not a samples column", hint=f"one of {', '.join(_VALUE_COLUMNS)}")
    if not promql or not promql.strip():
        raise ConfigError("empty PromQL query", hint="e.g. process_resident_memory_bytes{job=\"zeptoclaw-gateway\"}")
    base = check_url(url)
    t0, t1, dt = to_epoch(start), to_epoch(end), parse_duration(step)
    if t0 is None or t1 is None:
        raise ConfigError("a range query needs a start and an end time", hint="e.g. --since 1h (the end is now)")
    if t1 < t0:
        raise ConfigError("query end is before its start", hint="swap start and end, or shorten --since")
    _check_bounds(timeout_s, max_response_bytes)
    deadline = time.monotonic() + timeout_s
    headers = auth.headers() if auth else {}
    merged: dict[tuple[tuple[str, str], ...], list[np.ndarray]] = {}
    with _client(timeout_s, transport) as client:
        for s, e in _chunks(t0, t1, dt, max_points_per_series):
            params = {"query": promql, "start": _fmt(s), "end": _fmt(e), "step": _fmt(dt), "timeout": _fmt(timeout_s) + "s"}
            data = _api_get(client, base, "query_range", params, headers=headers, retries=retries,
                            backoff_s=backoff_s, sleep=sleep, deadline=deadline, timeout_s=timeout_s,
                            max_bytes=max_response_bytes)
            if data.get("resultType") != "matrix":
                raise PrometheusError(f"range query returned {data.get('resultType')!r}, expected a matrix",
                                      hint="use an expression that yields an instant vector", url=base)
            for series in data.get("result") or []:
                key = tuple(sorted((series.get("metric") or {}).items()))
                values = series.get("values") or []
                if values:
                    merged.setdefault(key, []).append(np.asarray(values, dtype=object).reshape(-1, 2))
    return _to_frame(merged, value_column=value_column, instance_label=instance_label)


def _to_frame(merged: dict[tuple[tuple[str, str], ...], list[np.ndarray]], *, value_column: str,
              instance_label: str) -> pd.DataFrame:
    labels = [dict(k) for k in merged]
    keys = _series_keys(labels, instance_label)
    names: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    vals_all: list[np.ndarray] = []
    for key, parts in zip(keys, merged.values()):
        arr = np.concatenate(parts)
        ts = arr[:, 0].astype(np.float64)
        vals = np.array(arr[:, 1].tolist(), dtype=np.float64)  # "NaN", "+Inf" parse too
        ts, first = np.unique(ts, return_index=True)  # sorted, one value per timestamp
        names.append(np.full(len(ts), key, dtype=object))
        stamps.append(ts)
        vals_all.append(vals[first])
    if names:
        return samples_frame(np.concatenate(names), np.concatenate(stamps), np.concatenate(vals_all),
                             value_column=value_column)
    return samples_frame(np.empty(0, dtype=object), np.empty(0), np.empty(0), value_column=value_column)


def samples_frame(instance: np.ndarray | list[str], ts: np.ndarray, values: np.ndarray, *,
                  value_column: str = "rss_bytes", source: str = "prometheus") -> pd.DataFrame:
    """Build a samples-layout frame with an ``instance`` column from epoch seconds and values."""
    n = len(ts)
    stamps = pd.to_datetime(np.round(np.asarray(ts, dtype=np.float64) * 1000).astype(np.int64), unit="ms", utc=True)
    cols: dict[str, Any] = {"timestamp": stamps.astype("datetime64[ns, UTC]"), "pid": pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)),
                            "source": np.full(n, source, dtype=object)}
    for col in _VALUE_COLUMNS:
        cols[col] = np.asarray(values, dtype=np.float64) if col == value_column else np.full(n, np.nan)
    cols["event"] = np.full(n, "", dtype=object)
    cols["note"] = np.full(n, "", dtype=object)
    cols["instance"] = np.asarray(instance, dtype=object)
    df = pd.DataFrame(cols)
    return df.sort_values(["instance", "timestamp"], kind="stable", ignore_index=True)


def query_instant(url: str, promql: str, *, at: datetime | float | str | None = None,
                  auth: PrometheusAuth | None = None, timeout_s: float = 30.0, retries: int = 3,
                  backoff_s: float = 0.5, instance_label: str = "instance",
                  transport: httpx.BaseTransport | None = None,
                  sleep: Callable[[float], None] = time.sleep,
                  max_response_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, float]:
    """Run an instant query; return ``{series key: value}`` (keys as in :func:`query_range`).

    ``timeout_s``: the deadline for the whole call; replies read up to ``max_response_bytes``.
    """
    base = check_url(url)
    _check_bounds(timeout_s, max_response_bytes)
    deadline = time.monotonic() + timeout_s
    params = {"query": promql, "timeout": _fmt(timeout_s) + "s"}
    when = to_epoch(at)
    if when is not None:
        params["time"] = _fmt(when)
    headers = auth.headers() if auth else {}
    with _client(timeout_s, transport) as client:
        data = _api_get(client, base, "query", params, headers=headers, retries=retries, backoff_s=backoff_s, sleep=sleep,
                        deadline=deadline, timeout_s=timeout_s, max_bytes=max_response_bytes)
    if data.get("resultType") != "vector":
        raise PrometheusError(f"instant query returned {data.get('resultType')!r}, expected a vector",
                              hint="use an expression that yields an instant vector", url=base)
    result = data.get("result") or []
    labels = [dict(r.get("metric") or {}) for r in result]
    keys = _series_keys(labels, instance_label)
    return {k: float(r["value"][1]) for k, r in zip(keys, result)}


def _check_bounds(timeout_s: float, max_bytes: int) -> None:
    if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s < 1e6):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout_s!r}", hint="e.g. --timeout 30")
    if not (isinstance(max_bytes, int) and max_bytes > 0):
        raise ConfigError(f"the reply size cap must be a positive number of bytes, got {max_bytes!r}",
                          hint="e.g. --max-response 512MiB")


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")

