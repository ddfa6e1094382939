"""Settings (config.toml / ZCNB_*) reach every entry point, and no token-less request is sent by accident.

Real loopback endpoints (tests/collection_helpers.FakeEndpoint records every request it gets), real processes,
the real CLI. On the real gateway every request without a valid token leaks memory (TARGET.md), so the tests
count the token-less requests each entry point sends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from collection_helpers import GOOD_BODY, REAL_BODY, FakeEndpoint, child

from zcnb.cli import main
from zcnb.collect.preflight import preflight
from zcnb.collect.sampling import read_samples, sample
from zcnb.config import Secret, gateway_token, load_settings
from zcnb.exceptions import ConfigError

TOKEN = "settings-token-0123456789abcdef"
NO_ENV = "ZCNB_TEST_UNSET_TOKEN_VAR"  # an env var name nobody sets: the token must come from token_file
TAG = "zcnb-settings-use-target"
REPO = Path(__file__).resolve().parents[1]


def _tokenless(ep: FakeEndpoint) -> int:
    return sum("x-auth-token:" not in r.lower() for r in ep.requests)


def _with_token(ep: FakeEndpoint) -> int:
    return sum(f"x-auth-token: {TOKEN}" in r.lower() for r in ep.requests)


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GATEWAY_AUTH_TOKEN", NO_ENV, "GATEWAY_PORT"):
        monkeypatch.delenv(var, raising=False)
    for var in [v for v in os.environ if v.startswith("ZCNB_")]:
        monkeypatch.delenv(var, raising=False)


def _token_file(tmp_path: Path) -> Path:
    f = tmp_path / "gateway.token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    return f


def _config(tmp_path: Path, **values: object) -> Path:
    """Write the documented ~/.config/zcnb/config.toml ($XDG_CONFIG_HOME points at a temp folder)."""
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "zcnb" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, v in values.items():
        if isinstance(v, (list, tuple)):
            lines.append(f"{k} = [{', '.join(json.dumps(str(x)) for x in v)}]")
        elif isinstance(v, (int, float)):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f"{k} = {json.dumps(str(v))}")
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@contextmanager
def detached(tag: str) -> Iterator[int]:
    """A real process that is NOT a child of this one (a pattern search excludes zcnb's own children)."""
    code = "import time\\nkeep=b'x'*(8*2**20)\\nwhile True: time.sleep(0.1)"
    out = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$(printf "{code}")" {tag} >/dev/null 2>&1 & echo $!'],
                         capture_output=True, text=True, check=True, timeout=10)
    pid = int(out.stdout.strip())
    try:
        import psutil

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and tag not in " ".join(psutil.Process(pid).cmdline()):
            time.sleep(0.05)
        yield pid
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- settings resolution -------------------------------------------------------------------------------------


def test_empty_overrides_keep_the_configured_values(tmp_path: Path) -> None:
    _config(tmp_path, unit="my-gateway.service", process_pattern="my-gw", token_env="MY_TOKEN_VAR", port=18111)
    s = load_settings(unit="", process_pattern="  ", token_env="", port=None)
    assert (s.unit, s.process_pattern, s.token_env, s.port) == ("my-gateway.service", "my-gw", "MY_TOKEN_VAR", 18111)
    assert load_settings(unit="other.service").unit == "other.service"
    assert load_settings().unit == "my-gateway.service"  # the documented file is read


def test_gateway_token_from_zcnb_env_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCNB_TOKEN_FILE", str(_token_file(tmp_path)))
    monkeypatch.setenv("ZCNB_TOKEN_ENV", NO_ENV)
    assert gateway_token() == Secret(TOKEN)
    monkeypatch.setenv(NO_ENV, "from-env")
    assert gateway_token() == Secret("from-env")  # the variable wins over the file


# -- stage 01 -----------------------------------------------------------------------------------------------


def test_stage01_live_preflight_uses_the_settings_for_empty_parameters(tmp_path: Path) -> None:
    """Notebook 01's defaults (unit/url/pattern/token_env all empty) must not override the settings."""
    from zcnb.incident import open_incident
    from zcnb.stages import confirm

    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep, detached(TAG) as pid:
        _config(tmp_path, port=ep.port, unit="my-gateway.service", process_pattern=TAG, token_env=NO_ENV,
                token_file=_token_file(tmp_path))
        inc = open_incident(tmp_path / "incident")
        r = confirm.run_preflight(inc, live=True, url="", token_env="", unit="", pattern="", pid=0)
    assert r.unit == "my-gateway.service"
    journal = r.check("journal")
    assert "for  " not in journal.detail and (journal.status == "skip" or "my-gateway.service" in journal.detail)
    assert r.pid == pid, r.format_text()  # found by the configured pattern
    assert r.check("metrics (with token)").status == "warn" and "NO status line" in r.check("metrics (with token)").detail
    assert _with_token(ep) >= 1 and _tokenless(ep) == 0  # token from token_file; no unauth probe by default
    assert r.metrics_needs_token is None and "needs token: unknown (not probed)" in r.format_text()
    assert inc.read_json("preflight")["unit"] == "my-gateway.service"


def test_stage01_unauth_probe_is_opt_in(tmp_path: Path) -> None:
    from zcnb.incident import open_incident
    from zcnb.stages import confirm

    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep, child(TAG + "-probe") as c:
        _config(tmp_path, port=ep.port, token_env=NO_ENV, token_file=_token_file(tmp_path))
        r = confirm.run_preflight(open_incident(tmp_path / "inc"), live=True, pid=c.pid, unauth_probe=True)
    assert _tokenless(ep) == 1 and r.metrics_needs_token is True


def test_stage01_collect_uses_configured_url_token_file_and_metrics_interval(tmp_path: Path) -> None:
    from zcnb.incident import open_incident
    from zcnb.stages import confirm

    with FakeEndpoint(body=GOOD_BODY, token=TOKEN) as ep, child(TAG + "-collect") as c:
        _config(tmp_path, port=ep.port, token_env=NO_ENV, token_file=_token_file(tmp_path),
                metrics_min_interval_s=0.3)
        got = confirm.collect(open_incident(tmp_path / "inc"), None, live=True, pid=c.pid, sources="psutil,metrics",
                              interval_s=0.2, duration_s=1.6, progress=False)
    header = " ".join(got.df.attrs.get("header", [])) + (tmp_path / "inc" / "samples.csv").read_text()[:400]
    assert "metrics_interval_s: 0.3" in header
    assert got.df.metrics_rss_bytes.notna().any() and _tokenless(ep) == 0 and _with_token(ep) >= 2


# -- CLI ----------------------------------------------------------------------------------------------------


def test_cli_sample_takes_url_token_file_and_interval_from_the_config(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.csv"
    with FakeEndpoint(body=GOOD_BODY, token=TOKEN) as ep, child(TAG + "-cli") as c:
        _config(tmp_path, port=ep.port, token_env=NO_ENV, token_file=_token_file(tmp_path),
                metrics_min_interval_s=0.5)
        rc = main(["sample", "--pid", str(c.pid), "--sources", "psutil,metrics", "--interval", "0.2",
                   "--duration", "1.6", "--out", str(out), "--no-progress", "--no-verdict"])
    assert rc == 0, capsys.readouterr()
    assert "metrics_interval_s: 0.5" in out.read_text() and TOKEN not in out.read_text()
    assert read_samples(out).metrics_rss_bytes.notna().any()
    assert _with_token(ep) >= 2 and _tokenless(ep) == 0


def test_cli_health_uses_configured_port_and_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        _config(tmp_path, port=ep.port, token_env=NO_ENV, token_file=_token_file(tmp_path))
        rc = main(["health", "--timeout", "3"])
    text = capsys.readouterr().out
    assert rc == 0 and f"127.0.0.1:{ep.port}/health" in text, text
    assert _with_token(ep) == 1 and "GET /health" in ep.requests[0]


def test_cli_restart_plan_uses_configured_units_port_and_token(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Dry run: the plan lists the configured units (gateway first) and probes /health on the configured port."""
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        _config(tmp_path, port=ep.port, unit="my-gateway.service", units=["helper.service", "my-gateway.service"],
                token_env=NO_ENV, token_file=_token_file(tmp_path))
        rc = main(["restart", "--full", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["dry_run"] and res["target"] == "my-gateway.service,helper.service"
    assert any(f"127.0.0.1:{ep.port}/health" in c for c in res["commands"])
    assert res["health_before"].startswith("healthy")
    assert _with_token(ep) == 1 and _tokenless(ep) == 0


def test_cli_token_env_setting_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZCNB_TOKEN_ENV", NO_ENV)
    monkeypatch.setenv(NO_ENV, TOKEN)
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        monkeypatch.setenv("ZCNB_PORT", str(ep.port))
        assert main(["health", "--timeout", "3"]) == 0
    assert _with_token(ep) == 1


def test_health_without_token_warns_and_names_the_variable_used(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        rc = main(["health", "--url", ep.url + "/health", "--token-env", "NOPE_TOKEN_VAR", "--timeout", "2"])
        assert ep.requests == []  # no token: nothing is sent (each token-less request leaks on the real gateway)
        rc_open = main(["health", "--url", ep.url + "/health", "--token-env", "NOPE_TOKEN_VAR", "--timeout", "2",
                        "--probe-unauth"])
        assert len(ep.requests) == 1  # asked for explicitly: one token-less probe, answered 401
    out, err = capsys.readouterr()
    assert rc == 1 and "not_probed" in out and rc_open == 1 and "unauthorized" in out
    assert "NOPE_TOKEN_VAR" in out and "GATEWAY_AUTH_TOKEN" not in out  # the 401 advice names the variable used
    assert "warning: no gateway token" in err and "NOPE_TOKEN_VAR" in err and "leaks memory" in err


def test_health_advice_for_a_rejected_token_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from zcnb.service import probe_health

    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        res = probe_health(ep.url + "/health", token=Secret("wrong"), token_env="MY_VAR")
    assert res.state == "unauthorized" and "MY_VAR" in res.advice and "rejected" in res.advice


def test_status_and_restart_warn_when_no_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeEndpoint(body='{"status":"healthy"}', token=TOKEN) as ep:
        _config(tmp_path, port=ep.port, token_env=NO_ENV)
        main(["restart", "--json"])
        assert ep.requests == []  # the plan's health check does not probe without a token
    err = capsys.readouterr().err
    assert "warning: no gateway token" in err and NO_ENV in err and "not probed" in err and "leaks memory" in err


def test_stage02_target_reads_the_token_file(tmp_path: Path) -> None:
    from zcnb.stages.mitigate import target

    _config(tmp_path, token_env=NO_ENV, token_file=_token_file(tmp_path), port=18123)
    t = target(backend="systemd", live=True)
    assert t.token == Secret(TOKEN)
    hc = t.manager.health_check(t.unit)
    assert hc is not None and hc.url.endswith(":18123/health")


def test_notebook06_reads_the_token_through_gateway_token() -> None:
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / "06_escalate_rollback.ipynb", as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "read_token(" not in src and "gateway_token(token_env)" in src
    nb1 = nbformat.read(REPO / "notebooks" / "01_confirm_leak.ipynb", as_version=4)
    params = next(c.source for c in nb1.cells if "parameters" in c.metadata.get("tags", []))
    for line in ('url: str = ""', 'pattern: str = ""', 'token_env: str = ""', "unauth_probe: bool = False"):
        assert line in params


# -- no token-less requests by accident -----------------------------------------------------------------------


def test_sampler_stops_scraping_after_a_401(tmp_path: Path) -> None:
    with FakeEndpoint(body=GOOD_BODY, token=TOKEN) as ep, child(TAG + "-401") as c:
        summary = sample(tmp_path / "s.csv", pid=c.pid, url=ep.url, token=Secret("wrong-token"),
                         sources=["psutil", "metrics"], interval_s=0.1, duration_s=1.5, metrics_interval_s=0.1,
                         progress=False)
    assert len(ep.requests) == 1, "scraped /metrics again after a 401"
    df = read_samples(tmp_path / "s.csv")
    gaps = df[(df.event == "gap") & (df.source == "metrics")]
    assert len(gaps) == 1 and "401" in gaps.note.iloc[0] and "leak" in gaps.note.iloc[0]
    assert summary.samples >= 8 and df.rss_bytes.notna().sum() >= 8  # psutil goes on


def test_sampler_stops_scraping_after_a_401_in_the_middle(tmp_path: Path) -> None:
    """Inline scraping (no thread) too; 403 counts like 401."""
    with FakeEndpoint(body=GOOD_BODY, token=TOKEN) as ep, child(TAG + "-401b") as c:
        def hook(k: int, late: float) -> None:
            if k == 4:
                ep.token = "rotated-token"  # the token stops being valid mid-run
        sample(tmp_path / "s.csv", pid=c.pid, url=ep.url, token=Secret(TOKEN), sources=["psutil", "metrics"],
               interval_s=0.1, duration_s=2.0, metrics_interval_s=0.1, metrics_in_thread=False, tick_hook=hook,
               progress=False)
        n = len(ep.requests)
    df = read_samples(tmp_path / "s.csv")
    assert df.metrics_rss_bytes.notna().any()
    refused = [r for r in ep.requests if "rotated" not in r]
    assert n <= 6 and len(refused) == n  # a few good scrapes, then exactly one refused, then none
    assert df.note.str.contains("stopped scraping").sum() == 1


def test_no_token_means_no_metrics_requests(tmp_path: Path) -> None:
    with FakeEndpoint(body=GOOD_BODY, token=None) as ep, child(TAG + "-none") as c:
        summary = sample(tmp_path / "a.csv", pid=c.pid, url=ep.url, token=None, sources=["psutil", "metrics"],
                         interval_s=0.1, duration_s=0.8, metrics_interval_s=0.1, progress=False)
        assert ep.requests == []
        with pytest.raises(ConfigError, match="no token"):
            sample(tmp_path / "b.csv", url=ep.url, token=None, sources=["metrics"], interval_s=0.1, duration_s=0.5,
                   progress=False)
        assert ep.requests == []
        sample(tmp_path / "c.csv", pid=c.pid, url=ep.url, token=None, sources=["psutil", "metrics"], interval_s=0.1,
               duration_s=0.8, metrics_interval_s=0.1, unauth_metrics=True, progress=False)
        assert len(ep.requests) >= 2  # explicit opt-in
    df = read_samples(tmp_path / "a.csv")
    gaps = df[(df.event == "gap") & (df.source == "metrics")]
    assert len(gaps) == 1 and "no token configured" in gaps.note.iloc[0]
    assert summary.samples >= 5 and any("no token" in n for n in summary.notes)
    assert read_samples(tmp_path / "c.csv").metrics_rss_bytes.notna().any()


def test_cli_sample_without_token_sends_nothing_unless_asked(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with FakeEndpoint(body=GOOD_BODY, token=None) as ep, child(TAG + "-clinone") as c:
        argv = ["sample", "--pid", str(c.pid), "--url", ep.url, "--sources", "psutil,metrics", "--interval", "0.2",
                "--duration", "0.8", "--metrics-interval", "0.2", "--no-progress", "--no-verdict"]
        assert main([*argv, "--out", str(tmp_path / "a.csv")]) == 0
        assert ep.requests == []
        err = capsys.readouterr().err
        assert "warning: no gateway token" in err and "--unauth-metrics" in err
        assert main([*argv, "--out", str(tmp_path / "b.csv"), "--unauth-metrics"]) == 0
        assert len(ep.requests) >= 2


def test_preflight_sends_no_tokenless_request_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(zeptoclaw_home=tmp_path / "zc", data_dir=tmp_path / "d")
    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep:
        r = preflight(settings, url=ep.url, token=Secret(TOKEN), pattern="zcnb-no-such-[q]", check_systemd=False)
        assert _tokenless(ep) == 0 and _with_token(ep) >= 2  # /metrics and /health (bare: +socket retry), with token
        assert r.check("metrics (no token)").status == "skip" and "unknown (not probed)" in r.format_text()
        n = len(ep.requests)
        none = preflight(settings, url=ep.url, token=None, pattern="zcnb-no-such-[q]", check_systemd=False)
        assert len(ep.requests) == n  # nothing at all without a token
        assert none.check("/health").status == "skip" and none.check("metrics (with token)").status == "warn"
        preflight(settings, url=ep.url, token=Secret(TOKEN), pattern="zcnb-no-such-[q]", check_systemd=False,
                  probe_unauth=True)
        assert _tokenless(ep) == 1
        rc = main(["preflight", "--url", ep.url, "--pattern", "zcnb-no-such-[q]", "--probe-unauth", "--timeout", "2"])
        assert _tokenless(ep) == 2 and rc == 1  # no token: the one probe fails (401) as asked
        before = len(ep.requests)
        main(["preflight", "--url", ep.url, "--pattern", "zcnb-no-such-[q]", "--timeout", "2"])
        assert len(ep.requests) == before
    err = capsys.readouterr().err
    assert "warning: no gateway token" in err


# -- small fixes -------------------------------------------------------------------------------------------


def test_metrics_interval_hint_matches_the_enforced_minimum(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        sample(tmp_path / "s.csv", url="http://127.0.0.1:9", token=Secret(TOKEN), sources=["metrics"],
               metrics_interval_s=0.05)
    assert ">= 0.1 s" in str(e.value)
    sample(tmp_path / "ok.csv", metrics_fetcher=lambda: GOOD_BODY, sources=["metrics"], interval_s=0.1,
           metrics_interval_s=0.1, duration_s=0.3, progress=False)  # the minimum itself is accepted


def test_cli_sample_with_no_sample_taken_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with child(TAG + "-gone") as c:
        gone = c.pid
    rc = main(["sample", "--pid", str(gone), "--duration", "1", "--interval", "0.2", "--out", str(tmp_path / "a.csv"),
               "--no-progress"])
    assert rc == 2 and f"no process with pid {gone}" in capsys.readouterr().err
    rc = main(["sample", "--pattern", "zcnb-nothing-matches-[w]", "--duration", "0.6", "--interval", "0.2",
               "--out", str(tmp_path / "b.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing to sample: no process matches pattern 'zcnb-nothing-matches-[w]'" in err
    assert not (tmp_path / "b.csv").exists()  # refused before sampling, not after the whole duration


def test_analyze_directory_and_short_column_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["analyze", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "is a directory" in err and "does not exist" not in err
    csv = REPO / "zcnb" / "data" / "sample_incident" / "samples.csv"
    for col in ("rss", "rss_bytes", "uss"):
        rc = main(["analyze", str(csv), "--column", col, "--no-png"])
        out = capsys.readouterr().out
        assert rc in (0, 1, 3) and f"{col.removesuffix('_bytes')}_bytes" in out, (col, out)
    assert main(["analyze", str(csv), "--column", "nonsense", "--no-png"]) == 2


def test_cli_restore_checks_the_configured_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``zcnb restore`` asks the service manager about the unit setting, not a hard-coded unit name."""
    import sys

    from zcnb.service import ProcessSupervisorBackend, SupervisedService
    from zcnb.state.sample import copy_sample_data

    data = copy_sample_data(tmp_path / "zeptoclaw")
    svc = SupervisedService("my-gateway.service", (sys.executable, "-c", "pass"), tmp_path / "gw.pid",
                            tmp_path / "gw.log")
    services = ProcessSupervisorBackend([svc], run_dir=tmp_path / "run").to_file(tmp_path / "services.json")
    _config(tmp_path, unit="my-gateway.service")
    args = ["restore", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"),
            "--backend", "supervisor", "--supervisor-file", str(services), "--json"]
    rc = main(args)
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads(cap.out)
    check = res["details"]["gateway_check"]
    assert res["dry_run"] and not check["manager_error"] and "manager (my-gateway.service)" in check["how"], check
    assert main([*args, "--unit", "other.service"]) == 0  # an explicit --unit still wins (and is not in the file)
    check = json.loads(capsys.readouterr().out)["details"]["gateway_check"]
    assert "no supervised service named 'other.service'" in check["manager_error"]
