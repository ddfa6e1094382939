"""Later stages take their choices from stage 01's preflight.json instead of tripping over the same wrong assumption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zcnb.exceptions import ConfigError, LogFormatError
from zcnb.incident import bundled_sample_dir, open_incident
from zcnb.stages import confirm, diagnose


def test_unit_memory_max_from_preflight_is_the_projection_limit(tmp_path: Path) -> None:
    inc = open_incident(tmp_path / "inc")
    shutil.copy(bundled_sample_dir() / "samples.csv", inc.path("samples"))
    inc.write_json("preflight", {"unit": "zeptoclaw-gateway.service", "memory_max_bytes": 512 * 2**20})
    a = confirm.assess(inc, confirm.collect(inc, live=False))
    assert a.limit_bytes == 512 * 2**20 and "MemoryMax" in (a.limit_source or "")
    assert inc.read_json("assessment")["limit_source"].startswith("MemoryMax")
    # an explicit parameter still wins
    b = confirm.assess(inc, confirm.collect(inc, live=False), limit_bytes=2**30)
    assert b.limit_bytes == 2**30 and b.limit_source == "parameter"


def test_live_journal_read_stops_with_what_preflight_found(tmp_path: Path) -> None:
    inc = open_incident(tmp_path / "inc")
    inc.write_json("preflight", {"journal_readable": False, "checks": [
        {"name": "journal", "status": "warn", "detail": "journalctl failed: No journal files were found."}]})
    with pytest.raises(LogFormatError, match="preflight found the journal .* unreadable: journalctl failed"):
        diagnose.load_entries(inc, unit="zeptoclaw-gateway.service", live=True)


def _units_check(status: str, detail: str, blocks: list[dict[str, str]] | None = None) -> dict[str, object]:
    """The ``units`` row as ``PreflightResult.to_dict()`` stores it in preflight.json."""
    return {"name": "units", "status": status, "detail": detail, "data": {"units": blocks} if blocks else {}}


def test_stage02_refuses_systemd_when_real_preflight_found_no_user_manager(tmp_path: Path) -> None:
    """Real preflight with the real systemctl (no user manager may run on these machines)."""
    from collection_helpers import FakeEndpoint

    from zcnb.collect.preflight import preflight
    from zcnb.config import load_settings
    from zcnb.stages import mitigate

    with FakeEndpoint() as ep:
        settings = load_settings(port=int(ep.url.rsplit(":", 1)[1]), zeptoclaw_home=tmp_path / "zc",
                                 data_dir=tmp_path / "xdg" / "zeptoclaw")
        r = preflight(settings, pattern="zcnb-no-such-process-[z]")
    if r.check("units").status != "skip":
        pytest.skip("a systemd user manager answers on this machine")
    inc = open_incident(tmp_path / "inc")
    inc.write_json("preflight", r.to_dict())
    with pytest.raises(ConfigError, match="preflight found no usable systemd user manager") as e:
        mitigate.target(backend="systemd", incident=inc)
    assert "backend='supervisor'" in str(e.value)


def test_stage02_names_units_preflight_found_missing_or_inactive(tmp_path: Path) -> None:
    from zcnb.stages import mitigate

    inc = open_incident(tmp_path / "inc")
    blocks = [{"Id": "zeptoclaw-gateway.service", "LoadState": "loaded", "ActiveState": "active"},
              {"Id": "zeptoclaw-webhook.service", "LoadState": "not-found", "ActiveState": "inactive"},
              {"Id": "shell2http.service", "LoadState": "loaded", "ActiveState": "failed"}]
    inc.write_json("preflight", {"checks": [_units_check("warn", "2 present", blocks)]})
    t = mitigate.target(backend="systemd", incident=inc)
    assert t.notes == (("preflight found these units missing: zeptoclaw-webhook.service (check the units setting "
                        "before a full restart)"), "preflight found these units not active: shell2http.service")
    assert "zeptoclaw-webhook.service" in t._repr_markdown_()
    # preflight run with systemd checks disabled, or without a preflight: nothing to say, nothing refused
    inc.write_json("preflight", {"checks": [_units_check("skip", "disabled")]})
    assert mitigate.target(backend="systemd", incident=inc).notes == ()
    assert mitigate.target(backend="systemd", incident=open_incident(tmp_path / "empty")).notes == ()
