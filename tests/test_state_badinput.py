"""Bad input to backups/restore: clear ZcnbError subclasses, and nothing on disk changes (tree hashes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from state_helpers import apply, tmpfs

from zcnb.cli import main
from zcnb.exceptions import BackupInvalid, StateError, UnsafePath
from zcnb.state import (
    copy_sample_data,
    hash_tree,
    list_backups,
    make_backup,
    restore_state,
    undo_restore,
    verify_backup,
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return copy_sample_data(tmp_path / "zeptoclaw")


def _restore(data: Path, backup: str, **kw: object) -> None:
    apply(restore_state, backup, **{"state_dir": data / "state", "backups_dir": data / "backups", **kw})


def _unchanged(data: Path, exc: type[Exception], match: str, backup: str, **kw: object) -> None:
    before = hash_tree(data.parent)
    with pytest.raises(exc, match=match):
        _restore(data, backup, **kw)
    assert hash_tree(data.parent) == before


@pytest.mark.parametrize("name", ["..", "../zeptoclaw", "../../etc", "20261127-221500/../..", "/etc"])
def test_names_escaping_backups_dir(data: Path, name: str) -> None:
    _unchanged(data, UnsafePath, "not (a plain folder name|inside the backups folder)", name)


def test_backup_symlinked_outside(data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data / "backups" / "20300101-000000").symlink_to(outside)
    _unchanged(data, UnsafePath, "is a symlink", "20300101-000000")
    assert "20300101-000000" not in [b.name for b in list_backups(data / "backups")]


def test_symlink_inside_backup_pointing_outside(data: Path) -> None:
    link = data / "backups" / "20261127-221500" / "state" / "sessions" / "evil.json"
    link.symlink_to("../../../../../../../etc/passwd")
    assert any("points outside" in p for p in verify_backup(link.parents[2]).problems)
    _unchanged(data, UnsafePath, "unsafe symlinks", "20261127-221500")
    link.unlink()
    (link.parent / "abs").symlink_to("/etc")
    _unchanged(data, UnsafePath, "absolute", "20261127-221500")


def test_empty_backup(data: Path) -> None:
    (data / "backups" / "20300101-000000" / "state").mkdir(parents=True)
    _unchanged(data, BackupInvalid, "holds no files", "20300101-000000")
    _unchanged(data, BackupInvalid, "holds no files", "latest")  # the empty one is the newest


def test_truncated_json(data: Path) -> None:
    _unchanged(data, BackupInvalid, r"s-0002.json is not valid JSON", "20261126-093000")


def test_unknown_name_and_missing_dirs(data: Path, tmp_path: Path) -> None:
    _unchanged(data, StateError, "no backup named 'nope'", "nope")
    _unchanged(data, StateError, "state dir .* does not exist", "latest", state_dir=data / "no-such-state")
    with pytest.raises(StateError, match="backups folder .* does not exist"):
        list_backups(tmp_path / "none")
    with pytest.raises(StateError, match="does not exist"):
        make_backup(tmp_path / "none", backups_dir=data / "backups")
    with pytest.raises(StateError, match="no restore .* recorded"):
        undo_restore(state_dir=data / "state")


def test_not_a_backup(data: Path) -> None:
    (data / "backups" / "notes").mkdir()
    (data / "backups" / "notes" / "readme.txt").write_text("hi")
    _unchanged(data, BackupInvalid, "not a recognised backup", "notes")


def test_corrupt_journal(data: Path) -> None:
    (data / ".zcnb-restore-state.json").write_text('{"version": 1, "sta')
    _unchanged(data, StateError, "journal .* is unreadable", "latest")


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Path]:
    yield from tmpfs(tmp_path / "mnt")


def test_state_dir_is_another_filesystem(data: Path, mounted: Path) -> None:
    """A state dir that is a mount point cannot be swapped by rename: refuse before touching anything."""
    (mounted / "metadata.json").write_text("{}")
    before = hash_tree(mounted)
    _unchanged(data, StateError, "mount point", "latest", state_dir=mounted)
    assert hash_tree(mounted) == before


def test_quarantine_on_another_filesystem(data: Path, mounted: Path) -> None:
    _unchanged(data, StateError, "another filesystem", "latest", quarantine_dir=mounted / "q")
    assert os.listdir(mounted) == []


def test_cli_reports_bad_input_cleanly(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = hash_tree(data)
    rc = main(["restore", "--backup", "..", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"),
               "--backend", "none", "--execute", "--confirm", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("zcnb: error: backup name '..'") and "Traceback" not in err
    assert hash_tree(data) == before
