"""Later stages take their choices from stage 01's preflight.json instead of tripping over the same wrong assumption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zcnb import confirm, diagnose
from zcnb.exceptions import LogFormatError
from zcnb.incident import bundled_sample_dir, open_incident


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
