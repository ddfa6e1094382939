"""The main job end to end: `zcnb demo` on the simulated gateway, its report, and the report in Chromium.

Runs the real command (a subprocess, default durations: about 4 minutes), so this module is slow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TOKEN = "zcnb-test-token-Zq81xWv3LmN0pR7s"
CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)),
                None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("demo-home")
    incidents = home / "incidents"
    env = {**os.environ, "GATEWAY_AUTH_TOKEN": TOKEN, "XDG_DATA_HOME": str(home / "data"), "HOME": str(home),
           "MPLBACKEND": "Agg"}
    pdf = ["--pdf"] if CHROMIUM else []
    proc = subprocess.run([sys.executable, "-m", "zcnb", "demo", "--incidents-dir", str(incidents), "--no-progress",
                           *pdf], env=env, capture_output=True, text=True, timeout=600, check=False)
    folders = [p for p in incidents.iterdir() if p.is_dir()] if incidents.exists() else []
    return {"proc": proc, "folder": folders[0] if folders else None, "incidents": incidents}


def _folder(demo: dict[str, object]) -> Path:
    proc = demo["proc"]
    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 0, f"zcnb demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    folder = demo["folder"]
    assert isinstance(folder, Path)
    return folder


def test_demo_prints_the_report_path_and_leaves_nothing_running(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    out = demo["proc"].stdout  # type: ignore[union-attr]
    m = re.search(r"^report: (.+report\.html)$", out, re.MULTILINE)
    assert m and Path(m.group(1)) == folder / "report.html" and (folder / "report.html").is_file()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert str(folder.parent) not in ps and "zcnb-demo-" not in ps, "a demo process is still running"


def test_demo_report_has_leak_verdict_restart_and_true_skill_counts(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    summary = json.loads((folder / "summary.json").read_text())
    truth = json.loads((folder / "ground_truth.json").read_text())
    assert summary["ok"], summary.get("failed_stages")
    assert summary["assessment"]["verdict"] == "leak"
    assert summary["restarts"] and any(r["source"] == "action" for r in summary["restarts"])
    assert all(r["timestamp"] for r in summary["restarts"])
    canon = {k.replace("_", "-"): v for k, v in truth["skills"].items()}
    assert {k.replace("_", "-"): v for k, v in summary["skills"].items()} == canon
    top = summary["top_activity"]
    assert top is not None and truth["leak_kind"] in json.dumps(top).lower(), top


def test_no_token_or_key_anywhere_in_the_incident_folder(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    patterns = [re.compile(re.escape(TOKEN).encode()), re.compile(rb"nvapi-[A-Za-z0-9_-]{8,}"),
                re.compile(rb"\bsk-[A-Za-z0-9]{16,}"), re.compile(rb"Bearer [A-Za-z0-9._~+/-]{12,}")]
    files = [p for p in folder.parent.rglob("*") if p.is_file()]
    assert len(files) > 8
    for path in files:
        data = path.read_bytes()
        for pat in patterns:
            assert not pat.search(data), f"{pat.pattern!r} found in {path}"


def test_incident_folder_is_private(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    assert folder.stat().st_mode & 0o777 == 0o700
    for p in folder.rglob("*"):
        assert p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600), p


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: apt-get install chromium")
def test_report_renders_in_headless_chromium_with_plot_and_skills_table(demo: dict[str, object],
                                                                          tmp_path: Path) -> None:
    from PIL import Image

    folder = _folder(demo)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'ud'}"]
    url = (folder / "report.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False).stdout
    imgs = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]{2000,})"', dom)
    assert len(imgs) >= 3, "the rendered page should show the memory, timeline and skills figures"
    assert re.search(r'alt="memory over time"', dom)
    table = re.search(r"<table class=\"zcnb skills\">(.*?)</table>", dom, re.DOTALL)
    assert table and table.group(1).count("<tr>") >= 3, "skills table missing from the rendered page"
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,3000", url], capture_output=True,
                   timeout=120, check=True)
    img = Image.open(shot).convert("L")
    colours = img.getcolors(maxcolors=1 << 16) or []
    assert img.size == (1280, 3000) and len(colours) > 50, "screenshot looks blank"


@pytest.mark.skipif(CHROMIUM is None or shutil.which("pdftotext") is None,
                    reason="needs chromium and poppler-utils (apt-get install chromium poppler-utils)")
def test_demo_pdf_report_holds_verdict_skills_and_no_secret(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    out = demo["proc"].stdout  # type: ignore[union-attr]
    pdf = folder / "report.pdf"
    assert f"pdf: {pdf}" in out and pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                              check=True).stdout).group(1))  # type: ignore[union-attr]
    assert pages >= 2
    assert re.search(r"verdict\W+leak", text, re.IGNORECASE), text[:2000]
    truth = json.loads((folder / "ground_truth.json").read_text())
    for skill in truth["skills"]:
        assert skill.replace("_", "-") in text, f"skill {skill} missing from the PDF"
    assert TOKEN not in text and "file://" not in text, "the PDF leaks the token or the printing header/footer"
