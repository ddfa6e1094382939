"""The main job end to end: `zcnb demo` on the simulated gateway, its report, and the report in Chromium.

Runs the real command once for the module (a subprocess with its own HOME and ``$TMPDIR``, default settings:
about a minute and a half), so this module is slow. The report is then rendered by a real headless Chromium
(DOM and PDF) and read back with pdftotext.
"""

from __future__ import annotations

import itertools
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
needs_pdf = pytest.mark.skipif(CHROMIUM is None or shutil.which("pdftotext") is None,
                               reason="needs chromium and poppler-utils (apt-get install chromium poppler-utils)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("demo-home")
    incidents, tmp = home / "incidents", home / "tmp"
    tmp.mkdir()
    env = {**os.environ, "GATEWAY_AUTH_TOKEN": TOKEN, "XDG_DATA_HOME": str(home / "data"), "HOME": str(home),
           "MPLBACKEND": "Agg", "TMPDIR": str(tmp), "ZCNB_RUNTIME_DIR": str(home / "run")}
    pdf = ["--pdf"] if CHROMIUM else []
    proc = subprocess.run([sys.executable, "-m", "zcnb", "demo", "--incidents-dir", str(incidents), *pdf],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    folders = [p for p in incidents.iterdir() if p.is_dir()] if incidents.exists() else []
    return {"proc": proc, "folder": folders[0] if folders else None, "incidents": incidents, "tmp": tmp}


def _folder(demo: dict[str, object]) -> Path:
    proc = demo["proc"]
    assert isinstance(proc, subprocess.CompletedProcess)
    assert proc.returncode == 0, f"zcnb demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    folder = demo["folder"]
    assert isinstance(folder, Path)
    return folder


def _pdf_text(folder: Path, *, layout: bool = False) -> str:
    args = ["pdftotext", *(["-layout"] if layout else []), str(folder / "report.pdf"), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _squash(text: str) -> str:
    """Text without any whitespace: a command wrapped over lines in the PDF still matches."""
    return re.sub(r"\s+", "", text)


def test_demo_prints_the_report_path_and_leaves_nothing_running(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    out = demo["proc"].stdout  # type: ignore[union-attr]
    m = re.search(r"^report: (.+report\.html)$", out, re.MULTILINE)
    assert m and Path(m.group(1)) == folder / "report.html" and (folder / "report.html").is_file()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert str(folder.parent) not in ps and "zcnb-demo-" not in ps, "a demo process is still running"


def test_demo_says_what_it_does_step_by_step_without_transport_warnings(demo: dict[str, object]) -> None:
    """One line per step in order; progress bars end at 100 %; no kernel transport warnings; TMPDIR empty."""
    _folder(demo)
    proc = demo["proc"]
    assert isinstance(proc, subprocess.CompletedProcess)
    steps = [r"^gateway started: pid \d+ at http://127\.0\.0\.1:\d+", r"^traffic: ", r"^sampling: psutil every ",
             r"^restart: ok, pid (\d+) -> (\d+) in \d", r"^sampling done: \d+ samples", r"^logs: \d+ journal lines",
             r"^stage 1/6 ", r"^stage 6/6 05_incident_report\.ipynb: ok", r"^report: report\.html written",
             r"^index: .*index\.html$"]
    positions = []
    for pattern in steps:
        m = re.search(pattern, proc.stdout, re.MULTILINE)
        assert m, f"no step line matching {pattern!r} in:\n{proc.stdout}"
        positions.append(m.start())
    assert positions == sorted(positions), "step lines out of order"
    old, new = re.search(steps[3], proc.stdout, re.MULTILINE).groups()  # type: ignore[union-attr]
    assert old != new
    bars = [b for b in re.split(r"[\r\n]", proc.stderr) if re.match(r"^sampling:\s+\d+%", b)]
    assert bars and bars[-1].startswith("sampling: 100%"), bars[-3:]
    assert "without encryption" not in proc.stderr + proc.stdout, "kernel transport warning printed"
    assert "Traceback" not in proc.stderr
    left = sorted(p.name for p in demo["tmp"].iterdir())  # type: ignore[union-attr]
    assert not left, f"the demo left {left} in TMPDIR"


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
    assert summary["correlation"]["evidence"] == "strong", summary["correlation"]
    # bytes retained per event close to what the simulator leaks per request (64 KiB)
    assert 0.7 * truth["leak_bytes"] < top["bytes_per_event"] < 1.3 * truth["leak_bytes"], top
    assert summary["leak_report"] and summary["leak_report"]["top_sites"], "the exit-time leak report was not found"
    assert all(e["kind"] != "action" or "dry" not in e["what"] for e in summary["timeline"])


def test_index_lists_the_demo_with_severity_and_time_to_limit(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    index = (folder.parent / "index.html").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    row = next(r for r in index.split("<tr>") if folder.name in r)
    assert "leak" in row and summary["assessment"]["severity"] in row
    assert re.search(r"\d+(\.\d)? (s|min|h|d)\b", row), f"no time to limit in {row}"
    assert "report.html" in row


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


def test_timeline_labels_do_not_overlap_and_dry_runs_are_not_on_it(demo: dict[str, object]) -> None:
    """The label boxes as matplotlib drew them (figures/timeline_labels.json) are pairwise disjoint."""
    folder = _folder(demo)
    drawn = json.loads((folder / "figures" / "timeline_labels.json").read_text())
    boxes = drawn["labels"]
    timeline = json.loads((folder / "summary.json").read_text())["timeline"]
    assert len(boxes) == len(timeline) >= 5, (boxes, timeline)
    for a, b in itertools.combinations(boxes, 2):
        apart = a["x1"] <= b["x0"] or b["x1"] <= a["x0"] or a["y1"] <= b["y0"] or b["y1"] <= a["y0"]
        assert apart, f"timeline labels overlap: {a['text']!r} and {b['text']!r}"
    for box in boxes:
        assert 0 <= box["x0"] < box["x1"] <= drawn["width_px"] and 0 <= box["y0"] < box["y1"] <= drawn["height_px"]
    kinds = [e["kind"] for e in timeline]
    assert {"onset", "detectable", "action", "restart", "recovery"} <= set(kinds), kinds
    labels = sorted(int(b["text"].split()[0]) for b in boxes)
    assert labels == list(range(1, len(timeline) + 1)), "figure numbers must match the table's"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: apt-get install chromium")
def test_report_renders_in_headless_chromium_summary_first_without_not_available(demo: dict[str, object],
                                                                                   tmp_path: Path) -> None:
    from PIL import Image

    folder = _folder(demo)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'ud'}"]
    url = (folder / "report.html").as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False).stdout
    imgs = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]{2000,})"', dom)
    assert len(imgs) >= 4, "the rendered page should show the memory, timeline, skills and correlation figures"
    assert re.search(r'alt="memory over time"', dom) and re.search(r'alt="evidence timeline"', dom)
    heads = re.findall(r"<h[12][^>]*>(.*?)</h[12]>", dom, re.DOTALL)
    titles = [re.sub(r"<[^>]+>|¶", "", h).strip() for h in heads]
    assert titles[0].startswith("Memory-leak incident") and titles[1] == "Summary", titles[:4]
    order = [titles.index(t) for t in ("Summary", "Impact and detection", "Root-cause evidence", "Resolution",
                                         "Action items", "Evidence")]
    assert order == sorted(order), titles
    assert "Stage 05" not in dom and "shows the bundled sample incident" not in dom, "notebook boilerplate in report"
    assert "not available" not in dom.lower()
    table = re.search(r"<table class=\"zcnb skills\">(.*?)</table>", dom, re.DOTALL)
    assert table and table.group(1).count("<tr>") >= 3, "skills table missing from the rendered page"
    assert not re.search(r"\d\.\d{4,} s\b|\de-0\d", dom), "durations must be human (0.6 s), not 0.595853 or 7e-06"
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", re.sub(r"<[^>]+>", " ", dom)), "timestamps with microseconds"
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,3000", url], capture_output=True,
                   timeout=120, check=True)
    img = Image.open(shot).convert("L")
    colours = img.getcolors(maxcolors=1 << 16) or []
    assert img.size == (1280, 3000) and len(colours) > 50, "screenshot looks blank"


@needs_pdf
def test_demo_pdf_keeps_every_executed_command_and_starts_with_the_summary(demo: dict[str, object]) -> None:
    folder = _folder(demo)
    out = demo["proc"].stdout  # type: ignore[union-attr]
    pdf = folder / "report.pdf"
    assert f"pdf: {pdf}" in out and pdf.read_bytes()[:5] == b"%PDF-"
    text = _pdf_text(folder)
    summary = json.loads((folder / "summary.json").read_text())
    executed = [a for a in summary["actions"] if not a["dry_run"]]
    assert executed, "the demo executes a restart"
    # -layout: plain pdftotext joins a line that ends in "-" with the next one as a hyphenated word, dropping
    # the "-" (a long command wrapped as "--seed 7 -" / "-exit-with-parent" would lose one of its dashes).
    flat = _squash(_pdf_text(folder, layout=True))
    for action in executed:
        for command in action["commands"]:
            assert _squash(command) in flat, f"executed command missing from the PDF: {command[:120]}"
    first = text.index("Summary")
    for later in ("Impact and detection", "Root-cause evidence", "Resolution", "Action items", "Evidence"):
        assert text.index(later) > first, later
    assert text.index("Summary") < text.index("Leak verdict")
    assert re.search(r"verdict\s+leak", text, re.IGNORECASE), text[:2000]
    truth = json.loads((folder / "ground_truth.json").read_text())
    for skill in truth["skills"]:
        assert skill.replace("_", "-") in text, f"skill {skill} missing from the PDF"
    assert "not available" not in text.lower()
    assert TOKEN not in text and "file://" not in text, "the PDF leaks the token or the printing header/footer"
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                              check=True).stdout).group(1))  # type: ignore[union-attr]
    assert pages >= 3
