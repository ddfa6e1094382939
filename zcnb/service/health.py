"""Health wait: poll /health until healthy or timeout, and say *why* it is not healthy.

The real gateway serves one connection at a time, so a timed-out probe while the process lives is "busy",
not "down"; a connection closed with no reply is its rate limit; 401 means the token is missing or wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..collect.bounded import DeadlineExceeded, ReplyTooLarge, get_bounded
from ..collect.budget import RequestBudget, budget_for_url
from ..config import Secret
from ..exceptions import ConfigError, RequestBudgetExhausted

__all__ = ["HEALTH_STATES", "HealthResult", "pid_alive", "probe_health", "wait_healthy"]

HEALTH_MAX_BYTES = 1024 * 1024  # a /health reply is a few bytes; anything past 1 MiB is not a health reply

HEALTH_STATES = ("healthy", "busy", "down", "unreachable", "unauthorized", "rate_limited", "unexpected", "not_probed",
                 "throttled")
_ADVICE = {
    "healthy": "",
    "busy": "the process is alive but /health did not answer in time (the gateway is single-threaded; an agent "
            "turn may hold it): wait and probe again before restarting",
    "down": "the port refuses connections (and the process, when a pid was given, is gone): start it, or check "
            "why it exited in the journal",
    "unreachable": "nothing answers on that port: check host/port (GATEWAY_PORT) and whether the service runs",
    "unauthorized": "the endpoint answered 401: set the token env var ({env}) to the gateway's token",
    "rate_limited": "the connection was closed without a reply (rate limit: 100 requests/60 s per token): "
                    "wait a minute before probing again",
    "unexpected": "the endpoint answered, but not with a healthy reply: read `detail`",
    "throttled": "not probed: zcnb's shared request budget for this gateway had no free slot in time (it keeps "
                 "every zcnb process together well under the gateway's 100 requests/60 s): try again in a minute, "
                 "or stop another zcnb poller",
    "not_probed": "no gateway token is set, so /health was not probed (on the real gateway every token-less request "
                  "leaks memory): set the token env var or token_file to verify health",
}


def pid_alive(pid: int | None) -> bool | None:
    """True/False for a pid (a zombie counts as dead); None when no pid was given."""
    if pid is None:
        return None
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True


@dataclass(frozen=True)
class HealthResult:
    """Outcome of a health wait (or a single probe)."""

    url: str
    state: str
    detail: str = ""
    status_code: int | None = None
    body_status: str | None = None
    extras: tuple[str, ...] = ()  # extra top-level keys of the body (newer gateways add whatsapp, turns)
    attempts: int = 0
    elapsed_s: float = 0.0
    pid: int | None = None
    pid_alive: bool | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    token_env: str | None = None  # NAME of the env var the token came from (for the 401 advice); None: the settings'
    token_sent: bool | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    @property
    def advice(self) -> str:
        if self.state != "unauthorized":
            return _ADVICE.get(self.state, "")
        where = _token_where(self.token_env)
        if self.token_sent is False:
            return (f"the endpoint answered 401 and no token was sent: put the gateway's token in the {where}; "
                    "note that on the real gateway every token-less request leaks memory")
        if self.token_sent:
            return f"the endpoint answered 401: the token from the {where} was rejected (wrong or expired): fix it"
        return _ADVICE["unauthorized"].format(env=self.token_env or _token_where(None))

    def summary(self) -> str:
        """One line for ActionResult.health_before/after (no token, no body)."""
        pid = "" if self.pid is None else f", pid {self.pid} {'alive' if self.pid_alive else 'gone'}"
        return f"{self.state} after {self.elapsed_s:.1f} s ({self.attempts} probes{pid})"

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "state": self.state, "healthy": self.healthy, "detail": self.detail,
                "status_code": self.status_code, "body_status": self.body_status, "extras": list(self.extras),
                "attempts": self.attempts, "elapsed_s": round(self.elapsed_s, 3), "pid": self.pid,
                "pid_alive": self.pid_alive, "checked_at": self.checked_at.isoformat(), "advice": self.advice}

    def _repr_markdown_(self) -> str:
        mark = "✅" if self.healthy else ("❔" if self.state == "not_probed" else "❌")
        lines = [f"{mark} **{self.state}** `{self.url}` ({self.attempts} probes, {self.elapsed_s:.1f} s)"]
        if self.detail:
            lines.append(f"\n{self.detail}")
        if self.advice:
            lines.append(f"\n_{self.advice}_")
        return "\n".join(lines)


def _token_where(token_env: str | None) -> str:
    """``env var NAME (or ...)`` for the 401 advice: the name actually used, else the settings' token_env."""
    from ..config import load_settings, token_source

    try:
        return token_source(token_env, settings=load_settings())
    except ConfigError:
        return f"env var {token_env or 'GATEWAY_AUTH_TOKEN'}"


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"health URL {url!r} is not an http(s) URL", hint="give e.g. http://127.0.0.1:18789/health",
                          url=url)


def _judge_body(status: int, text: str, expect: str) -> tuple[str, str, str | None, tuple[str, ...]]:
    """-> (state, detail, body_status, extras)."""
    if status == 401:
        try:
            err = str(json.loads(text).get("error", ""))
        except (ValueError, AttributeError):
            err = text[:80]
        return "unauthorized", f"401 {err}".strip(), None, ()
    if status == 429:
        return "rate_limited", "429 Too Many Requests", None, ()
    if expect == "text-ok":
        ok = status == 200 and text.strip().lower() in ("ok", '"ok"')
        return ("healthy" if ok else "unexpected"), ("" if ok else f"HTTP {status}, body {text[:60]!r}"), None, ()
    try:
        body = json.loads(text)
    except ValueError:
        return "unexpected", f"HTTP {status}, body is not JSON: {text[:60]!r}", None, ()
    if not isinstance(body, dict):
        return "unexpected", f"HTTP {status}, body is JSON but not an object", None, ()
    bstatus = body.get("status")
    extras = tuple(sorted(k for k in body if k != "status"))
    if status == 200 and str(bstatus).lower() in ("healthy", "ok"):
        return "healthy", "", str(bstatus), extras
    return "unexpected", f"HTTP {status}, status={bstatus!r}", None if bstatus is None else str(bstatus), extras


def probe_health(url: str, *, token: Secret | None = None, timeout_s: float = 2.0, pid: int | None = None,
                 expect: str = "json-healthy", token_env: str | None = None, budget: RequestBudget | None = None,
                 budget_wait_s: float = 0.0) -> HealthResult:
    """One probe of ``url`` (``token_env``: the env var NAME the token came from, named in the 401 advice).

    The probe first takes a slot of the gateway's request budget (waiting up to ``budget_wait_s``); without
    one nothing is sent and the state is ``throttled``.
    """
    import httpx

    _check_url(url)
    t0 = time.monotonic()
    try:
        grant = (budget or budget_for_url(url)).acquire(token=bool(token), wait_s=budget_wait_s, caller="health")
    except RequestBudgetExhausted as exc:
        return HealthResult(url=url, state="throttled", detail=exc.message, attempts=0,
                            elapsed_s=time.monotonic() - t0, pid=pid, pid_alive=pid_alive(pid), token_env=token_env,
                            token_sent=False)
    headers = {"X-Auth-Token": token.reveal()} if token else {}
    status_code: int | None = None
    body_status: str | None = None
    extras: tuple[str, ...] = ()
    try:
        # Bounded like every network read: HEALTH_MAX_BYTES of body, one deadline for the whole reply.
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            resp = get_bounded(client, url, headers=headers, max_bytes=HEALTH_MAX_BYTES,
                               deadline=time.monotonic() + timeout_s)
        status_code = resp.status_code
        state, detail, body_status, extras = _judge_body(resp.status_code,
                                                         resp.content.decode("utf-8", errors="replace"), expect)
    except ReplyTooLarge as exc:
        state, detail = "unexpected", f"reply body larger than {HEALTH_MAX_BYTES} bytes (read {exc.size}); stopped reading"
    except (httpx.TimeoutException, DeadlineExceeded):
        alive = pid_alive(pid)
        state = "busy" if alive else ("down" if alive is False else "unreachable")
        detail = f"no reply within {timeout_s:.1f} s" + ("" if alive is None else f"; process {'alive' if alive else 'gone'}")
    except httpx.ConnectError as exc:
        alive = pid_alive(pid)
        state = "down" if alive is False or (alive is None and "refused" in str(exc).lower()) else "unreachable"
        detail = "connection refused" if "refused" in str(exc).lower() else f"cannot connect ({type(exc).__name__})"
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        # A connection closed with no reply is the real gateway's rate limit (unless the process died).
        alive = pid_alive(pid)
        state = "down" if alive is False else "rate_limited"
        detail = f"connection closed without a reply ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        state, detail = "unexpected", f"{type(exc).__name__}: {str(exc)[:100]}"
    if grant.note():
        detail = f"{detail} ({grant.note()})".strip() if detail else grant.note()
    return HealthResult(url=url, state=state, detail=detail, status_code=status_code, body_status=body_status,
                        extras=extras, attempts=1, elapsed_s=time.monotonic() - t0, pid=pid, pid_alive=pid_alive(pid),
                        token_env=token_env, token_sent=bool(token))


def wait_healthy(url: str, *, token: Secret | None, timeout_s: float = 30.0, pid: int | None = None,
                 interval_s: float = 0.5, probe_timeout_s: float = 2.0, expect: str = "json-healthy",
                 pid_getter: Callable[[], int | None] | None = None, token_env: str | None = None) -> HealthResult:
    """Poll ``url`` until healthy or ``timeout_s``; stop early on 401, rate limit, or a dead process.

    ``pid_getter`` is asked each round (the pid changes across a restart); ``pid`` is a fixed alternative.
    Each probe waits (within ``timeout_s``) for a slot of the gateway's request budget; when none frees in
    time the result is ``throttled`` and says so.
    """
    if timeout_s < 0 or interval_s <= 0:
        raise ConfigError("timeout_s must be >= 0 and interval_s > 0", hint="e.g. timeout_s=30, interval_s=0.5")
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    attempts = 0
    while True:
        cur = pid_getter() if pid_getter is not None else pid
        left = max(0.1, min(probe_timeout_s, deadline - time.monotonic()))
        res = probe_health(url, token=token, timeout_s=left, pid=cur, expect=expect, token_env=token_env,
                           budget_wait_s=max(0.0, deadline - time.monotonic()))
        attempts += res.attempts
        final = res.state in ("healthy", "unauthorized", "rate_limited", "throttled") or (
            res.state == "down" and cur is not None)
        if final or time.monotonic() + interval_s > deadline:
            return HealthResult(url=res.url, state=res.state, detail=res.detail, status_code=res.status_code,
                                body_status=res.body_status, extras=res.extras, attempts=attempts,
                                elapsed_s=time.monotonic() - t0, pid=cur, pid_alive=res.pid_alive,
                                token_env=token_env, token_sent=res.token_sent)
        time.sleep(interval_s)
