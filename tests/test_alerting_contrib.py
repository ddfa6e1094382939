"""The configuration shipped in ``contrib/`` and shown in the README is valid for the tools that read it.

``promtool check config`` (with the rules of ``zcnb alert-rules``) and ``amtool check-config`` check the
Prometheus and Alertmanager snippets. The systemd user units are checked here, not with ``systemd-analyze
verify``: that runs the service manager's own unit loading in-process (it loads every unit on the machine and
forks an executor), and on this machine no part of a systemd manager may run. The check parses the unit file
syntax, allows only the directives of systemd.unit(5), systemd.service(5), systemd.exec(5) and
systemd.resource-control(5) that a user unit of this kind needs, checks each value's form, and parses
``ExecStart`` with zcnb's own command line (what a wrong option would break). The README's "Run it on alert"
section shows these files verbatim.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from collections.abc import Callable
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


_BOOL = ("yes", "no", "true", "false", "on", "off", "1", "0")
_TIMESPAN = re.compile(r"^(?:\d+(?:\.\d+)?\s*(?:us|ms|s|sec|m|min|h|hr|d)?\s*)+$|^infinity$")
_UNITS = re.compile(r"^(?:[\w@.:-]+\.(?:service|target|socket|timer|path|mount)\s*)+$")
# Directive -> check of its value, per section (only what a user unit of this kind needs; see the docstring).
_DIRECTIVES: dict[str, dict[str, Callable[[str], bool]]] = {
    "Unit": {"Description": bool, "Documentation": bool, "After": _UNITS.match, "Wants": _UNITS.match,
             "Requires": _UNITS.match},
    "Service": {"Type": lambda v: v in ("simple", "exec", "notify", "oneshot"), "ExecStart": bool,
                "Restart": lambda v: v in ("no", "on-success", "on-failure", "on-abnormal", "always"),
                "RestartSec": _TIMESPAN.match, "NoNewPrivileges": lambda v: v in _BOOL,
                "UMask": lambda v: re.fullmatch(r"0?[0-7]{3}", v) is not None,
                "MemoryMax": lambda v: re.fullmatch(r"\d+[KMGT]?|\d+%|infinity", v) is not None,
                "CPUQuota": lambda v: re.fullmatch(r"\d+%", v) is not None, "Environment": bool},
    "Install": {"WantedBy": lambda v: v == "default.target"},  # a user manager's targets: default.target
}


def _unit_file(text: str) -> dict[str, dict[str, str]]:
    """Sections and directives of a unit file (systemd.syntax(7): comments, [Section], Key=Value)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"line {n}: keep each directive on one line"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep and key.strip() == key and key, f"line {n} is not Key=Value: {line!r}"
        assert key not in current or key == "Environment", f"line {n}: {key} given twice"
        current[key] = value.strip()
    return sections


def _check_directives(sections: dict[str, dict[str, str]]) -> None:
    assert set(sections) == set(_DIRECTIVES), f"sections {sorted(sections)}, not {sorted(_DIRECTIVES)}"
    for name, directives in sections.items():
        for key, value in directives.items():
            assert key in _DIRECTIVES[name], f"[{name}] {key}= is not a directive this unit may use"
            assert _DIRECTIVES[name][key](value), f"[{name}] {key}={value!r} is not a valid value"
    assert {"Description"} <= set(sections["Unit"]) and {"ExecStart", "Type"} <= set(sections["Service"])


def _exec_start(value: str, home: Path) -> argparse.Namespace:
    """ExecStart's command line, its %h expanded, parsed by zcnb's own parser (an unknown option fails)."""
    from zcnb.cli import build_parser

    assert re.findall(r"%.", value) and set(re.findall(r"%.", value)) == {"%h"}, value  # only %h (the user's home)
    argv = shlex.split(value.replace("%h", str(home)))
    assert argv[0] == f"{home}/.local/bin/zcnb", argv[0]
    return build_parser().parse_args(argv[1:])


@pytest.mark.parametrize("unit", ["zcnb-exporter.service", "zcnb-receiver.service"])
def test_unit_files_are_valid_user_units(tmp_path: Path, unit: str) -> None:
    from zcnb.commands.serving import parse_listen
    from zcnb.monitor.targets import parse_targets

    sections = _unit_file((CONTRIB / "systemd" / unit).read_text())
    _check_directives(sections)
    args = _exec_start(sections["Service"]["ExecStart"], tmp_path)
    assert args.command == unit.removeprefix("zcnb-").removesuffix(".service")
    host, _port = parse_listen(args.listen)
    assert host == "127.0.0.1"
    if args.command == "exporter":
        assert [t.unit for t in parse_targets(args.gateway)] == ["zeptoclaw-gateway.service"]
        assert "zeptoclaw-gateway.service" in sections["Unit"]["After"]
    else:
        assert args.token_file == f"{tmp_path}/.config/zcnb/receiver.token" and not args.no_auth
        assert args.prometheus_url == "http://127.0.0.1:9090"


def test_the_unit_check_finds_mistakes() -> None:
    """The check above fails on what systemd would reject or zcnb would refuse."""
    good = (CONTRIB / "systemd" / "zcnb-exporter.service").read_text()
    for bad, needle in ((good.replace("Restart=on-failure", "Restart=sometimes"), "Restart"),
                        (good.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"), "NoNewPrivilege"),
                        (good.replace("[Install]", "[Instal]"), "Instal")):
        with pytest.raises(AssertionError, match=needle):
            _check_directives(_unit_file(bad))
    ex = _unit_file(good)["Service"]["ExecStart"]
    with pytest.raises(SystemExit):
        _exec_start(ex.replace("--listen", "--listen-on"), Path("/home/u"))


def test_readme_shows_the_contrib_files() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run it on alert", 1)[1].split("\n## ", 1)[0]
    for rel in ("prometheus/zcnb-exporter.yml", "alertmanager/zcnb-receiver.yml", "systemd/zcnb-exporter.service"):
        assert (CONTRIB / rel).read_text().strip() in section, f"README differs from contrib/{rel}"
    assert "zcnb alert-rules" in section and (ROOT / "docs" / "alerting.md").is_file()
    rules = rules_yaml()
    leak = rules[rules.index("groups:"):rules.index("      - alert: ZeptoclawGatewayMemoryLeakFast")]
    assert f"```yaml\n{leak}```" in section, "README's leak rule differs from what zcnb alert-rules writes"
