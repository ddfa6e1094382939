"""``zcnb receiver``: an Alertmanager webhook that runs the runbook's non-destructive stages on a leak alert.

HTTP on 127.0.0.1 by default:

- ``POST /alerts`` (also ``/``): the webhook. Needs ``Authorization: Bearer <token>``. Firing alerts labelled
  ``runbook="memory-leak"`` (``zcnb alert-rules`` sets it; ``--match`` changes it) start a run (see
  :mod:`zcnb.alerting.runs`); resolved ones go on their incident's timeline. Answers JSON with each alert's
  decision and incident folder; 503 when the queue is full (Alertmanager retries).
- ``GET /status`` (HTML) and ``/status.json``: every run with its state, verdict and report link.
- ``GET /incidents/<folder>/report.html``: an incident's report (only that file and the incidents index).
- ``GET /-/healthy``: liveness, no token.

The token comes from an environment variable or a 0600 file, is compared in constant time, and is never
logged. Without one the receiver refuses to start unless told ``--no-auth``.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..config import Secret
from ..exceptions import ConfigError
from ..monitor.rules import LEAK_RUNBOOK_LABEL
from .alerts import Alert, parse_webhook
from .runs import Decision, RunQueue, RunRecord

__all__ = ["Receiver", "read_receiver_token"]

MAX_BODY = 1 << 20
MIN_TOKEN_CHARS = 16
_INCIDENT_PATH = re.compile(r"^/incidents/([A-Za-z0-9][A-Za-z0-9._-]*)/report\.html$")


def read_receiver_token(*, token_env: str | None, token_file: str | None) -> Secret | None:
    """The webhook's bearer token from ``token_env`` or a 0600 ``token_file`` (None when neither is set)."""
    from ..config import read_token

    tok = read_token(token_env, file=token_file)
    if tok is not None and len(tok.reveal()) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the receiver token is shorter than {MIN_TOKEN_CHARS} characters",
                          hint="generate one: openssl rand -hex 32 > FILE && chmod 600 FILE")
    return tok


class Receiver:
    """The webhook HTTP server over a :class:`RunQueue`; ``start()``/``stop()`` or a context manager."""

    def __init__(self, queue: RunQueue, *, token: Secret | None, host: str = "127.0.0.1", port: int = 9841,
                 match: tuple[str, str] = ("runbook", LEAK_RUNBOOK_LABEL), status_without_token: bool = False,
                 external_url: str | None = None, log: Callable[[str], None] = print) -> None:
        self.queue, self.token, self.match, self.log = queue, token, match, log
        self.status_without_token = status_without_token
        self.host, self.port = host, port
        self.external_url = external_url.rstrip("/") if external_url else None
        self.deliveries = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.external_url:
            return self.external_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def report_url(self, rec: RunRecord) -> str | None:
        return f"{self.url}/incidents/{Path(rec.folder).name}/report.html" if rec.report else None

    def start(self) -> Receiver:
        import socket

        server_class = type("ReceiverServer", (ThreadingHTTPServer,),
                            {"address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET})
        try:
            self._server = server_class((self.host, self.port), _handler(self))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}",
                              hint="choose another --listen address or port (port 0 picks a free one)") from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.queue.start()
        self._thread = threading.Thread(target=self._server.serve_forever, name="zcnb-receiver-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.queue.stop()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- webhook ----------------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, value = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.reveal().encode())

    def handle_alerts(self, alerts: list[Alert]) -> tuple[int, list[dict[str, Any]]]:
        self.deliveries += 1
        out: list[dict[str, Any]] = []
        refused = False
        for a in alerts:
            if a.labels.get(self.match[0]) != self.match[1]:
                d = Decision("ignored", None, f"not a {self.match[0]}={self.match[1]} alert")
            elif a.status == "firing":
                d = self.queue.firing(a)
            else:
                d = self.queue.resolved(a)
            refused |= d.action == "refused"
            out.append(self._decision(a, d))
        return (503 if refused else 200), out

    def _decision(self, a: Alert, d: Decision) -> dict[str, Any]:
        row: dict[str, Any] = {"fingerprint": a.fingerprint, "alert": a.describe(), "status": a.status,
                               "decision": d.action, "reason": d.reason}
        if d.run is not None:
            row.update(run=d.run.id, incident=d.run.folder, report=d.run.report, report_url=self.report_url(d.run))
        if d.action in ("queued", "attached", "refused", "resolved"):
            where = f" -> {d.run.folder}" if d.run else ""
            self.log(f"zcnb receiver: {a.describe()} {a.status}: {d.action}{where}" + (f" ({d.reason})" if d.reason else ""))
        return row

    # -- status -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        runs = []
        for r in self.queue.runs():
            d = r.to_dict()
            d["report_url"] = self.report_url(r)
            runs.append(d)
        return {"receiver": self.url, "deliveries": self.deliveries, "queued": self.queue.queued(),
                "max_queue": self.queue.max_queue, "incidents_dir": str(self.queue.dir), "runs": runs}

    def status_html(self) -> str:
        esc = html.escape
        rows = []
        for r in self.status()["runs"]:
            link = (f"<a href='{esc(r['report_url'])}'>report.html</a><br><code>{esc(r['report'])}</code>"
                    if r["report_url"] else "-")
            when = datetime.fromtimestamp(r["received_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            cells = [str(r["id"]), when, esc(r["alertname"]), esc(r["instance"]), esc(r["pid"]), esc(r["status"]),
                     esc(str(r["verdict"] or "-")), str(r["deliveries"]), "yes" if r["resolved"] else "no", link,
                     esc(r["error"])]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("run", "received", "alert", "instance", "pid", "state", "verdict",
                                                 "deliveries", "resolved", "report", "error"))
        return ("<!doctype html><html><head><meta charset='utf-8'><title>zcnb receiver</title>"
                "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
                "<style>body{font-family:sans-serif}td,th{padding:4px 8px;border-bottom:1px solid #ddd;"
                "vertical-align:top}</style></head><body><h1>zcnb receiver: runs</h1>"
                f"<p>{self.queue.queued()} queued (at most {self.queue.max_queue}); incidents in "
                f"<code>{esc(str(self.queue.dir))}</code></p><table><tr>{head}</tr>{''.join(rows)}</table>"
                "</body></html>\n")

    def report_file(self, path: str) -> Path | None:
        """The report.html of an incident folder of this receiver (nothing else, no traversal)."""
        m = _INCIDENT_PATH.match(path)
        if not m:
            return None
        known = {Path(r.folder).name: Path(r.folder) for r in self.queue.runs()}
        folder = known.get(m.group(1))
        if folder is None:
            return None
        f = folder / "report.html"
        return f if f.is_file() and not f.is_symlink() else None


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "zcnb-receiver"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  the base class's name
            return  # request lines are not logged (decisions are); nothing secret ever is

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, (json.dumps(obj, sort_keys=True, default=str) + "\n").encode(), "application/json")

        def _auth(self) -> bool:
            if rx.authorized(self.headers.get("Authorization")):
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="zcnb receiver"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def do_POST(self) -> None:  # noqa: N802  http.server's naming
            if self.path.split("?")[0] not in ("/", "/alerts"):
                return self._json(404, {"error": "POST the webhook to /alerts"})
            if not self._auth():
                return None
            try:
                length = int(self.headers.get("Content-Length") or -1)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return self._json(413 if length > MAX_BODY else 411, {"error": f"body must be 0..{MAX_BODY} bytes"})
            try:
                alerts = parse_webhook(self.rfile.read(length))
            except ConfigError as exc:
                return self._json(400, {"error": str(exc)})
            code, rows = rx.handle_alerts(alerts)
            return self._json(code, {"results": rows})

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/-/healthy":
                return self._send(200, b"ok\n", "text/plain")
            if not rx.status_without_token and not self._auth():
                return None
            if path in ("/status.json",):
                return self._json(200, rx.status())
            if path in ("/", "/status"):
                return self._send(200, rx.status_html().encode(), "text/html; charset=utf-8")
            f = rx.report_file(path)
            if f is None:
                return self._json(404, {"error": "not found"})
            return self._send(200, f.read_bytes(), "text/html; charset=utf-8")

    return Handler
