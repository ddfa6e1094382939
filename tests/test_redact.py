"""Redaction: no secret survives into anything zcnb stores or shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcnb.config import Secret
from zcnb.exceptions import ConfigError
from zcnb.logs import read_log_file, summarize_logs
from zcnb.redact import REDACTED, Redactor, redact

DATA = Path(__file__).parent / "data" / "logs"

CASES = [
    ("Main Token: 0123456789abcdef0123456789abcdef", "0123456789abcdef"),
    ("X-Auth-Token: s3cr3t-value-xyz", "s3cr3t-value-xyz"),
    ("header x-auth-token=abcDEF123456", "abcDEF123456"),
    ("using key nvapi-AbCdEfGhIjKlMnOpQrStUv12", "nvapi-AbCdEfGhIjKlMnOp"),
    ("openai sk-proj-abcdefghijklmnop1234 failed", "sk-proj-abcdefghijklmnop"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ('args={"cmd":"x","token":"tok_live_123456"}', "tok_live_123456"),
    ('{"api_key": "k-998877665544"}', "k-998877665544"),
    ('{"password":"hunter2hunter2"}', "hunter2hunter2"),
]


@pytest.mark.parametrize(("line", "secret"), CASES)
def test_builtin_patterns_remove_the_secret(line: str, secret: str) -> None:
    out = redact(line)
    assert secret not in out
    assert REDACTED in out


def test_harmless_text_is_unchanged() -> None:
    text = 'info: [nim] request tokens=512 latency_ms=30 task-list skill:git-workflow args={"name":"x"}'
    assert redact(text) == text
    assert redact("Main Token: (none, auth disabled)") == "Main Token: (none, auth disabled)"


def test_extra_patterns_and_known_secret_values() -> None:
    red = Redactor.create(patterns=[r"ACME-\d{6}"], secrets=[Secret("plainvalue99"), "another-secret", None])
    out = red("id ACME-123456 then plainvalue99 and another-secret here")
    assert "ACME-123456" not in out and "plainvalue99" not in out and "another-secret" not in out
    assert "plainvalue99" not in json.dumps(red.to_dict())
    assert red.to_dict()["secret_values"] == 2


def test_bad_extra_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Redactor.create(patterns=["(unclosed"])


def test_no_secret_reaches_log_entries_or_summary() -> None:
    path = DATA / "mixed_invalid_utf8.log"
    secrets = ["0123456789abcdef0123456789abcdef", "nvapi-ABCDEFGHIJKLMNOPQRSTUVWX", "sk-abcdefghijklmnop",
               "eyJhbGciOiJIUzI1NiJ9"]
    entries = list(read_log_file(path))
    summary = summarize_logs(path)
    blob = json.dumps([e.to_dict() for e in entries]) + json.dumps(summary.to_dict(), default=str) + summary._repr_html_()
    for s in secrets:
        assert s not in blob
    assert "[REDACTED]" in blob


@settings(max_examples=150, deadline=None)
@given(prefix=st.text(max_size=40), secret=st.from_regex(r"[A-Za-z0-9]{16,40}", fullmatch=True),
       form=st.sampled_from(["Main Token: {}", "X-Auth-Token: {}", "Bearer {}", "nvapi-{}", "sk-{}", '"token":"{}"']))
def test_property_secret_never_survives(prefix: str, secret: str, form: str) -> None:
    line = prefix + " " + form.format(secret) + " tail"
    assert secret not in redact(line)
