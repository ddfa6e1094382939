"""``zcnb alert-rules``: the rules file passes ``promtool check rules`` and behaves on each memory pattern.

The pattern tests are ``promtool test rules`` runs (Prometheus's own rule engine) on input series of each
shape, at the default windows and a 1-minute interval: a linear leak, a fast leak and a GC sawtooth whose troughs
rise fire; a flat GC sawtooth, a warm-up plateau after a start and a one-off step do not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from zcnb.monitor.rules import RuleOptions, duration_seconds, rules_yaml
from zcnb.exceptions import ConfigError

MiB = 1 << 20
N = 181  # 3 h of 1-minute samples
LEAK, FAST, NEAR, CRASH = ("ZeptoclawGatewayMemoryLeak", "ZeptoclawGatewayMemoryLeakFast",
                           "ZeptoclawGatewayMemoryNearLimit", "ZeptoclawGatewayCrashLoop")
ROOT = Path(__file__).resolve().parent.parent


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool missing: CI installs the prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return exe


def _values(f: Callable[[int], float], n: int = N) -> str:
    return " ".join(str(int(f(i))) for i in range(n))


def _series(name: str, labels: str, values: str) -> list[str]:
    return [f"      - series: '{name}{{{labels}}}'", f"        values: '{values}'"]


def _memory_case(instance: str, f: Callable[[int], float], *, started_min_before: int = 120) -> list[str]:
    labels = f'instance="{instance}",unit="gw.service",pid="1"'
    return (_series("zcnb_gateway_resident_memory_bytes", labels, _values(f))
            + _series("zcnb_gateway_process_start_time_seconds", labels, f"{-60 * started_min_before}x{N}"))


def _expect(times: list[str], alerts: dict[str, list[str]]) -> list[str]:
    """``promql_expr_test`` entries on ``ALERTS``: at each time, exactly the listed instances fire each alert."""
    out: list[str] = []
    for t in times:
        for name, instances in alerts.items():
            out += [f"      - expr: 'ALERTS{{alertname=\"{name}\", alertstate=\"firing\"}}'", f"        eval_time: {t}"]
            if not instances:
                out.append("        exp_samples: []")
                continue
            out.append("        exp_samples:")
            sev = "warning" if name == LEAK else "critical"
            book = "crash-loop" if name == CRASH else "memory-leak"
            pid = "" if name == CRASH else ', pid="1"'
            for inst in instances:
                out += [f"          - labels: 'ALERTS{{alertname=\"{name}\", alertstate=\"firing\", "
                        f"instance=\"{inst}\"{pid}, runbook=\"{book}\", severity=\"{sev}\", unit=\"gw.service\"}}'",
                        "            value: 1"]
    return out


def _run_test(tmp: Path, rules: str, series: list[str], checks: list[str],
              extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    (tmp / "rules.yml").write_text(rules)
    (tmp / "test.yml").write_text("\n".join(["rule_files: [rules.yml]", "evaluation_interval: 1m", "tests:",
                                             "  - interval: 1m", "    input_series:", *series,
                                             "    promql_expr_test:", *checks, *extra]) + "\n")
    return subprocess.run([promtool(), "test", "rules", str(tmp / "test.yml")], capture_output=True, text=True,
                          cwd=tmp, check=False)


def test_default_and_custom_rules_pass_promtool_check(tmp_path: Path) -> None:
    exe = promtool()
    for i, opts in enumerate([RuleOptions(), RuleOptions(selector='{job="zcnb-exporter"}', limit_bytes=2 << 30,
                                                         start_metric="", for_="1h", crash_count=5)]):
        path = tmp_path / f"rules{i}.yml"
        path.write_text(rules_yaml(opts))
        proc = subprocess.run([exe, "check", "rules", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and "SUCCESS: 4 rules found" in proc.stdout, proc.stdout + proc.stderr
    text = (tmp_path / "rules1.yml").read_text()
    assert 'zcnb_gateway_resident_memory_bytes{job="zcnb-exporter"}[10m]' in text
    assert "> 2147483648" in text and "time() -" not in text and "for: 1h" in text


def test_memory_patterns(tmp_path: Path) -> None:
    shapes: dict[str, Callable[[int], float]] = {
        "linear": lambda i: 100 * MiB + i * MiB,  # 60 MiB/h: a leak, not a fast one (64 MiB/h)
        "fast": lambda i: 100 * MiB + 4 * i * MiB,  # 240 MiB/h
        "saw-rising": lambda i: 100 * MiB + i * MiB + (i % 5) * 20 * MiB,  # GC cycles on a rising baseline
        "saw-flat": lambda i: 100 * MiB + (i % 5) * 20 * MiB,  # GC cycles, troughs flat
        "step": lambda i: 100 * MiB + (100 * MiB if i >= 60 else 0),  # a cache loaded once at 1 h
        "flat": lambda i: 100 * MiB + (i % 3) * 4096,
    }
    body: list[str] = []
    for name, f in shapes.items():
        body += _memory_case(name, f)
    # Warm-up after a (re)start: 12 minutes of growth (20 MiB/min), then a plateau.
    body += _memory_case("warm-up", lambda i: 50 * MiB + min(i, 12) * 20 * MiB, started_min_before=0)
    checks = _expect(["20m"], {LEAK: [], FAST: ["fast"]})  # the leak rule waits for its `for: 30m`
    checks += _expect(["45m", "1h"], {LEAK: ["fast", "linear", "saw-rising"], FAST: ["fast"]})
    # A constant 240 MiB/h is no longer "fast" once the baseline passes 480 MiB (half of it per hour): the
    # leak rule alone stays on it.
    checks += _expect(["2h", "3h"], {LEAK: ["fast", "linear", "saw-rising"], FAST: []})
    # The alert's text carries the growth rate PromQL measured (1 MiB/min = 60 MiB/h; the sawtooth's troughs
    # rise at the same rate).
    annotations = ["    alert_rule_test:", "      - eval_time: 2h", f"        alertname: {LEAK}", "        exp_alerts:"]
    for inst, rate in (("fast", "240MiB"), ("linear", "60MiB"), ("saw-rising", "59.81MiB")):
        annotations += [
            f'          - exp_labels: {{instance: {inst}, unit: gw.service, pid: "1", severity: warning, '
            "runbook: memory-leak}",
            "            exp_annotations:",
            f'              summary: "Memory leak: {inst} (pid 1) baseline grows {rate}/h"',
            f'              description: "The memory baseline (minimum over 10m) of {inst} (pid 1) has grown for 30m and '
            'the trend over 1h is above 4194304 B/h and 0.02 of the baseline per hour. Runbook: Handling Memory Leak."']
    proc = _run_test(tmp_path, rules_yaml(), body, checks, tuple(annotations))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_warm_up_fires_without_the_age_guard(tmp_path: Path) -> None:
    """The warm-up guard is what keeps a long start-up ramp quiet: without it, the fast rule fires on one."""
    body: list[str] = []
    body += _memory_case("warm-up", lambda i: 50 * MiB + min(i, 12) * 20 * MiB, started_min_before=0)
    proc = _run_test(tmp_path, rules_yaml(RuleOptions(start_metric="")), body, _expect(["11m"], {FAST: ["warm-up"]}))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_near_limit_needs_a_known_limit(tmp_path: Path) -> None:
    labels = 'instance="{}",unit="gw.service",pid="1"'
    grow = _values(lambda i: 900 * MiB + i * MiB)  # 60 MiB/h; memory.max 1 GiB: reached within 4 h
    body: list[str] = []
    for inst in ("limited", "unlimited"):
        body += _series("zcnb_gateway_cgroup_memory_bytes", labels.format(inst), grow)
        body += _series("zcnb_gateway_process_start_time_seconds", labels.format(inst), f"-7200x{N}")
    body += _series("zcnb_gateway_cgroup_memory_max_bytes", labels.format("limited"), f"{1 << 30}x{N}")
    proc = _run_test(tmp_path, rules_yaml(), body, _expect(["1h30m"], {NEAR: ["limited"]}))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_crash_loop_counts_crashes_and_restarts(tmp_path: Path) -> None:
    labels = 'instance="{}",unit="gw.service"'
    body: list[str] = []
    zeros = "0x30"
    body += _series("zcnb_gateway_crashes_total", labels.format("crashing"), "0 0 0 1 1 2 2 3 3 3 " + zeros)
    body += _series("zcnb_gateway_restarts_total", labels.format("crashing"), "0x40")
    body += _series("zcnb_gateway_crashes_total", labels.format("restarting"), "0x40")
    body += _series("zcnb_gateway_restarts_total", labels.format("restarting"), "0 1 2 3 3 3 3 3 3 3 " + zeros)
    body += _series("zcnb_gateway_crashes_total", labels.format("twice"), "0 0 1 1 2 2 2 2 2 2 " + zeros)
    body += _series("zcnb_gateway_restarts_total", labels.format("twice"), "0x40")
    checks = _expect(["2m"], {CRASH: []}) + _expect(["9m"], {CRASH: ["crashing", "restarting"]})
    checks += _expect(["35m"], {CRASH: []})
    proc = _run_test(tmp_path, rules_yaml(), body, checks)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"baseline_window": "10 minutes"}, "not a Prometheus duration"),
    ({"trend_window": "5m"}, "trend window must be longer"),
    ({"fast_step": "2m"}, "fast step must not exceed"),
    ({"metric": "rss bytes"}, "not a metric name"),
    ({"selector": "job=x"}, "not a label matcher list"),
    ({"crash_count": 0}, "at least 1"),
    ({"limit_bytes": 0}, "positive size"),
])
def test_bad_options_say_what_is_wrong(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        RuleOptions(**kwargs)  # type: ignore[arg-type]


def test_duration_seconds() -> None:
    assert duration_seconds("1h30m") == 5400 and duration_seconds("250ms") == 0.25 and duration_seconds("0s") == 0
    with pytest.raises(ConfigError):
        duration_seconds("1.5h")


def _zcnb(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "zcnb", *args], capture_output=True, text=True, env=env, check=False)


def test_cli_writes_checks_and_refuses(tmp_path: Path) -> None:
    promtool()
    out = tmp_path / "zeptoclaw.rules.yml"
    proc = _zcnb("alert-rules", "--out", str(out), "--baseline-window", "5m", "--limit", "1GiB", "--min-growth",
                 "8MiB", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "SUCCESS: 4 rules found" in proc.stderr and oct(out.stat().st_mode & 0o777) == "0o600"
    text = out.read_text()
    assert "[5m]" in text and "> 1073741824" in text and "> 8388608" in text
    bad = _zcnb("alert-rules", "--trend-window", "1m")
    assert bad.returncode == 2 and "trend window must be longer" in bad.stderr and "Traceback" not in bad.stderr
    bad = _zcnb("alert-rules", "--min-growth-ratio", "lots")
    assert bad.returncode == 2 and "is not a number" in bad.stderr
