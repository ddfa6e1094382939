"""The HTML report loads nothing from the network, and prints to PDF in a real headless Chromium.

A loopback HTTP server counts requests: a page that embeds an image from it is fetched when
printed without zcnb's template (the control, so the check can fail) and not fetched when the
same output goes through ``export_html``.
"""

from __future__ import annotations

import http.server
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from zcnb.exceptions import ReportError
from zcnb.report import export_html, run_incident
from zcnb.report.pdf import export_pdf, find_chromium

try:
    CHROMIUM: Path | None = find_chromium()
except ReportError:
    CHROMIUM = None
needs_chromium = pytest.mark.skipif(CHROMIUM is None or shutil.which("pdftotext") is None,
                                    reason="needs chromium and poppler-utils (apt-get install chromium poppler-utils)")


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("H", (_Counter,), {"hits": hits})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()


def _notebook(path: Path, img_url: str) -> Path:
    nb = new_notebook()
    cell = new_code_cell("show()")
    cell.outputs = [new_output("display_data", data={
        "text/html": f"<p>Verdict: <b>leak</b></p><img alt='probe' src='{img_url}/pixel.png'>",
        "text/plain": "Verdict: leak"})]
    nb.cells = [new_markdown_cell("# Memory-leak incident\n\nGrowth 448 MiB/h, time to limit 3.1 h."), cell]
    nbformat.write(nb, path)
    return path


def test_export_html_has_no_cdn_script_a_csp_and_a_title(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "05.ipynb", "http://127.0.0.1:9")
    html = export_html(nb, tmp_path / "report.html").read_text()
    assert "<script src" not in html and "cdnjs" not in html and "mathjax" not in html.lower()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert f"<title>ZeptoClaw memory incident {tmp_path.name}</title>" in html
    assert "show()" not in html, "inputs must be hidden"
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o600


@needs_chromium
def test_printed_report_fetches_nothing_but_a_plain_page_would(tmp_path: Path,
                                                                counting_server: tuple[str, list[str]]) -> None:
    url, hits = counting_server
    plain = tmp_path / "plain.html"
    plain.write_text(f"<html><body><p>control</p><img src='{url}/pixel.png'></body></html>")
    export_pdf(plain, tmp_path / "plain.pdf")
    assert hits, "control: Chromium should have fetched the image of a page without the policy"
    hits.clear()
    html = export_html(_notebook(tmp_path / "05.ipynb", url), tmp_path / "report.html")
    pdf = export_pdf(html)
    assert pdf == tmp_path / "report.pdf" and hits == [], f"the report fetched {hits}"
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o600
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Memory-leak incident" in text and "448 MiB/h" in text and "Verdict: leak" in text
    assert "file://" not in text and str(tmp_path) not in text, "printing header/footer must be off"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert f"ZeptoClaw memory incident {tmp_path.name}" in info


def test_export_pdf_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ReportError, match="no report to print") as e1:
        export_pdf(tmp_path / "missing.html")
    assert "zcnb report" in str(e1.value)
    page = tmp_path / "r.html"
    page.write_text("<p>x</p>")
    with pytest.raises(ReportError, match="Chromium not found at"):
        export_pdf(page, chromium=tmp_path / "no-such-browser")
    monkeypatch.setenv("ZCNB_CHROMIUM", str(tmp_path / "also-missing"))
    with pytest.raises(ReportError, match="also-missing"):
        export_pdf(page)
    # A "browser" that exits 0 without writing anything, and one that writes something that is not a PDF.
    fake = tmp_path / "fake-chrome"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --print-to-pdf=*) echo '<html>' > \"${a#*=}\";;"
                    " esac; done\necho 'GPU process crashed' >&2\nexit 0\n")
    fake.chmod(0o755)
    with pytest.raises(ReportError, match=r"did not print a PDF \(exit 0\): GPU process crashed"):
        export_pdf(page, chromium=fake)
    with pytest.raises(ReportError, match="did not print a PDF"):
        export_pdf(page, chromium=shutil.which("true"))
    assert not (tmp_path / "r.pdf").exists(), "nothing may be left behind on failure"


def test_no_browser_anywhere_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH emptied and the Debian location hidden: the error names the package to install."""
    monkeypatch.delenv("ZCNB_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("zcnb.report.pdf._DEBIAN_BINARY", str(tmp_path / "none"))
    with pytest.raises(ReportError, match="apt-get install chromium"):
        find_chromium()


@pytest.mark.slow
def test_run_incident_with_pdf_that_cannot_print_keeps_html_and_is_not_ok(tmp_path: Path) -> None:
    run = run_incident(incidents_dir=tmp_path, stages=["04"], progress=False, pdf=True,
                       chromium=shutil.which("false"))
    assert run.report_html is not None and run.report_html.is_file()
    assert run.report_pdf is None and run.pdf_error and "did not print a PDF" in run.pdf_error
    assert not run.ok


@needs_chromium
@pytest.mark.slow
def test_cli_pdf_on_an_incident_folder(tmp_path: Path) -> None:
    folder = tmp_path / "2026-11-29T010203Z-memory-leak"
    folder.mkdir()
    export_html(_notebook(folder / "05_incident_report.ipynb", "http://127.0.0.1:9"), folder / "report.html")
    proc = subprocess.run([sys.executable, "-m", "zcnb", "pdf", str(folder)], capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"pdf: {folder / 'report.pdf'}"
    assert (folder / "report.pdf").read_bytes()[:5] == b"%PDF-"
    bad = subprocess.run([sys.executable, "-m", "zcnb", "pdf", str(tmp_path / "nope")], capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "no report to print" in bad.stderr
