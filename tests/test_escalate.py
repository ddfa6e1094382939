"""Escalation decision (runbook "When to Escalate") and rollback through the supervisor backend.

Rollback runs for real: a small executable "binary" (a script that execs the simulated gateway) is replaced by
the backup's version, the old one is kept, state is restored via zcnb.state.restore_state, health is verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from zcnb.analysis.escalation import decide, restart_schedule
from zcnb.cli import main
from zcnb.config import Secret
from zcnb.exceptions import BackupInvalid, DataError, StateError, UnsafePath
from zcnb.ops.rollback import plan_rollback, rollback
from zcnb.service import HealthCheck, ProcessSupervisorBackend, SupervisedService

TOKEN = Secret("escalate-test-token-0123456789")
GW = "zeptoclaw-gateway.service"
H = 3600.0
MIB = 1024.0**2


def assessment(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"verdict": "leak", "severity": "moderate", "growth_bytes_per_hour": 2 * MIB,
                               "time_to_limit_s": 3 * 86400.0, "recommended_restart_interval_s": 2 * 86400.0 + 1234,
                               "limit_bytes": 1024 * MIB, "current_bytes": 200 * MIB}
    base.update(kw)
    return base


def test_catastrophic_rolls_back_now() -> None:
    d = decide(assessment(severity="catastrophic", time_to_limit_s=600.0))
    assert d.action == "rollback_now" and "immediately" in d.runbook_rule
    assert "rollback" in d._repr_markdown_().lower()


def test_persisting_after_restart_and_restore_collects_repro_with_interim_schedule() -> None:
    d = decide(assessment(), persisted_after_restart=True, persisted_after_restore=True)
    assert d.action == "collect_repro" and "reproducible" in d.runbook_rule and d.schedule is not None
    assert decide(assessment(), persisted_after_restart=True, persisted_after_restore=False).action == "schedule_restarts"


def test_gradual_leak_schedules_restarts_from_the_assessment_interval() -> None:
    d = decide(assessment())
    assert d.action == "schedule_restarts" and d.schedule is not None
    assert d.schedule.interval_s == 48 * H  # 2 d + 1234 s rounded *down* to whole hours
    assert "OnUnitActiveSec=172800s" in d.schedule.systemd_timer
    assert d.schedule.cron.startswith("30 3 */2 * * ") and GW in d.schedule.cron
    assert json.loads(json.dumps(d.to_dict()))["schedule"]["interval_s"] == 48 * H


def test_interval_computed_from_growth_and_limit_when_not_given() -> None:
    d = decide(assessment(recommended_restart_interval_s=None, severity="low"))
    # (0.8 * 1024 MiB - 200 MiB) / (2 MiB/h) = 309.6 h -> 309 h
    assert d.schedule is not None and d.schedule.interval_s == 309 * H
    assert "80%" in d.schedule.basis
    none = decide(assessment(recommended_restart_interval_s=None, limit_bytes=None, severity="low"))
    assert none.action == "schedule_restarts" and none.schedule is None
    assert any("pick one by hand" in r for r in none.reasons)


def test_high_severity_restarts_and_rechecks_other_verdicts() -> None:
    assert decide(assessment(severity="high")).action == "restart_and_recheck"
    assert decide(assessment(verdict="no_leak", severity="none")).action == "none"
    inc = decide({"verdict": "inconclusive", "needed": {"reason": "need 20 samples"}})
    assert inc.action == "gather_more_data" and "need 20 samples" in inc.reasons


def test_decide_bad_input() -> None:
    with pytest.raises(DataError, match="verdict"):
        decide({"growth": 1})
    with pytest.raises(DataError):
        restart_schedule(float("nan"))


@pytest.mark.parametrize("seconds,cron", [(600, "*/10 * * * *"), (7 * 60, "*/5 * * * *"), (25 * 60, "*/20 * * * *"), (5 * H, "0 */4 * * *"),
                                          (30 * H, "30 3 */1 * *")])
def test_cron_rounds_down_to_what_cron_can_express(seconds: float, cron: str) -> None:
    assert restart_schedule(seconds).cron.startswith(cron)


def test_decide_on_a_real_assessment() -> None:
    from zcnb.analysis import assess_leak

    t0 = datetime(2026, 11, 28, 10, tzinfo=UTC)
    n = 600
    rss = 50 * MIB + np.arange(n) * 200 * 1024.0 + np.random.default_rng(0).normal(0, 20_000, n)
    df = pd.DataFrame({"timestamp": [t0 + timedelta(seconds=i) for i in range(n)], "rss_bytes": rss})
    a = assess_leak(df, limit_bytes=512 * MIB)
    d = decide(a)
    assert a.verdict == "leak" and d.verdict == "leak" and d.severity == a.severity
    assert d.action in ("rollback_now", "restart_and_recheck")  # ~700 MiB/h into 512 MiB: minutes to hours


# -- rollback ------------------------------------------------------------------------------------------------
def binary(path: Path, version: str, port: int) -> None:
    path.write_text(f"#!{sys.executable}\nimport os, sys\nprint('gateway version {version}', file=sys.stderr, flush=True)\n"
                    f"os.execv(sys.executable, [sys.executable, '-m', 'zcnb.demo.server', '--port', '{port}', "
                    "'--rate-limit', '0'])\n")
    path.chmod(0o755)


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


Site = tuple[ProcessSupervisorBackend, Path]  # the running supervised gateway and the site's root folder


@pytest.fixture
def site(tmp_path: Path, free_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", TOKEN.reveal())
    bin_dir, state, backups = tmp_path / "bin", tmp_path / "state", tmp_path / "backups"
    for d in (bin_dir, state / "sessions", backups / "20261128-031000" / "state" / "sessions"):
        d.mkdir(parents=True)
    binary(bin_dir / "zeptoclaw-gateway", "NEW-broken", free_port)
    (state / "metadata.json").write_text('{"version": "new"}')
    (state / "sessions" / "s-1.json").write_text('{"id": 1, "new": true}')
    old = backups / "20261128-031000"
    binary(old / "zeptoclaw-gateway", "OLD-good", free_port)
    (old / "commit.txt").write_text("a1c9e4f0d2\n")
    (old / "state" / "metadata.json").write_text('{"version": "old"}')
    (old / "state" / "sessions" / "s-1.json").write_text('{"id": 1}')
    svc = SupervisedService(GW, (str(bin_dir / "zeptoclaw-gateway"),), tmp_path / "gw.pid", tmp_path / "gw.log",
                            health=HealthCheck(f"http://127.0.0.1:{free_port}/health"))
    m = ProcessSupervisorBackend([svc], run_dir=tmp_path)
    m.start(GW)
    yield m, tmp_path
    m.close()


def test_rollback_replaces_binary_keeps_old_restores_state_and_verifies(site: Site) -> None:
    m, root = site
    kw: dict[str, Any] = {"backup": "latest", "backups_dir": root / "backups", "bin_dir": root / "bin",
                          "state_dir": root / "state", "token": TOKEN}
    before_pid = m.status(GW).pid
    dry = rollback(m, **kw, incident=root / "inc")
    assert dry.outcome == "planned" and m.status(GW).pid == before_pid
    assert "NEW-broken" in (root / "bin" / "zeptoclaw-gateway").read_text()
    res = rollback(m, **kw, execute=True, confirm=dry.plan_id, incident=root / "inc")
    assert res.outcome == "ok", res.message
    assert "OLD-good" in (root / "bin" / "zeptoclaw-gateway").read_text()
    kept = list((root / "backups").glob("replaced-*/zeptoclaw-gateway"))
    assert len(kept) == 1 and "NEW-broken" in kept[0].read_text() and os.access(kept[0], os.X_OK)
    assert json.loads((root / "state" / "metadata.json").read_text()) == {"version": "old"}
    assert list((root / "backups").glob("corrupt-*"))  # the state stage quarantined the newer state
    assert res.details["commit"] == "a1c9e4f0d2" and res.health_after and res.health_after.startswith("healthy")
    assert m.status(GW).pid != before_pid and "gateway version OLD-good" in "\n".join(m.log_lines(GW, lines=20))
    lines = (root / "inc" / "actions.jsonl").read_text().splitlines()
    assert len(lines) == 2 and TOKEN.reveal() not in "".join(lines)


def test_backup_without_binaries_changes_nothing(site: Site) -> None:
    m, root = site
    (root / "backups" / "20261128-031000" / "zeptoclaw-gateway").unlink()
    before, pid = tree_hash(root / "bin") + tree_hash(root / "state"), m.status(GW).pid
    with pytest.raises(BackupInvalid, match="no binaries.*nothing was changed"):
        rollback(m, backup="20261128-031000", backups_dir=root / "backups", bin_dir=root / "bin",
                 execute=True, confirm="whatever")
    assert tree_hash(root / "bin") + tree_hash(root / "state") == before and m.status(GW).pid == pid


def test_checksum_mismatch_and_bad_names(site: Site) -> None:
    m, root = site
    old = root / "backups" / "20261128-031000"
    (old / "MANIFEST.sha256").write_text(f"{'0' * 64}  zeptoclaw-gateway\n")
    with pytest.raises(BackupInvalid, match="checksum"):
        plan_rollback(m, backup="20261128-031000", backups_dir=root / "backups", bin_dir=root / "bin")
    for bad in ("../state", "/etc", "20261128-031000/../x"):
        with pytest.raises(UnsafePath):
            plan_rollback(m, backup=bad, backups_dir=root / "backups", bin_dir=root / "bin")
    with pytest.raises(StateError, match="no backup folder"):
        plan_rollback(m, backup="20200101-000000", backups_dir=root / "backups", bin_dir=root / "bin")
    shutil.rmtree(root / "bin")
    (old / "MANIFEST.sha256").unlink()
    with pytest.raises(StateError, match="binary folder"):
        plan_rollback(m, backup="latest", backups_dir=root / "backups", bin_dir=root / "bin")


def test_cli_escalate_and_rollback_dry_run(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    m, root = site
    (root / "assessment.json").write_text(json.dumps(assessment(severity="catastrophic")))
    assert main(["escalate", "--assessment", str(root / "assessment.json"), "--json",
                 "--incident", str(root / "inc")]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "rollback_now"
    assert json.loads((root / "inc" / "escalation.json").read_text())["action"] == "rollback_now"
    assert main(["escalate", "--assessment", str(root / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    sf = m.to_file(root / "services.json")
    rc = main(["rollback", "--backend", "supervisor", "--supervisor-file", str(sf), "--backup", "latest",
               "--backups-dir", str(root / "backups"), "--bin-dir", str(root / "bin"), "--no-state"])
    out = capsys.readouterr().out
    assert rc == 0 and "DRY RUN" in out and "--execute --confirm" in out and "install " in out
    assert "NEW-broken" in (root / "bin" / "zeptoclaw-gateway").read_text()


def test_schedule_capped_at_quarterly_maintenance() -> None:
    s = restart_schedule(400 * 86400.0)
    assert s.interval_s == 90 * 86400.0 and "quarterly" in s.basis
    assert s.cron.startswith("30 3 1 */3 * ")


def test_post_restart_check_windows(tmp_path: Path) -> None:
    from zcnb.ops.watch import post_restart_check

    t0 = datetime(2026, 11, 28, 10, tzinfo=UTC)
    n = 400
    # fast growth before the restart, flat after it
    rss = np.r_[50 * MIB + np.arange(200) * 300_000.0, 50 * MIB + np.random.default_rng(2).normal(0, 10_000, 200)]
    ev = [""] * n
    ev[200] = "restart"
    df = pd.DataFrame({"timestamp": [t0 + timedelta(seconds=i) for i in range(n)], "rss_bytes": rss, "event": ev})
    before = {"growth_bytes_per_hour": 300_000.0 * 3600}
    after = post_restart_check(df, before=before, log_lines=["info: up"])
    assert after.window == "after the last restart event" and after.n_samples <= 200
    assert after.grows_fast is False and after.verdict == "no_leak"
    whole = post_restart_check(df.assign(event=""))
    assert whole.window.startswith("whole recording") and "No restart in this recording" in whole.message
    assert "info: up" in after._repr_markdown_()
