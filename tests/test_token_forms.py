"""Hostile token values and credentials in parameters: refused where they are read, never written anywhere.

Every CLI run here is a real subprocess against a real simulated gateway on loopback (so a token that got past
the checks would really be sent, and httpx's "Illegal header value b'...'" message would really be made);
afterwards every file under the test's folder and the captured terminal output are searched for every form
the token can take (as is, repr of the text and of its bytes, JSON-escaped, URL-encoded, lower/upper case,
the pieces between line breaks).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from zcnb.cli import main
from zcnb.config import read_token
from zcnb.exceptions import ConfigError
from zcnb.redact import Redactor, secret_forms
from zcnb.report.runner import run_incident

ROOT = Path(__file__).resolve().parents[1]

# (id, value): each is refused where it is read; none may appear anywhere afterwards.
BAD_TOKENS = [
    ("newline", "zcnbTOKEN-4f9a2c7e\nsecond-line-b81d"),
    ("carriage-return", "zcnbTOKEN-77aa31c9\rrest-of-it-5c2e"),
    ("tab", "zcnbTOKEN-9c1d04be\tafter-tab-61f0"),
    ("escape", "zcnbTOKEN-1b2c3d4e\x1b[31mred-99"),
    ("delete", "zcnbTOKEN-5e6f7a8b\x7fdel-4242"),
    ("non-ascii", "zcnbTOKEN-c0ffee42-émoji-✓-kéy"),
    ("latin1-c1", "zcnbTOKEN-d00dfeed\x85nel-7f7f"),
]


def _forms(value: str) -> set[str]:
    forms = secret_forms(value)
    return forms | {f.lower() for f in forms} | {f.upper() for f in forms}


def _leaks(value: str, folder: Path, *texts: str) -> list[str]:
    """Where any form of ``value`` shows up: file paths under ``folder`` and 'terminal'."""
    forms = [f.encode("utf-8", "surrogateescape") for f in _forms(value)]
    found = []
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            if any(f in data or f.lower() in data.lower() for f in forms):
                found.append(str(p))
    for t in texts:
        data = t.encode("utf-8", "surrogateescape")
        if any(f in data or f.lower() in data.lower() for f in forms):
            found.append("terminal")
    return found


def _zcnb(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "zcnb", *args], env=full_env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False, errors="surrogateescape")


@pytest.fixture
def gateway(sim_gateway: Callable[..., Any]) -> Any:
    return sim_gateway(profile="real")


@pytest.mark.parametrize(("name", "value"), BAD_TOKENS, ids=[n for n, _ in BAD_TOKENS])
def test_bad_env_token_is_refused_by_preflight_and_sample_and_never_written(
        name: str, value: str, gateway: Any, tmp_path: Path) -> None:
    work = tmp_path / "run"
    work.mkdir()
    env = {"GATEWAY_AUTH_TOKEN": value, "HOME": str(tmp_path), "XDG_DATA_HOME": str(work / "data"),
           "XDG_CONFIG_HOME": str(work / "cfg"), "TMPDIR": str(work)}
    runs = [
        _zcnb(["preflight", "--url", gateway.url, "--pid", str(gateway.pid), "--json", str(work / "preflight.json")],
              env, work),
        _zcnb(["sample", "--pid", str(gateway.pid), "--url", gateway.url, "--sources", "psutil,metrics",
               "--interval", "0.2", "--duration", "1", "--out", str(work / "samples.csv"), "--no-progress"], env, work),
    ]
    for r in runs:
        assert r.returncode == 2, (r.args, r.stdout, r.stderr)
        assert "the token in env var GATEWAY_AUTH_TOKEN holds" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert _leaks(value, work, *(r.stdout + r.stderr for r in runs)) == []


def test_bad_token_file_is_refused_naming_the_file(gateway: Any, tmp_path: Path) -> None:
    work = tmp_path / "run"
    work.mkdir()
    tok = work / "token"
    for raw, what in ((b"zcnbTOKEN-\xff\xfe-binary-4242\n", "is not UTF-8 text"),
                      (b"zcnbTOKEN-0123abcd\nzcnbTOKEN-second-line\n", "holds a control character")):
        tok.write_bytes(raw)
        tok.chmod(0o600)
        cfg = work / "config.toml"
        cfg.write_text(f'token_file = "{tok}"\n')
        env = {"ZCNB_CONFIG": str(cfg), "GATEWAY_AUTH_TOKEN": "", "HOME": str(tmp_path)}
        r = _zcnb(["preflight", "--url", gateway.url, "--pid", str(gateway.pid)], env, work)
        assert r.returncode == 2 and f"token file {tok}" in r.stderr and what in r.stderr, r.stderr
        assert b"zcnbTOKEN" not in (r.stdout + r.stderr).encode("utf-8", "surrogateescape")


def test_demo_refuses_a_bad_token_before_starting_anything(tmp_path: Path) -> None:
    value = BAD_TOKENS[0][1]
    work = tmp_path / "run"
    work.mkdir()
    r = _zcnb(["demo", "--incidents-dir", str(work / "incidents"), "--no-progress"],
              {"GATEWAY_AUTH_TOKEN": value, "HOME": str(tmp_path), "TMPDIR": str(work)}, work, timeout=60)
    assert r.returncode == 2 and "env var GATEWAY_AUTH_TOKEN" in r.stderr, r.stderr
    assert _leaks(value, work, r.stdout, r.stderr) == []
    assert not list(work.glob("zcnb-*"))  # no temp folder started (nor left)


def test_read_token_accepts_printable_ascii_and_names_the_source() -> None:
    assert read_token("T", env={"T": "  abc-DEF_123.~+/=  "}).reveal() == "abc-DEF_123.~+/="  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as info:
        read_token("T", env={"T": "abc\ndef"})
    assert "env var T" in str(info.value) and "abc" not in str(info.value)
    # basic-auth parts are sent base64-encoded: non-ASCII is fine there, control characters are not
    assert read_token("T", env={"T": "pässwörd"}, ascii_only=False).reveal() == "pässwörd"  # type: ignore[union-attr]
    with pytest.raises(ConfigError):
        read_token("T", env={"T": "pass\nword"}, ascii_only=False)


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP server that accepts and closes: enough for httpx to build and send a request."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


@pytest.mark.parametrize(("name", "value"), BAD_TOKENS, ids=[n for n, _ in BAD_TOKENS])
def test_redactor_hides_every_form_including_httpx_illegal_header_messages(name: str, value: str, listener: int) -> None:
    r = Redactor.create(secrets=[value])
    try:
        httpx.get(f"http://127.0.0.1:{listener}/metrics", headers={"X-Auth-Token": value}, timeout=2)
        messages: list[str] = []
    except Exception as exc:  # noqa: BLE001  whatever httpx raises for this value: its text is what gets stored
        messages = [str(exc), repr(exc)]
    messages += [f"note: {f}" for f in _forms(value)]
    messages += [line for line in f"Main Token: {value}\n".splitlines()]  # a line-oriented store splits it
    for m in messages:
        out = r.redact(m)
        assert not any(f in out for f in _forms(value) if len(f) >= 8), (m, out)


PARAM_CREDENTIALS = [
    ("url-userinfo", "01.url=http://admin:hunter2pw@127.0.0.1:18789"),
    ("prometheus-userinfo", "01.prometheus_url=https://ops:s3cr3tpass@prom.example:9090"),
    ("sk-key", "03.note=sk-abcdefghijklmnop1234"),
    ("nvapi-key", "note=nvapi-0123456789abcdefXYZ"),
    ("bearer", "01.promql=up{auth=\"Bearer abcdef0123456789\"}"),
    ("jwt", "note=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
    ("keyed", "01.url=http://127.0.0.1:18789/?token=abcd1234efgh"),
]


@pytest.mark.parametrize(("name", "param"), PARAM_CREDENTIALS, ids=[n for n, _ in PARAM_CREDENTIALS])
def test_credentials_in_parameters_are_refused_before_papermill_stores_them(
        name: str, param: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    incidents = tmp_path / "incidents"
    rc = main(["report", "--incidents-dir", str(incidents), "-p", "live=true", "-p", param, "--no-progress"])
    out = capsys.readouterr()
    secret = param.split("=", 1)[1]
    assert rc == 2 and "is refused (the value is not shown)" in out.err, out.err
    for piece in (secret, "hunter2pw", "s3cr3tpass", "abcdefghijklmnop1234", "abcdef0123456789", "abcd1234efgh"):
        if piece in secret:
            assert piece not in out.out + out.err
    assert not incidents.exists() or not any(incidents.iterdir())  # nothing was run, nothing was written


def test_run_incident_refuses_nested_credentials_and_the_gateway_token(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="credentials in a URL"):
        run_incident(incidents_dir=tmp_path, parameters={"urls": ["http://127.0.0.1", "http://u:pw@h"]})
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", "plain-token-value-42")
    with pytest.raises(ConfigError, match="the gateway token"):
        run_incident(incidents_dir=tmp_path, stage_parameters={"01": {"url": "http://h/plain-token-value-42"}})
    assert not any(tmp_path.iterdir())
