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


# ---------------------------------------------------------------- realistic lines (audit H1)

R = REDACTED
REALISTIC = [
    ('req headers={"X-Auth-Token":"tok-9f8e7d6c5b4a"}', f'req headers={{"X-Auth-Token":"{R}"}}'),
    ('{"Token": "tok-9f8e7d6c5b4a", "user": "ops"}', f'{{"Token": "{R}", "user": "ops"}}'),
    ('{"authToken":"tok-9f8e7d6c5b4a"}', f'{{"authToken":"{R}"}}'),
    ('{"apiKey":"AIzaSyA-1234567890"}', f'{{"apiKey":"{R}"}}'),
    ('{"X-Api-Key": "key-1234567890"}', f'{{"X-Api-Key": "{R}"}}'),
    ('{"access_token":"ya29.a0Af-xyz","token_type":"bearer","expires_in":3599}',
     f'{{"access_token":"{R}","token_type":"bearer","expires_in":3599}}'),
    ('login {"user":"ops","password":"hunter2 with spaces"}', f'login {{"user":"ops","password":"{R}"}}'),
    ("{'api_key': 'k-998877665544'}", f"{{'api_key': '{R}'}}"),
    ('msg="{\\"token\\":\\"tok-escaped-123\\"}"', f'msg="{{\\"token\\":\\"{R}\\"}}"'),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", f"Authorization: Basic {R}"),
    ("Authorization: Token 0123456789abcdef", f"Authorization: Token {R}"),
    ("authorization: bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", f"authorization: bearer {R}"),
    ('curl -H "Authorization: Bearer abc.def.ghi" http://x', f'curl -H "Authorization: Bearer {R}" http://x'),
    ('token="tok with space"', f'token="{R}"'),
    ('AUTH_TOKEN="abc"', f'AUTH_TOKEN="{R}"'),
    ('export GATEWAY_AUTH_TOKEN="0123456789abcdef"', f'export GATEWAY_AUTH_TOKEN="{R}"'),
    ("api_key='k-998877665544' region=eu", f"api_key='{R}' region=eu"),
    ("GATEWAY_AUTH_TOKEN=0123456789abcdef ./gateway", f"GATEWAY_AUTH_TOKEN={R} ./gateway"),
    ("Main Token: 0123456789abcdef0123456789abcdef", f"Main Token: {R}"),
    ("connect http://admin:s3cr3t@10.0.0.5:9090/api", f"connect http://admin:{R}@10.0.0.5:9090/api"),
    ("push https://ghp_abcdefghijkl@github.com/o/r.git", f"push https://{R}@github.com/o/r.git"),
    ("GET /v1/chat?token=tok123&model=x HTTP/1.1", f"GET /v1/chat?token={R}&model=x HTTP/1.1"),
    ("GET /q?api_key=k123&access_token=at456&page=2", f"GET /q?api_key={R}&access_token={R}&page=2"),
    ("password: hunter2, retrying", f"password: {R}, retrying"),
    ('.{ .token = "tok-zig-1" }', f'.{{ .token = "{R}" }}'),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl used", f"jwt {R} used"),
    ("key nvapi-AbCdEfGhIjKlMnOpQrStUv12 ok", f"key {R} ok"),
]

# Must come out exactly as they went in (false positives the audit asked to rule out).
HARMLESS = [
    "info: [nim] request tokens_used=12 latency_ms=30",
    'info: [nim] body {"model":"m","max_tokens": 100,"temperature":0.2}',
    "info: [skills] skill:git-workflow ok",
    '[agent] tool skill args={"name":"git-workflow"}',
    "Main Token: (none, auth disabled)",
    '{"password": null, "token": null}',
    'curl -H "X-Auth-Token: $GATEWAY_AUTH_TOKEN" http://127.0.0.1:18789/health',
    "warning: [http] 401 unauthorized: missing token",
    "info: task-list refreshed, tokens=512, keys=3",
    "see http://127.0.0.1:18789/metrics and mail ops@example.com",
]


@pytest.mark.parametrize(("line", "expected"), REALISTIC)
def test_realistic_lines_are_redacted_exactly(line: str, expected: str) -> None:
    assert redact(line) == expected


@pytest.mark.parametrize("line", HARMLESS)
def test_non_secret_text_is_left_alone(line: str) -> None:
    assert redact(line) == line


def test_redaction_is_idempotent_and_mask_configurable() -> None:
    for line, expected in REALISTIC:
        assert redact(expected) == expected
    short = Redactor.create(mask="***")
    assert short('{"Token":"abc123"} Bearer abcdef') == '{"Token":"***"} Bearer ***'
    with pytest.raises(ConfigError, match="mask"):
        Redactor.create(mask="")


def test_a_key_word_as_value_does_not_shield_the_next_secret() -> None:
    out = redact('token: "token":"SECRETVALUE1"')
    assert "SECRETVALUE1" not in out


def test_default_redactor_adds_the_gateway_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from zcnb.redact import default_redactor

    monkeypatch.setenv("GATEWAY_AUTH_TOKEN", "plain-looking-value-77")
    red = default_redactor(secrets=["other-known-1"])
    assert red("x plain-looking-value-77 y other-known-1") == f"x {R} y {R}"
    monkeypatch.delenv("GATEWAY_AUTH_TOKEN")
    assert default_redactor()("x plain-looking-value-77") == "x plain-looking-value-77"


@settings(max_examples=150, deadline=None)
@given(secret=st.from_regex(r"[A-Za-z0-9]{12,40}", fullmatch=True),
       key=st.sampled_from(["token", "Token", "X-Auth-Token", "authToken", "apiKey", "X-Api-Key", "access_token",
                            "password", "client_secret", "GATEWAY_AUTH_TOKEN", "private-key"]),
       form=st.sampled_from(['{{"{k}":"{v}"}}', "{{'{k}': '{v}'}}", '{k}="{v}"', "{k}='{v}'", "{k}={v}", "{k}: {v}",
                             "?{k}={v}&x=1", '\\"{k}\\":\\"{v}\\"']),
       prefix=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30))
def test_property_keyed_secret_never_survives(secret: str, key: str, form: str, prefix: str) -> None:
    line = prefix + " " + form.format(k=key, v=secret) + " tail"
    assert secret not in redact(line)


# ---------------------------------------------------------------- safe_url (audit L2)

@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pw-123@127.0.0.1:9090/metrics", "http://127.0.0.1:9090/metrics"),
    ("https://tok-only@host/x?token=abc&page=2", f"https://host/x?token={R}&page=2"),
    ("http://h/m?api_key=k1&access_token=a2&X-Amz-Signature=s3&q=up",
     f"http://h/m?api_key={R}&access_token={R}&X-Amz-Signature={R}&q=up"),
    ("https://h/cb#access_token=zz&state=1", f"https://h/cb#access_token={R}&state=1"),
    ("http://[::1]:18789/metrics", "http://[::1]:18789/metrics"),
    ("http://127.0.0.1:18789/metrics?tokens=5", "http://127.0.0.1:18789/metrics?tokens=5"),
])
def test_safe_url(url: str, shown: str) -> None:
    from zcnb.redact import safe_url

    assert safe_url(url) == shown


def test_safe_url_survives_unparseable_urls() -> None:
    from zcnb.redact import safe_url

    out = safe_url("http://[bad:pw@host/x?token=abc")
    assert "abc" not in out and "pw" not in out
