"""The malformed inputs the safety probes used, each with its exact outcome: exit code 2 and the message that
says what was wrong (never a traceback, never exit 1, which ``zcnb analyze`` uses for "leak").

Plus property-based tests (hypothesis) of the parsers and validators these inputs go through.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcnb.cli import main
from zcnb.collect.samples_csv import read_samples
from zcnb.config import check_token, check_unit
from zcnb.exceptions import ConfigError, SamplesFormatError
from zcnb.redact import Redactor, credential_kinds, secret_forms
from zcnb.state import copy_sample_data, hash_tree
from zcnb.state.staging import discard_copy

ROOT = Path(__file__).resolve().parents[1]
HEADER = "timestamp,rss_bytes\n"


def _rows(times: list[str], values: list[str]) -> str:
    return HEADER + "".join(f"{t},{v}\n" for t, v in zip(times, values, strict=True))


def _ok_times(n: int) -> list[str]:
    return [f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}Z" for i in range(n)]


# (id, CSV text, text the error must contain)
SAMPLES_CORPUS = [
    ("year-9999", _rows([*_ok_times(5), "9999-12-31T23:59:59Z"], ["1000000"] * 6),
     "1 timestamp(s) are out of range, e.g. ['9999-12-31T23:59:59Z']"),
    ("year-0", _rows(["0000-01-01T00:00:00Z", *_ok_times(5)], ["1000000"] * 6),
     "1 timestamp(s) are out of range, e.g. ['0000-01-01T00:00:00Z']"),
    ("year-negative", _rows(["-0001-01-01T00:00:00Z", *_ok_times(5)], ["1000000"] * 6),
     "1 timestamp(s) are out of range, e.g. ['-0001-01-01T00:00:00Z']"),
    ("year-1969", _rows(["1969-12-31T23:59:59Z", *_ok_times(5)], ["1000000"] * 6),
     "1 timestamp(s) are out of range, e.g. ['1969-12-31T23:59:59Z']"),
    ("year-2262-overflow", _rows([*_ok_times(5), "2262-04-12T00:00:00Z"], ["1000000"] * 6),
     "1 timestamp(s) are out of range, e.g. ['2262-04-12T00:00:00Z']"),
    ("timestamp-nan", _rows(["NaN", *_ok_times(5)], ["1000000"] * 6), "1 timestamp(s) are not ISO 8601, e.g. ['NaN']"),
    ("rss-1e300", _rows(_ok_times(60), ["1000000"] * 30 + ["1e300"] * 30),
     "column rss_bytes has 30 value(s) above 8 PiB, e.g. ['1e300', '1e300', '1e300']: not a memory size"),
    ("rss-2-to-the-60", _rows(_ok_times(30), [str(2**60)] * 30), "value(s) above 8 PiB"),
    ("rss-negative", _rows(_ok_times(30), [str(-1000 * i) for i in range(30)]),
     "column rss_bytes has negative or infinite values"),
    ("rss-inf", _rows(_ok_times(30), ["inf"] + ["1000"] * 29), "column rss_bytes has negative or infinite values"),
]


@pytest.mark.parametrize(("name", "text", "message"), SAMPLES_CORPUS, ids=[c[0] for c in SAMPLES_CORPUS])
def test_analyze_refuses_malformed_samples_with_exit_2(name: str, text: str, message: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / f"{name}.csv"
    csv.write_text(text)
    assert main(["analyze", str(csv)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    with pytest.raises(SamplesFormatError):
        read_samples(csv)


def test_analyze_in_a_subprocess_never_tracebacks(tmp_path: Path) -> None:
    """The probe's exact command line: year 9999 gave a traceback and exit 1 (= 'leak')."""
    csv = tmp_path / "y9999.csv"
    csv.write_text(SAMPLES_CORPUS[0][1])
    r = subprocess.run([sys.executable, "-m", "zcnb", "analyze", str(csv)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60, check=False)
    assert r.returncode == 2 and "out of range" in r.stderr and "Traceback" not in r.stderr, r.stderr


FLEET_CORPUS = [
    ("year-9999", "instance,timestamp,rss_bytes\na,2026-11-28T10:00:00Z,1\na,9999-12-31T00:00:00Z,2\n",
     "timestamp(s) out of range"),
    ("epoch-nan", "instance,timestamp,rss_bytes\na,1764324000,1\na,nan,2\n", "timestamp(s) out of range"),
    ("epoch-negative", "instance,timestamp,rss_bytes\na,-5,1\na,1764324000,2\n", "timestamp(s) out of range"),
    ("rss-1e300", "instance,timestamp,rss_bytes\na,1764324000,1e300\na,1764324015,2\n", "not memory sizes"),
]


@pytest.mark.parametrize(("name", "text", "message"), FLEET_CORPUS, ids=[c[0] for c in FLEET_CORPUS])
def test_fleet_csv_refuses_malformed_rows(name: str, text: str, message: str, tmp_path: Path) -> None:
    from zcnb.exceptions import DataError
    from zcnb.fleet.fleet_csv import read_fleet_csv

    p = tmp_path / f"{name}.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=re.escape(message)):
        read_fleet_csv(p)


# (id, argv after "zcnb", text stderr must contain) -- argparse's own refusals are exit 2 too.
CLI_CORPUS = [
    ("unit-dash-status", ["status", "--unit=-x"], "'-x' is not a unit name (it starts with '-'"),
    ("unit-dash-logs", ["logs", "--unit=--since=2000-01-01"], "'--since=2000-01-01' is not a unit name"),
    ("unit-dash-preflight", ["preflight", "--unit=-H"], "'-H' is not a unit name"),
    ("unit-dash-restart", ["restart", "--unit=--no-block"], "'--no-block' is not a unit name"),
    ("unit-space", ["status", "--unit=a b.service"], "'a b.service' is not a unit name"),
    ("since-nan", ["logs", "--since", "nan"], "time nan is not a number of seconds"),
    ("resume-with-backup", ["restore", "--backup", "x", "resume"], "--backup does not apply to `zcnb restore resume`"),
    ("param-userinfo", ["report", "-p", "live=true", "-p", "01.url=http://admin:pw12345@127.0.0.1:1"],
     "parameter '01.url' holds credentials in a URL"),
]


@pytest.mark.parametrize(("name", "argv", "message"), CLI_CORPUS, ids=[c[0] for c in CLI_CORPUS])
def test_cli_refuses_malformed_options_with_exit_2(name: str, argv: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err, err
    assert "pw12345" not in err


def test_restore_corpus_quarantine_inside_state_and_symlinked_incident_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCNB_PROCESS_PATTERN", "zcnb-corpus-no-gateway-7f3a")
    data = copy_sample_data(tmp_path / "z")
    before = hash_tree(data)
    rc = main(["restore", "--state-dir", str(data / "state"), "--backups-dir", str(data / "backups"), "--backend",
               "none", "--quarantine-dir", str(data / "state" / "old")])
    assert rc == 2 and "is inside the state dir" in capsys.readouterr().err
    assert hash_tree(data) == before
    real = tmp_path / "real-incident"
    real.mkdir()
    link = tmp_path / "incident-link"
    link.symlink_to(real)
    rc = main(["report", "--incident-dir", str(link), "-p", "live=true", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and f"incident folder {link} is a symlink" in err and f"pass the real folder: {real}" in err
    assert not any(real.iterdir())


def test_figures_symlink_inside_an_incident_is_never_written_through(tmp_path: Path) -> None:
    from zcnb.incident import open_incident

    outside = tmp_path / "outside"
    outside.mkdir()
    inc = open_incident(tmp_path / "inc")
    (inc.root / "figures").symlink_to(outside)
    with pytest.raises(ConfigError, match="figures is a symlink"):
        _ = inc.figures
    assert not any(outside.iterdir())


# -- properties ------------------------------------------------------------------------------------------------

_UNIT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.@\\-"


@given(st.text(min_size=1, max_size=60))
def test_check_unit_accepts_exactly_systemd_names_not_starting_with_dash(name: str) -> None:
    valid = all(c in _UNIT_CHARS for c in name) and not name.startswith("-") and len(name) <= 255
    try:
        assert check_unit(name) == name and valid
    except ConfigError:
        assert not valid


@given(st.text(min_size=8, max_size=40))
def test_check_token_message_never_holds_the_value(value: str) -> None:
    try:
        out = check_token(value, "env var T")
    except ConfigError as exc:
        assert value.strip() not in str(exc) or len(value.strip()) < 4
        assert any(c < " " or c > "~" for c in value.strip())
    else:
        assert out == value.strip() and all(" " <= c <= "~" for c in out)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(secret=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=8, max_size=30),
       before=st.text(alphabet="abc :=\"'", max_size=10), after=st.text(alphabet="xyz ,;\n", max_size=10))
def test_redactor_hides_every_form_of_a_secret(secret: str, before: str, after: str) -> None:
    r = Redactor.create(secrets=[secret])
    for form in secret_forms(secret):
        for shown in (form, form.lower(), form.upper()):
            out = r.redact(f"{before}{shown}{after}")
            assert shown not in out or len(shown.strip()) < 4 or shown in f"{before}{after}", (form, out)


@given(user=st.text(alphabet="abcdefgh", min_size=1, max_size=8),
       password=st.text(alphabet="ABCDEFGH12345!$", min_size=1, max_size=12))
def test_credential_kinds_finds_any_url_userinfo(user: str, password: str) -> None:
    url = f"http://{user}:{password}@prom.example:9090/api"
    assert credential_kinds(url)[:1] == ["credentials in a URL (user:password@ or token@)"]
    assert credential_kinds("http://prom.example:9090/api") == []


@given(year=st.integers(min_value=-9999, max_value=99999), month=st.integers(1, 12), day=st.integers(1, 28))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_samples_times_accepted_exactly_within_1970_to_2200(year: int, month: int, day: int, tmp_path: Path) -> None:
    sign = "-" if year < 0 else ""
    ts = f"{sign}{abs(year):04d}-{month:02d}-{day:02d}T00:00:00Z"
    p = tmp_path / "s.csv"
    p.write_text(_rows(["2026-01-01T00:00:00Z", ts], ["1000", "2000"]))
    try:
        df = read_samples(p)
    except SamplesFormatError as exc:
        assert not 1970 <= year < 2200, (ts, exc)
    else:
        assert 1970 <= year < 2200 and len(df) == 2


_FILES = st.dictionaries(st.sampled_from(["a.json", "b.txt", "s/c.bin", "s/t/d.md"]), st.binary(max_size=64),
                         min_size=1)


@given(backup=_FILES, changes=_FILES, cut=st.integers(min_value=0, max_value=64))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_discard_never_deletes_content_the_backup_does_not_hold(backup: dict[str, bytes], changes: dict[str, bytes],
                                                                 cut: int, tmp_path: Path) -> None:
    import shutil
    import uuid

    from zcnb.state import hash_tree as ht

    work = tmp_path / uuid.uuid4().hex
    src, copy, aside = work / "backup", work / "copy", work / "aside"
    for root, files in ((src, backup), (copy, {**backup, **changes})):
        for rel, body in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(body)
    first = sorted(backup)[0]  # a copy cut short by a crash: one file truncated
    if first not in changes:
        (copy / first).write_bytes(backup[first][:cut])
    held = {rel: (copy / rel).read_bytes() for rel in backup | changes}
    how, where = discard_copy(copy, expected=ht(src), source=src, aside=aside, never=set())
    for rel, body in held.items():
        in_backup = rel in backup and backup[rel].startswith(body)
        kept = where is not None and (where / rel).is_file() and (where / rel).read_bytes() == body
        assert in_backup or kept, (how, rel)
    shutil.rmtree(work)
