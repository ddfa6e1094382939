"""Live runs of stages 02 and 06 act on the real service manager and paths, never on the replay's simulator.

``zcnb report -p live=true`` passes ``live`` to every stage; with the default ``backend="auto"`` stage 02
must then use systemd user units (or a given supervisor file) and stage 06 the settings' backups/state and
the running gateway's binary folder. No systemd manager may run on these machines, so the live stage 02
run here shows the units as not found and the gateway as down: that honest result is what is checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zcnb.exceptions import ConfigError, DataError
from zcnb.service import ProcessSupervisorBackend, SystemdUserBackend, choose_backend
from zcnb.stages import escalate, mitigate


@pytest.mark.parametrize(("backend", "sup", "live", "want"), [
    ("auto", "", False, "replay"),
    ("auto", "", True, "systemd"),
    ("auto", "svc.json", True, "supervisor"),
    ("auto", "svc.json", False, "supervisor"),
    ("supervisor", "", False, "replay"),
    ("systemd", "", False, "systemd"),
    ("systemd", "", True, "systemd"),
])
def test_choose_backend(backend: str, sup: str, live: bool, want: str) -> None:
    assert choose_backend(backend, supervisor_file=sup, live=live) == want


def test_live_supervisor_without_file_and_unknown_backend_are_refused() -> None:
    with pytest.raises(ConfigError, match="live run with backend 'supervisor' but no supervisor_file"):
        choose_backend("supervisor", live=True)
    with pytest.raises(ConfigError, match="unknown backend 'docker'"):
        choose_backend("docker")


def test_stage02_target_live_is_systemd_and_replay_is_labelled() -> None:
    live = mitigate.target(live=True)
    assert isinstance(live.manager, SystemdUserBackend) and live.unit == "zeptoclaw-gateway.service"
    assert live.demo is None and not any("simulated" in n for n in live.notes)
    replay = mitigate.target()
    try:
        assert replay.demo is not None and replay.notes and "not your gateway" in replay.notes[0]
        assert "not your gateway" in mitigate.status(replay)._repr_markdown_()
    finally:
        replay.demo.close()


def test_stage02_live_through_papermill_plans_systemctl_not_the_simulator(tmp_path: Path) -> None:
    from zcnb.report import run_incident

    run = run_incident(incidents_dir=tmp_path, stages=["02"], parameters={"live": True}, progress=False)
    actions = [json.loads(line) for line in (run.folder / "actions.jsonl").read_text().splitlines()]
    restart = next(a for a in actions if a["action"] == "restart")
    assert restart["dry_run"] and restart["commands"][0] == "systemctl --user restart -- zeptoclaw-gateway.service"
    nb = json.loads((run.folder / "02_mitigate.ipynb").read_text())
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code"])
    assert "systemctl --user restart" in outputs
    assert "zcnb.demo.server" not in outputs and "simulated gateway" not in outputs


@pytest.fixture
def running_gateway(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real process whose executable is ``<tmp>/bin/<unique name>`` (a copy of sleep).

    Started through a shell that exits at once, so it is not a child of the test (the pattern search
    leaves zcnb's own children out, as it must for the sampler).
    """
    import os
    import signal

    name = f"zcnbtest-gw-{time.monotonic_ns()}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / name
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    out = subprocess.run(["sh", "-c", f"'{exe}' 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                         check=True, timeout=10)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while name not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.01)  # until it has exec'd
    try:
        yield bin_dir, name
    finally:
        os.kill(pid, signal.SIGKILL)


def test_stage06_live_site_uses_settings_and_running_gateway_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      running_gateway: tuple[Path, str]) -> None:
    bin_dir, name = running_gateway
    monkeypatch.setenv("ZCNB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", name)
    site = escalate.rollback_site(live=True)
    assert not site.replay and site.bin_dir == bin_dir
    assert site.backups_dir == tmp_path / "data" / "backups" and site.state_dir == tmp_path / "data" / "state"
    assert isinstance(escalate.rollback_manager(site), SystemdUserBackend)
    replay = escalate.rollback_site()
    assert replay.replay and isinstance(escalate.rollback_manager(replay), ProcessSupervisorBackend)


def test_stage06_live_without_a_running_gateway_asks_for_bin_dir(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCNB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", f"zcnbtest-nothing-{time.monotonic_ns()}")
    with pytest.raises(DataError, match="bin_dir is empty and the running gateway's executable could not be read"):
        escalate.rollback_site(live=True)
    site = escalate.rollback_site(live=True, bin_dir=str(tmp_path / "zig-out" / "bin"))
    assert site.bin_dir == tmp_path / "zig-out" / "bin"


def test_cli_service_port_defaults_to_settings(tmp_path: Path) -> None:
    env = {"ZCNB_PORT": "19999", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "zcnb", "restart", "--json"], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert "127.0.0.1:19999/health" in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.parametrize("port", ["0", "99999", "http"])
def test_cli_rejects_a_port_that_is_not_one(port: str) -> None:
    out = subprocess.run([sys.executable, "-m", "zcnb", "health", "--port", port], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2 and "is not a TCP port (1-65535)" in out.stderr


def test_report_stage_05_is_explained() -> None:
    from zcnb.report import run_incident

    with pytest.raises(ConfigError, match="05 is the report itself"):
        run_incident(stages=["05"], progress=False)
