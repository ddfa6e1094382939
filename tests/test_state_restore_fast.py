"""The fast restore path: the backup verified once per restore (the dry run's verification reused by the
confirmed run while the backup is unchanged), big files copied by the kernel and hashed from the staged copy.
Real file trees; the one simulated condition (a kernel without ``copy_file_range`` for a file) says so below."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from zcnb.exceptions import PlanError, StateError
from zcnb.state import copy_sample_data, hash_tree, restore_state, verify_backup
from zcnb.state import staging as staging_mod
from zcnb.state.staging import copy_hashed
from zcnb.state.verified import backup_fingerprint, record_path

BACKUP = "20261128-031000"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uuid

    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", f"zcnb-test-no-gateway-{uuid.uuid4().hex}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return copy_sample_data(tmp_path / "zeptoclaw")


def _kw(data: Path) -> dict[str, Path]:
    return {"state_dir": data / "state", "backups_dir": data / "backups"}


def test_execute_reuses_the_dry_runs_verification(data: Path) -> None:
    plan = restore_state(BACKUP, **_kw(data))
    assert plan.details["verify"]["reused_verification_of"] is None  # the dry run reads every byte
    rec = record_path(data / "state")
    assert rec.is_file() and (rec.stat().st_mode & 0o777) == 0o600
    res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"]
    assert hash_tree(data / "state") == hash_tree(data / "backups" / BACKUP / "state")


def test_a_second_dry_run_verifies_again(data: Path) -> None:
    restore_state(BACKUP, **_kw(data))
    again = restore_state(BACKUP, **_kw(data))
    assert again.details["verify"]["reused_verification_of"] is None


def test_backup_touched_since_the_dry_run_is_verified_again(data: Path) -> None:
    plan = restore_state(BACKUP, **_kw(data))
    f = data / "backups" / BACKUP / "state" / "sessions" / "s-0001.json"
    os.chmod(f, f.stat().st_mode)  # same mode: only its ctime moves
    res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"] is None


def test_backup_changed_since_the_dry_run_needs_a_new_confirmation(data: Path) -> None:
    plan = restore_state(BACKUP, **_kw(data))
    f = data / "backups" / BACKUP / "state" / "sessions" / "s-0001.json"
    st = f.stat()
    f.write_text(json.dumps({"changed": True}))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; size and ctime still tell
    before = hash_tree(data / "state")
    with pytest.raises(PlanError):
        restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert hash_tree(data / "state") == before


def test_reused_record_never_lets_unverified_bytes_in(data: Path) -> None:
    """Even a record whose fingerprint matches a changed backup (forged here; in life: a change the ctime did not
    show) cannot get those bytes restored: the staged copy must hash equal to the verified hashes."""
    plan = restore_state(BACKUP, **_kw(data))
    root = data / "backups" / BACKUP
    f = root / "state" / "sessions" / "s-0001.json"
    f.write_text(json.dumps({"never": "verified"}))
    rec_path = record_path(data / "state")
    rec = json.loads(rec_path.read_text())
    rec["fingerprint"] = backup_fingerprint(root)
    rec_path.write_text(json.dumps(rec))
    before = hash_tree(data / "state")
    with pytest.raises(StateError, match="does not match the backup"):
        restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert hash_tree(data / "state") == before
    assert not list(data.glob(".zcnb-staging-*"))


def test_record_writable_by_others_is_ignored(data: Path) -> None:
    plan = restore_state(BACKUP, **_kw(data))
    os.chmod(record_path(data / "state"), 0o666)
    res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"] is None


def test_unwritable_cache_is_said_and_the_execute_verifies_again(data: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    plan = restore_state(BACKUP, **_kw(data))
    assert "verification record could not be saved" in plan.message
    res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"] is None


def _big_backup(data: Path) -> Path:
    blob = data / "backups" / BACKUP / "state" / "memory" / "arena.bin"
    blob.write_bytes(os.urandom(3 << 20) + b"tail")
    os.chmod(blob, 0o640)
    return blob


def test_big_files_are_restored_byte_for_byte(data: Path) -> None:
    blob = _big_backup(data)
    plan = restore_state(BACKUP, **_kw(data))
    res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok"
    live = data / "state" / "memory" / "arena.bin"
    assert live.read_bytes() == blob.read_bytes()
    assert (live.stat().st_mode & 0o777) == 0o640 and live.stat().st_mtime_ns == blob.stat().st_mtime_ns


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_copy_hashed_returns_the_hash_of_the_staged_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          kernel_copy: bool) -> None:
    """``kernel_copy=False`` simulates a filesystem where ``copy_file_range`` fails with EXDEV (a mock: every
    filesystem here supports it); the copy then goes through a buffer, with the same result."""
    import errno

    if not kernel_copy:
        def refuse(*_a: object) -> int:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        monkeypatch.setattr(staging_mod.os, "copy_file_range", refuse)
    src = tmp_path / "src.bin"
    payload = os.urandom((2 << 20) + 12345)
    src.write_bytes(payload)
    digest, size = copy_hashed(str(src), str(tmp_path / "dst.bin"))
    assert (digest, size) == (hashlib.sha256(payload).hexdigest(), len(payload))
    assert (tmp_path / "dst.bin").read_bytes() == payload
    with pytest.raises(FileExistsError):  # never overwrites
        copy_hashed(str(src), str(tmp_path / "dst.bin"))


def test_manifest_of_content_files_checked_from_the_scan(data: Path) -> None:
    """A manifest line for a file of state/ is checked with the hash of the content scan; a wrong one is a problem."""
    root = data / "backups" / BACKUP
    content = hash_tree(root / "state")
    lines = [f"{h[2:]}  state/{rel}" for rel, h in sorted(content.items()) if h.startswith("f:")]
    lines[0] = "0" * 64 + lines[0][64:]
    (root / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")
    vr = verify_backup(root)
    assert vr.manifest_checked == len(lines) - 1
    assert any("does not match its checksum" in p for p in vr.problems)
