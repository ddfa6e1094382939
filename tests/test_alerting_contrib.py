"""The configuration shipped in ``contrib/`` and shown in the README is valid for the real tools.

``promtool check config`` (with the rules of ``zcnb alert-rules``), ``amtool check-config`` and
``systemd-analyze verify`` (a static check of unit files: it starts no service manager). The README's
"Run it on alert" section shows these files verbatim.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alerting_helpers import need
from zcnb.monitor.rules import rules_yaml

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"


def test_prometheus_snippet_with_the_rules(tmp_path: Path) -> None:
    exe = need("promtool", "promtool (apt-get install prometheus)")
    (tmp_path / "zeptoclaw.rules.yml").write_text(rules_yaml())
    text = (CONTRIB / "prometheus" / "zcnb-exporter.yml").read_text()
    assert "/etc/prometheus/zeptoclaw.rules.yml" in text and "honor_labels: true" in text
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(text.replace("/etc/prometheus/zeptoclaw.rules.yml", str(tmp_path / "zeptoclaw.rules.yml")))
    proc = subprocess.run([exe, "check", "config", str(cfg)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "SUCCESS: 4 rules found" in proc.stdout, proc.stdout + proc.stderr


def test_alertmanager_snippet(tmp_path: Path) -> None:
    exe = need("amtool", "amtool (apt-get install prometheus-alertmanager)")
    token = tmp_path / "zcnb-receiver.token"
    token.write_text("x" * 32)
    token.chmod(0o600)
    text = (CONTRIB / "alertmanager" / "zcnb-receiver.yml").read_text()
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(text.replace("/etc/prometheus/zcnb-receiver.token", str(token)))
    proc = subprocess.run([exe, "check-config", str(cfg)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    assert 'matchers: [\'runbook="memory-leak"\']' in text and "send_resolved: true" in text


@pytest.mark.parametrize("unit", ["zcnb-exporter.service", "zcnb-receiver.service"])
def test_unit_files_verify(tmp_path: Path, unit: str) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed")
    text = (CONTRIB / "systemd" / unit).read_text()
    assert "ExecStart=%h/.local/bin/zcnb " in text and "127.0.0.1:" in text
    # The installed zcnb's path differs per machine: check the unit with this checkout's zcnb.
    (tmp_path / unit).write_text(text.replace("%h/.local/bin/zcnb", f"{sys.executable} -m zcnb"))
    proc = subprocess.run([exe, "verify", str(tmp_path / unit)], capture_output=True, text=True, check=False,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_readme_shows_the_contrib_files() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run it on alert", 1)[1].split("\n## ", 1)[0]
    for rel in ("prometheus/zcnb-exporter.yml", "alertmanager/zcnb-receiver.yml", "systemd/zcnb-exporter.service"):
        assert (CONTRIB / rel).read_text().strip() in section, f"README differs from contrib/{rel}"
    assert "zcnb alert-rules" in section and (ROOT / "docs" / "alerting.md").is_file()
