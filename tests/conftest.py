"""Shared test fixtures. Servers bind 127.0.0.1 on free ports and are stopped by the tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

# No example database in the working tree (tests must not depend on leftovers); in CI the examples are
# derandomized so a run is repeatable, locally they explore.
hypothesis_settings.register_profile("zcnb", database=None)
hypothesis_settings.register_profile("zcnb-ci", database=None, derandomize=True)
hypothesis_settings.load_profile("zcnb-ci" if os.environ.get("CI") else "zcnb")


@pytest.fixture(autouse=True)
def _working_directory_kept() -> Iterator[None]:
    """Every test leaves the process's working directory where it found it (the notebook tests that run after
    it resolve ``tests/sanitize.cfg`` from there): one that moves it fails, and the directory is put back."""
    before = os.getcwd()
    yield
    try:
        now: str | None = os.getcwd()
    except FileNotFoundError:
        now = None
    if now != before:
        os.chdir(before)
        pytest.fail(f"the test left the working directory at {now or '(a removed folder)'} instead of {before}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_port()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point XDG/HOME-derived zcnb paths at a temp folder so no test touches the real user's data."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("ZCNB_CONFIG", raising=False)
    runtime = home / "run"  # the request ledgers: one test's requests never count against another's
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("ZCNB_RUNTIME_DIR", str(runtime))
    yield


@pytest.fixture
def sim_gateway(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``sim_gateway(profile="real", leak=..., ...)`` starts a SimulatedGateway (log in tmp_path).

    Every gateway it started is stopped (SIGKILL fallback) and cleaned up at teardown.
    """
    from zcnb.demo import SimulatedGateway

    started: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("log_path", tmp_path / f"gateway-{len(started)}.log")
        gw = SimulatedGateway(**kwargs)
        started.append(gw)
        return gw.start()

    yield factory
    for gw in started:
        try:
            gw.stop(timeout=3)
        finally:
            gw.close()


@pytest.fixture
def real_gateway(tmp_path: Path) -> Iterator[Any]:
    """Factory: ``real_gateway(name="gw", log_path=..., pid_file=..., binary=...)`` starts the real ZeptoClaw
    binary (``binary``: a copy or link of it under another name, for tests of how the process is found).

    The binary comes from ``$ZCNB_REAL_GATEWAY`` or ``.ci/build-real-gateway``'s cache; without it the test is
    skipped with the reason, and under ``CI=true`` it fails (so real-binary tests never silently stop running).
    Every gateway started is killed by pid at teardown.
    """
    from zcnb.demo.realgw import RealGatewayProcess, locate_real_gateway

    exe = locate_real_gateway()
    if exe is None:
        msg = "the real zeptoclaw-gateway binary is absent (bash .ci/build-real-gateway, or set ZCNB_REAL_GATEWAY)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + ": CI must build it")
        pytest.skip(msg)
    started: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("name", f"gw{len(started)}")
        gw = RealGatewayProcess.start(kwargs.pop("binary", exe), tmp_path, **kwargs)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        gw.stop()
