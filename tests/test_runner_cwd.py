"""Stages run side by side in threads: each kernel starts in the incident folder, the test process's own working
directory never moves (papermill's ``cwd=`` would chdir the whole process; two threads doing it at once can
leave the caller in a folder that is later removed)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from zcnb.report.runner import _execute

pytestmark = pytest.mark.slow


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("tag = 'x'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os, time, json\ntime.sleep(0.5)\n"
                                          "open('seen.json', 'w').write(json.dumps({'tag': tag, 'cwd': os.getcwd()}))")]
    nbformat.write(nb, path)
    return path


def test_parallel_stages_keep_the_process_cwd_and_run_in_their_folder(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "probe.ipynb")
    folders = [tmp_path / f"incident-{i}" for i in range(4)]
    for f in folders:
        f.mkdir()
    before = os.getcwd()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda f: _execute(nb, f / "out.ipynb", {"tag": f.name}, progress=False, cwd=f,
                                                   kernel_name=None, timeout_s=120), folders))
    assert os.getcwd() == before
    assert [r.status for r in results] == ["ok"] * 4, [r.error for r in results]
    for f in folders:
        seen = json.loads((f / "seen.json").read_text())
        assert seen == {"tag": f.name, "cwd": str(f)}
