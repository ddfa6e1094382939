"""The incident report as PDF, printed by a headless Chromium from ``report.html``.

For attaching to a ticket or a post-mortem where HTML is not welcome. zcnb does not bundle a
browser: it uses Chromium or Google Chrome when one is installed (``apt-get install chromium``),
or the one named by ``$ZCNB_CHROMIUM``; without one, a clear :class:`~zcnb.exceptions.ReportError`
says so (the HTML report is unaffected). The browser runs with a throw-away profile, without
network services, sandboxed unless running as root, and prints without header and footer (which
would otherwise show the file path and date of printing). The report itself loads nothing from
the network (see :func:`zcnb.report.export_html`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..exceptions import ReportError

__all__ = ["export_pdf", "find_chromium"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_DEBIAN_BINARY = "/usr/lib/chromium/chromium"  # Debian's wrapper script sources /etc; the binary is quicker


def find_chromium(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The Chromium/Chrome executable to print with: ``explicit``, ``$ZCNB_CHROMIUM``, then PATH."""
    wanted = explicit or os.environ.get("ZCNB_CHROMIUM")
    if wanted:
        p = Path(wanted)
        found = p if p.is_file() and os.access(p, os.X_OK) else shutil.which(str(wanted))
        if not found:
            raise ReportError(f"Chromium not found at {wanted!s}",
                              hint="give the path of a chromium or google-chrome executable", path=str(wanted))
        return Path(found)
    if os.access(_DEBIAN_BINARY, os.X_OK):
        return Path(_DEBIAN_BINARY)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ReportError("no Chromium or Google Chrome found to print the PDF with",
                      hint="install one (Debian/Ubuntu: apt-get install chromium) or set ZCNB_CHROMIUM=/path/to/chrome;"
                           " report.html is complete without it")


def export_pdf(html_path: str | os.PathLike[str], pdf_path: str | os.PathLike[str] | None = None, *,
               chromium: str | os.PathLike[str] | None = None, timeout_s: float = 120.0) -> Path:
    """Print ``html_path`` to PDF (no header/footer); the file is written 0600 and atomically.

    ``pdf_path`` defaults to the HTML's name with ``.pdf``. Raises ReportError when the HTML is
    missing, no browser is found, the browser fails or times out, or what it wrote is not a PDF.
    """
    src = Path(html_path)
    if not src.is_file():
        raise ReportError(f"no report to print at {src}", hint="run `zcnb report` first", path=str(src))
    dest = Path(pdf_path) if pdf_path else src.with_suffix(".pdf")
    if not dest.parent.is_dir():
        raise ReportError(f"cannot write {dest}: folder {dest.parent} does not exist",
                          hint="create the folder first, or choose another --out", path=str(dest))
    browser = find_chromium(chromium)
    with tempfile.TemporaryDirectory(prefix="zcnb-pdf-") as tmp:
        out = Path(tmp) / "report.pdf"
        cmd = [
            str(browser), "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-features=Translate,MediaRouter,OptimizationHints",
            f"--user-data-dir={Path(tmp) / 'profile'}", "--no-pdf-header-footer", "--print-to-pdf-no-header",
            "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000",
            f"--print-to-pdf={out}", src.resolve().as_uri(),
        ]
        if os.geteuid() == 0:
            cmd.insert(2, "--no-sandbox")  # Chromium refuses to start as root with its sandbox
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"{browser.name} did not finish printing {src.name} within {timeout_s:.0f} s",
                              hint="raise timeout_s, or open report.html and print it from a browser") from exc
        except OSError as exc:
            raise ReportError(f"could not run {browser}: {exc}", hint="check ZCNB_CHROMIUM / the installation") from exc
        head = out.read_bytes()[:5] if out.is_file() else b""
        if proc.returncode != 0 or head != b"%PDF-":
            tail = " | ".join(line for line in (proc.stderr or "").strip().splitlines()[-3:])
            raise ReportError(f"{browser.name} did not print a PDF (exit {proc.returncode}): {tail or 'no output'}",
                              hint="run the command by hand to see why, or print report.html from a browser",
                              path=str(src))
        fd, part = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(out, part)
            os.chmod(part, 0o600)
            with open(part, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(part, dest)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
    return dest
