"""Settings, error tree, private files, plans/actions and incident folders."""

from __future__ import annotations

import os
import pickle
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from zcnb import exceptions as exc
from zcnb.actions import ActionResult, Plan, append_action, read_actions, require_confirmation
from zcnb.config import Secret, load_settings, read_token
from zcnb.files import write_json, write_private
from zcnb.incident import bundled_sample_dir, new_incident_dir, open_incident


def test_every_error_is_a_zcnb_error_and_pickles_with_context() -> None:
    for name in exc.__all__:
        cls = getattr(exc, name)
        assert issubclass(cls, exc.ZcnbError)
        err = cls("it broke", hint="do this", path="/x", pid=3)
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls
        assert str(back) == "it broke -- do this"
        assert back.path == "/x" and back.pid == 3


def test_secret_never_shows_itself() -> None:
    s = Secret("hunter2-token")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.reveal() == "hunter2-token"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_settings_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 19000\nunit = "gw.service"\nunits = ["a.service", "b.service"]\n')
    s = load_settings(cfg, env={"HOME": str(tmp_path)})
    assert (s.port, s.unit, s.units) == (19000, "gw.service", ("a.service", "b.service"))
    s = load_settings(cfg, env={"HOME": str(tmp_path), "ZCNB_PORT": "19001"})
    assert s.port == 19001
    s = load_settings(cfg, env={"HOME": str(tmp_path), "ZCNB_PORT": "19001"}, port=19002)
    assert s.port == 19002
    assert load_settings(env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d")}).data_dir == tmp_path / "d" / "zeptoclaw"


@pytest.mark.parametrize(
    "content, needle",
    [("port = 'x'\n", "port"), ("bogus = 1\n", "unknown setting"), ("port = \n", "not valid TOML"), ("token = 'abc'\n", "unknown setting")],
)
def test_bad_settings_file_is_a_clear_error(tmp_path: Path, content: str, needle: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    with pytest.raises(exc.ConfigError, match=needle):
        load_settings(cfg, env={"HOME": str(tmp_path)})


def test_token_from_env_or_private_file_only(tmp_path: Path) -> None:
    assert read_token("TOK", env={"TOK": "abc"}) == Secret("abc")
    assert read_token("TOK", env={}) is None
    f = tmp_path / "tok"
    f.write_text("filetoken\n")
    os.chmod(f, 0o644)
    with pytest.raises(exc.ConfigError, match="chmod 600"):
        read_token(None, file=f, env={})
    os.chmod(f, 0o600)
    assert read_token(None, file=f, env={}) == Secret("filetoken")


def test_private_writes_are_0600_and_atomic(tmp_path: Path) -> None:
    p = write_private(tmp_path / "a" / "b.txt", "x")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    p = write_json(tmp_path / "c.json", {"v": float("nan"), "t": datetime(2026, 1, 1, tzinfo=UTC)})
    assert p.read_text().count("null") == 1 and "2026-01-01T00:00:00+00:00" in p.read_text()
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".")] == []


def test_plan_requires_its_own_id_to_apply() -> None:
    plan = Plan("restart", "zeptoclaw-gateway.service", ("systemctl --user restart zeptoclaw-gateway.service",))
    other = Plan("restart", "zeptoclaw-gateway.service", ("systemctl --user stop zeptoclaw-gateway.service",))
    assert plan.plan_id != other.plan_id and len(plan.plan_id) == 8
    assert require_confirmation(plan, execute=False, confirm=None) is False
    with pytest.raises(exc.PlanError, match=plan.plan_id):
        require_confirmation(plan, execute=True, confirm=None)
    with pytest.raises(exc.PlanError):
        require_confirmation(plan, execute=True, confirm=other.plan_id)
    assert require_confirmation(plan, execute=True, confirm=plan.plan_id) is True


def test_actions_roundtrip_and_survive_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "actions.jsonl"
    t0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    r = ActionResult("restart", "gw", False, "ok", started_at=t0, finished_at=t0.replace(second=7), commands=("a", "b"))
    append_action(path, r)
    with open(path, "a") as fh:
        fh.write('{"action": "rest')  # a writer killed mid-line
    got = read_actions(path)
    assert got == [r] and got[0].duration_s == 7.0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_incident_folders_are_dated_private_and_never_reused(tmp_path: Path) -> None:
    now = datetime(2026, 11, 28, 10, 0, 5, tzinfo=UTC)
    a = new_incident_dir(tmp_path / "inc", "Memory Leak!", now=now)
    b = new_incident_dir(tmp_path / "inc", "Memory Leak!", now=now)
    assert a.name == "2026-11-28T100005Z-memory-leak" and b != a
    assert stat.S_IMODE(a.stat().st_mode) == 0o700


def test_replay_incident_is_a_private_copy_of_the_bundled_sample() -> None:
    inc = open_incident("")
    assert inc.replay and inc.root != bundled_sample_dir()
    assert sorted(p.name for p in inc.root.iterdir()) == sorted(p.name for p in bundled_sample_dir().iterdir())
