"""The fast restore path: the backup verified once per restore (the dry run's verification reused by the
confirmed run while the backup is unchanged), every file hashed while it is copied (blake3 when installed, the
algorithm recorded with the hashes; sha256 manifests and older sha256 journals still checked with sha256).
Real file trees; the simulated conditions (blake3 not installed, a fingerprint blind to a change) say so below."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from zcnb.exceptions import PlanError, StateError
from zcnb.state import copy_sample_data, hash_tree, restore_state, verify_backup
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


def _digest(algo: str, payload: bytes) -> str:
    if algo == "sha256":
        return hashlib.sha256(payload).hexdigest()
    import blake3

    return str(blake3.blake3(payload).hexdigest())


@pytest.mark.parametrize("algo", ["sha256", "blake3"])
@pytest.mark.parametrize("size", [0, 1, 5000, (1 << 20) - 1, 1 << 20, (2 << 20) + 12345])
def test_copy_hashed_returns_the_hash_of_the_staged_bytes(tmp_path: Path, algo: str, size: int) -> None:
    src = tmp_path / "src.bin"
    payload = os.urandom(size)
    src.write_bytes(payload)
    os.chmod(src, 0o640)
    digest, got = copy_hashed(str(src), str(tmp_path / "dst.bin"), algo=algo)
    assert (digest, got) == (_digest(algo, payload), len(payload))
    assert (tmp_path / "dst.bin").read_bytes() == payload
    assert (tmp_path / "dst.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "dst.bin").stat().st_mtime_ns == src.stat().st_mtime_ns
    with pytest.raises(FileExistsError):  # never overwrites
        copy_hashed(str(src), str(tmp_path / "dst.bin"), algo=algo)


def test_copy_hashed_hashes_exactly_the_bytes_it_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes read that differ from the source's (simulated: the read flips a byte, as a backup changed under the
    copy would) are written and hashed alike: the digest is that of the staged file, so it differs from the
    verified one and the staging check refuses the copy."""
    src = tmp_path / "src.bin"
    payload = os.urandom(3 << 20)
    src.write_bytes(payload)
    real_readv = os.readv

    def flipping_readv(fd: int, buffers: list[bytearray]) -> int:
        n = real_readv(fd, buffers)
        if n:
            buffers[0][n // 2] ^= 0xFF
        return n

    with monkeypatch.context() as m:
        m.setattr(os, "readv", flipping_readv)
        digest, _ = copy_hashed(str(src), str(tmp_path / "dst.bin"), algo="blake3")
    written = (tmp_path / "dst.bin").read_bytes()
    assert written != payload
    assert digest == _digest("blake3", written) != _digest("blake3", payload)


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


def _same_size_change(f: Path) -> None:
    """Overwrite ``f`` in place with other bytes of the same size and put its mtime back: only the ctime (and
    the content) tells."""
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    with open(f, "r+b") as fh:
        fh.write(data)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.parametrize("which", ["big", "small"])
def test_same_size_change_after_the_dry_run_is_verified_again_and_refused(data: Path, which: str) -> None:
    """The user's sequence with a backup file rewritten in between (same size, mtime put back): the execute must
    not trust the dry run's record; it verifies again, finds other content, and the old confirmation fails."""
    blob = _big_backup(data)
    plan = restore_state(BACKUP, **_kw(data))
    assert plan.details["verify"]["hash"] == "blake3"
    f = blob if which == "big" else data / "backups" / BACKUP / "state" / "metadata.json"
    _same_size_change(f)
    before = hash_tree(data / "state")
    with pytest.raises(PlanError):
        restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert hash_tree(data / "state") == before
    assert not list(data.glob(".zcnb-staging-*"))
    again = restore_state(BACKUP, **_kw(data))  # a new dry run sees (and confirms) the new content
    res = restore_state(BACKUP, execute=True, confirm=again.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"]
    assert (data / "state" / f.relative_to(data / "backups" / BACKUP / "state")).read_bytes() == f.read_bytes()


@pytest.mark.parametrize("which", ["big", "small"])
def test_same_size_change_a_blind_fingerprint_misses_is_caught_by_the_staging_hash(
        data: Path, which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: a fingerprint that does not see the change (as a write within one clock tick, or a raw write to
    the device, would not). The record is reused, and the bytes copied, hashed while written, differ from the
    verified hashes: the restore stops before the swap, the state untouched, the staging copy gone."""
    from zcnb.state import verified as verified_mod

    blob = _big_backup(data)
    plan = restore_state(BACKUP, **_kw(data))
    saved = json.loads(record_path(data / "state").read_text())["fingerprint"]
    f = blob if which == "big" else data / "backups" / BACKUP / "state" / "metadata.json"
    _same_size_change(f)
    monkeypatch.setattr(verified_mod, "backup_fingerprint", lambda root: saved)
    before = hash_tree(data / "state")
    with pytest.raises(StateError, match="does not match the backup"):
        restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert hash_tree(data / "state") == before
    assert not list(data.glob(".zcnb-staging-*"))


def test_the_fingerprint_holds_device_inode_size_mtime_and_ctime(data: Path) -> None:
    root = data / "backups" / BACKUP
    fp = backup_fingerprint(root)
    assert fp is not None
    st = os.lstat(root / "state" / "metadata.json")
    assert fp["state/metadata.json"] == ["f", st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, "", st.st_dev]


def test_sha256_manifest_still_verifies_and_listed_files_are_read_once(data: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Content hashed with blake3; a ``sha256sum`` manifest (zcnb's backups write one) is checked with sha256
    computed from the same read: no listed content file is opened a second time."""
    from zcnb.state import verify as verify_mod

    root = data / "backups" / BACKUP
    content = hash_tree(root / "state")  # sha256
    lines = [f"{h[2:]}  state/{rel}" for rel, h in sorted(content.items()) if h.startswith("f:")]
    (root / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")

    def no_second_read(path: Path) -> str:
        raise AssertionError(f"{path} read a second time")

    monkeypatch.setattr(verify_mod, "file_sha256", no_second_read)
    vr = verify_backup(root)
    assert vr.ok and vr.algo == "blake3" and vr.manifest_checked == len(lines)
    assert vr.hashes != content and set(vr.hashes) == set(content)  # blake3 digests, same entries


def test_backup_made_by_zcnb_restores_with_its_sha256_manifest(data: Path) -> None:
    from zcnb.state import make_backup

    plan = restore_state(BACKUP, **_kw(data))  # a valid state first (the sample's live state is corrupt)
    assert restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data)).outcome == "ok"
    bplan = make_backup(**_kw(data))
    made = Path(make_backup(execute=True, confirm=bplan.plan_id, **_kw(data)).details["backup"])
    for line in (made / "MANIFEST.sha256").read_text().splitlines():  # the manifest zcnb writes stays sha256
        digest, rel = line.split(maxsplit=1)
        assert digest == hashlib.sha256((made / rel).read_bytes()).hexdigest()
    vr = verify_backup(made)
    assert vr.ok and vr.algo == "blake3" and vr.manifest == "MANIFEST.sha256" and vr.manifest_checked >= vr.file_count
    plan = restore_state(made.name, **_kw(data))
    res = restore_state(made.name, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"]


def test_without_blake3_the_restore_uses_sha256(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: the blake3 package not installed. Everything falls back to sha256 (recorded as such)."""
    from zcnb.state import tree as tree_mod
    from zcnb.state.crashlog import crash_log_path

    restore_state(BACKUP, **_kw(data))  # a blake3 record ...
    with monkeypatch.context() as m:
        m.setattr(tree_mod, "_blake3", None)
        plan = restore_state(BACKUP, **_kw(data))  # ... replaced by a sha256 one
        assert plan.details["verify"]["hash"] == "sha256"
        assert plan.details["verify"]["digest"] == tree_mod.tree_digest(hash_tree(data / "backups" / BACKUP / "state"))
        res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"]
    assert hash_tree(data / "state") == hash_tree(data / "backups" / BACKUP / "state")
    assert json.loads(crash_log_path(data / "state").read_text())["hash_algo"] == "sha256"


def test_record_of_another_algorithm_is_not_reused(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zcnb.state import tree as tree_mod

    with monkeypatch.context() as m:  # (not monkeypatch.undo(): that would also undo the fixture's settings)
        m.setattr(tree_mod, "_blake3", None)
        plan = restore_state(BACKUP, **_kw(data))  # a sha256 record
    with pytest.raises(PlanError):  # verified again with blake3: another digest, so another plan id
        restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    plan = restore_state(BACKUP, **_kw(data))
    res = restore_state(BACKUP, execute=True, confirm=plan.plan_id, **_kw(data))
    assert res.outcome == "ok" and res.details["verify"]["reused_verification_of"]


def test_resume_of_a_journal_without_its_algorithm_checks_with_sha256(data: Path) -> None:
    """A crash log written before the algorithm was recorded holds sha256 hashes: a resumed restore (which
    hashes every file of the live state) must check them with sha256, and finds the state equal."""
    from zcnb.state import resume_restore
    from zcnb.state.crashlog import crash_log_path

    class Crash(BaseException):
        pass

    def crash(name: str) -> None:
        if name == "quarantine":
            raise Crash

    plan = restore_state(BACKUP, **_kw(data))
    with pytest.raises(Crash):
        restore_state(BACKUP, execute=True, confirm=plan.plan_id, on_step=crash, **_kw(data))
    log = crash_log_path(data / "state")
    j = json.loads(log.read_text())
    assert j["hash_algo"] == "blake3"
    del j["hash_algo"]
    j["hashes"] = hash_tree(Path(j["content"]))  # what an older version recorded: sha256
    log.write_text(json.dumps(j))
    rplan = resume_restore(state_dir=data / "state")
    res = resume_restore(state_dir=data / "state", execute=True, confirm=rplan.plan_id)
    assert res.outcome == "ok" and res.details["verified"], res.message


def test_process_list_check_still_finds_a_gateway_process(data: Path, tmp_path: Path) -> None:
    """The quick ``/proc`` pre-check answers only "surely none"; a real process whose command line matches (here
    across an argument boundary: the pattern spans two argv entries) still makes the restore refuse."""
    import subprocess
    import sys
    import time
    import uuid

    from zcnb.state.gateway import _surely_no_match, process_running

    tag = "zcnb-gw-" + uuid.uuid4().hex[:8]
    pidfile = tmp_path / "pid"
    # an orphan (not a child of this test, which the full look-up would leave out)
    cmd = f"{sys.executable} -c 'import time; time.sleep(30)' {tag}"
    subprocess.run(["sh", "-c", f"({cmd} & echo $! > {pidfile})"], check=True)
    time.sleep(0.3)
    pid = int(pidfile.read_text())
    try:
        pattern = rf"time\.sleep\(30\) {tag}"
        assert not _surely_no_match(pattern) and not _surely_no_match(tag)
        assert _surely_no_match(tag + "-absent")
        assert process_running(pattern).running
        plan = restore_state(BACKUP, process_pattern=pattern, **_kw(data))
        assert plan.details["gateway_active"] is True
        before = hash_tree(data / "state")
        with pytest.raises(StateError, match="is running"):
            restore_state(BACKUP, execute=True, confirm=plan.plan_id, process_pattern=pattern, **_kw(data))
        assert hash_tree(data / "state") == before
    finally:
        os.kill(pid, 9)
    assert not process_running(tag).running


def test_old_records_are_pruned_at_most_once_an_hour(data: Path) -> None:
    import time

    folder = record_path(data / "state").parent
    folder.mkdir(parents=True)
    old = folder / ("0" * 32 + ".json")
    old.write_text("{}")
    month = time.time() - 31 * 86400
    os.utime(old, (month, month))
    restore_state(BACKUP, **_kw(data))
    assert not old.exists() and record_path(data / "state").is_file()
    assert record_path(data / "state").stat().st_mode & 0o777 == 0o600
    old.write_text("{}")
    os.utime(old, (month, month))
    restore_state(BACKUP, **_kw(data))
    assert old.exists()  # pruned less than an hour ago: not again
    hour = time.time() - 3601
    os.utime(folder / ".pruned", (hour, hour))
    restore_state(BACKUP, **_kw(data))
    assert not old.exists()
