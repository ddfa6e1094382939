"""Preflight against real loopback endpoints shaped like both profiles, real child processes, real systemctl/journalctl."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from collection_helpers import GOOD_BODY, REAL_BODY, FakeEndpoint, child, refused_url

from zcnb.cli import main
from zcnb.collect.preflight import parse_systemctl_show, preflight
from zcnb.config import Secret, load_settings
from zcnb.exceptions import ConfigError
from zcnb.logs.skills import detect_skill_form

TOKEN = "preflight-token-0123456789"

# Captured shape of `systemctl --user show -p Id,LoadState,... a.service b.service` (blank line between units).
SYSTEMCTL_SHOW = """Id=zeptoclaw-gateway.service
LoadState=loaded
ActiveState=active
SubState=running
MainPID=4242
MemoryMax=infinity
MemoryCurrent=52428800

Id=zeptoclaw-webhook.service
LoadState=not-found
ActiveState=inactive
SubState=dead
MainPID=0
MemoryMax=infinity
MemoryCurrent=[not set]
"""


def test_parse_systemctl_show_blocks() -> None:
    blocks = parse_systemctl_show(SYSTEMCTL_SHOW)
    assert [b["Id"] for b in blocks] == ["zeptoclaw-gateway.service", "zeptoclaw-webhook.service"]
    assert blocks[0]["MainPID"] == "4242" and blocks[1]["LoadState"] == "not-found"


def test_detect_skill_form() -> None:
    assert detect_skill_form(["info: skill:git-workflow called"]) == ("skill:NAME", 1, 0)
    real = 'info: [agent] tool skill args={"name":"git_workflow","command":"/git-status"}'
    assert detect_skill_form([real, "info: [nim] hello"]) == ("tool skill", 0, 1)
    assert detect_skill_form([real, "skill:x"])[0] == "both"
    assert detect_skill_form(["info: nothing"])[0] is None


def _settings(tmp_path: Path, url: str):  # type: ignore[no-untyped-def]
    port = int(url.rsplit(":", 1)[1])
    return load_settings(port=port, zeptoclaw_home=tmp_path / "zc", data_dir=tmp_path / "xdg" / "zeptoclaw")


def test_runbook_shaped_target(tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    log.write_text("info: [agent] skill:git-workflow invoked\ndebug: [agent] alloc 123\n")
    (tmp_path / "xdg" / "zeptoclaw" / "state").mkdir(parents=True)
    (tmp_path / "xdg" / "zeptoclaw" / "backups").mkdir(parents=True)
    with FakeEndpoint(body=GOOD_BODY) as ep, child("zcnb-preflight-runbook") as c:
        r = preflight(_settings(tmp_path, ep.url), token=Secret(TOKEN), pid=c.pid, log_file=log, probe_unauth=True)
    assert r.ok, r.format_text()
    assert r.metrics_memory == ("process_resident_memory_bytes", "process_virtual_memory_bytes")
    assert r.metrics_status_line is True and r.metrics_needs_token is False
    assert r.choose_sources()[:2] == ("metrics", "psutil") and r.pid == c.pid
    assert r.skill_log_form == "skill:NAME" and r.layout == "runbook"
    assert r.check("LOG_LEVEL honoured").status == "ok"
    assert r.check("/health").status in ("ok", "warn")  # the fake answers /health with metrics text
    assert TOKEN not in json.dumps(r.to_dict()) and TOKEN not in r._repr_html_() and TOKEN not in r.format_text()


def test_real_shaped_target(tmp_path: Path) -> None:
    log = tmp_path / "gw.log"
    log.write_text('info: [agent] tool skill args={"name":"git_workflow","command":"/git-status"}\n')
    (tmp_path / "zc" / "sessions").mkdir(parents=True)
    (tmp_path / "zc" / "config.json").write_text("{}")
    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep, child("zcnb-preflight-real") as c:
        r = preflight(_settings(tmp_path, ep.url), token=Secret(TOKEN), pid=c.pid, log_file=log, probe_unauth=True)
    assert r.metrics_memory == () and r.metrics_status_line is False and r.metrics_needs_token is True
    assert r.check("metrics (with token)").status == "warn" and "NO status line" in r.check("metrics (with token)").detail
    assert r.check("memory metrics").status == "warn" and "psutil" in r.check("memory metrics").detail
    assert r.check("metrics (no token)").status == "ok" and "401" in r.check("metrics (no token)").detail
    assert "metrics" not in r.choose_sources() and "psutil" in r.choose_sources()
    assert r.skill_log_form == "tool skill" and r.layout == "zeptoclaw"
    assert r.check("LOG_LEVEL honoured").status == "skip" and "unverified" in r.check("LOG_LEVEL honoured").detail
    assert r.ok


def test_nothing_there_fails_clearly(tmp_path: Path) -> None:
    url = refused_url()
    r = preflight(_settings(tmp_path, url), token=None, pattern="zcnb-no-such-process-[x]", probe_unauth=True)
    assert not r.ok and r.choose_sources() == ()
    assert r.check("metrics (with token)").status == "warn" and "no token" in r.check("metrics (with token)").detail
    assert r.check("metrics (no token)").status == "fail" and r.check("process").status == "fail"
    assert r.check("state paths").status == "warn"
    table = r.table()
    assert set(table.status) <= {"ok", "warn", "fail", "skip"} and len(table) == len(r.checks)
    with pytest.raises(ConfigError):
        r.check("no such check")


def test_systemd_and_journal_checks_use_real_tools(tmp_path: Path) -> None:
    """Real systemctl/journalctl: no user manager runs here (we must not start one), so these are skip/warn."""
    with FakeEndpoint() as ep:
        r = preflight(_settings(tmp_path, ep.url), pattern="zcnb-no-such-process-[y]")
    units, journal = r.check("units"), r.check("journal")
    if shutil.which("systemctl"):
        assert units.status in ("skip", "ok", "warn") and units.detail
    else:
        assert units.status == "skip" and "not installed" in units.detail
    assert journal.status in ("ok", "warn", "skip") and r.journal_readable == (journal.status == "ok")
    disabled = preflight(_settings(tmp_path, ep.url), check_systemd=False, pattern="zcnb-no-such-process-[y]")
    assert disabled.check("units").status == "skip" and disabled.check("journal").detail == "disabled"


def test_cli_preflight_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "pf.json"
    with FakeEndpoint(mode="bare", body=REAL_BODY, token=TOKEN) as ep, child("zcnb-preflight-cli") as c:
        rc = main(["preflight", "--url", ep.url, "--pid", str(c.pid), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "-> sources: psutil" in text and "NO status line" in text
    assert "needs token: unknown (not probed)" in text  # no token-less request unless --probe-unauth
    data = json.loads(out.read_text())
    assert data["ok"] is True and "psutil" in data["sources"] and TOKEN not in out.read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    rc = main(["preflight", "--url", refused_url(), "--pattern", "zcnb-no-such-process-[z]", "--timeout", "1"])
    assert rc == 1 and "FAIL" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["runbook", "real"])
def test_preflight_against_simulated_gateway(tmp_path: Path, profile: str) -> None:
    from zcnb.demo import SimulatedGateway, TrafficGenerator

    with SimulatedGateway(profile=profile) as gw:
        TrafficGenerator(gw.url, token=gw.token, skills={"git_workflow": 5.0}, duration_s=1.0).start().wait(20)
        r = preflight(_settings(tmp_path, gw.url), token=gw.token, pid_file=str(gw.pid_file), log_file=gw.log_path,
                      check_systemd=False, probe_unauth=True)
        token = gw.token.reveal()
    assert r.ok, r.format_text()
    assert r.pid is not None and r.check("/health").status == "ok"
    assert token not in json.dumps(r.to_dict())
    if profile == "runbook":
        assert "process_resident_memory_bytes" in r.metrics_memory and r.choose_sources()[0] == "metrics"
        assert r.metrics_status_line is True
        assert r.skill_log_form in ("skill:NAME", "both")
    else:
        assert r.metrics_memory == () and r.metrics_status_line is False and r.metrics_needs_token is True
        assert r.choose_sources()[0] == "psutil" and r.skill_log_form == "tool skill"
