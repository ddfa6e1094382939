"""Stage 04: backups (list, verify, create) and a restore that never loses data.

Public API (stable: stage 06's rollback calls :func:`restore_state`)::

    list_backups(backups_dir=None, *, settings=None) -> BackupList   # newest first, .latest(), .to_frame()
    resolve_backup(backup="latest", *, backups_dir=None) -> BackupInfo
    verify_backup(path, *, layout=None) -> VerifyResult
    check_state(state_dir) -> VerifyResult
    make_backup(state_dir=None, *, backups_dir=None, binaries=(), commit=None, execute=False, confirm=None) -> ActionResult
    restore_state(backup="latest", *, state_dir=None, backups_dir=None, quarantine_dir=None, service=None,
                  unit=..., stop_gateway=False, execute=False, confirm=None, process_pattern=None) -> ActionResult
    resume_restore(*, state_dir=None, service=None, execute=False, confirm=None) -> ActionResult
    undo_restore(*, state_dir=None, quarantine_dir=None, service=None, stop_gateway=False, execute=False,
                 confirm=None) -> ActionResult
    sample_data_dir() / copy_sample_data(dest=None) -> Path        # bundled demo tree
"""

from __future__ import annotations

from .backups import BackupInfo, BackupList, list_backups, make_backup, resolve_backup
from .restore import DEFAULT_UNIT, restore_state, resume_restore
from .sample import copy_sample_data, sample_data_dir
from .tree import hash_tree, tree_digest
from .undo import undo_restore
from .verify import VerifyResult, check_state, verify_backup

__all__ = [
    "DEFAULT_UNIT",
    "BackupInfo",
    "BackupList",
    "VerifyResult",
    "check_state",
    "copy_sample_data",
    "hash_tree",
    "list_backups",
    "make_backup",
    "resolve_backup",
    "restore_state",
    "resume_restore",
    "sample_data_dir",
    "tree_digest",
    "undo_restore",
    "verify_backup",
]
