"""Redaction of secrets in log text, applied before anything is stored or displayed.

One set of rules for all of zcnb (log parsing, service log tails, leak-capture output). Covered:

* ``key: value`` / ``key=value`` (unquoted, ``"double"``, ``'single'`` quoted) and JSON / Python-dict fields
  (``{"X-Auth-Token": "..."}``, also ``\\"escaped\\"`` inside JSON strings) whose key *ends* in a secret word:
  ``token``, ``secret``, ``password``/``passwd``/``passphrase``, ``api_key``/``apikey``/``api-key``,
  ``access_key``, ``secret_key``, ``private_key``, ``authorization`` -- in any case and with any prefix
  (``Main Token``, ``authToken``, ``X-Api-Key``, ``export GATEWAY_AUTH_TOKEN``, ``?access_token=``).
  ``Authorization: Basic|Bearer|Token|Digest|Negotiate <value>`` keeps the scheme and hides the value.
  Keys that merely contain a word (``tokens_used``, ``max_tokens``) and the values ``null``/``none``/
  ``true``/``false``, ``(none, ...)`` and ``$VAR`` references are left alone.
* passwords in URLs (``http://user:pw@host`` -> ``http://user:[REDACTED]@host``; a user-only userinfo such
  as ``https://ghp_x@host`` is hidden whole), ``Bearer ...``, JWTs (``eyJ...``), NVIDIA ``nvapi-...`` and
  OpenAI-style ``sk-...`` keys,
* configured extra patterns (``Settings.redact_patterns``) and explicit secret values (the gateway token).

:func:`safe_url` shows a URL in messages without its userinfo and with secret-looking query values masked.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from .config import Secret
from .exceptions import ConfigError

__all__ = ["REDACTED", "Redactor", "credential_kinds", "default_redactor", "redact", "safe_url", "secret_forms"]

REDACTED = "[REDACTED]"

# A key is secret-looking when it ENDS in one of these words (so `max_tokens`, `tokens_used` are not).
_KEY_WORDS = (r"(?:token|secret|password|passwd|passphrase|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
              r"|private[_-]?key|authorization)")
_KEY_WORD_LIST = ("token", "secret", "password", "passwd", "passphrase", "authorization",
                  *(f"{a}{sep}key" for a in ("api", "access", "secret", "private") for sep in ("_", "-", "")))
# URL query/fragment keys: the same, plus the signature/credential parameters of signed URLs.
_URL_KEY = re.compile(r"(?i)[\w.-]*?(?:" + _KEY_WORDS + r"|auth|sig|signature|credentials?)")
# What may end an unquoted value (kept outside the value).
_VALUE_END = r"\s,;\"'&\\)}\]<"
_SCHEME_WORDS = r"(?:basic|bearer|token|digest|negotiate)"
_SCHEME = r"(?:" + _SCHEME_WORDS + r"[ \t]+(?=[^\s\"']))?"

_Replace = Callable[["re.Match[str]"], str]


def _value_rx(mask: str) -> str:
    """An unquoted value that is not already masked, not a placeholder and not a $VAR reference."""
    return (r"(?!" + re.escape(mask) + r"|" + _SCHEME_WORDS + r"[ \t]+" + re.escape(mask)
            + r"|\(none|(?:null|none|true|false)(?![\w-])"
            r"|\$\{?[A-Za-z_]\w*\}?(?![^" + _VALUE_END + r"]))[^" + _VALUE_END + r"]+")


@functools.lru_cache(maxsize=8)
def _rules(mask: str) -> tuple[tuple[re.Pattern[str], _Replace], ...]:
    """The built-in rules for ``mask``, in the order they run (built once per mask: ~0.3 ms)."""
    def keyed(m: re.Match[str]) -> str:
        value = m.group("value")
        quote = "\\\"" if value.startswith("\\\"") else value[0] if value[0] in "\"'" else ""
        return m.group("head") + quote + mask + quote

    def userinfo(m: re.Match[str]) -> str:
        user, sep, _ = m.group(2).partition(":")
        return m.group(1) + (f"{user}:{mask}" if sep else mask) + "@"

    quoted = r"\\\"[^\n]*?\\\"|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
    # Anchored on the separator (a plain character set the regex engine skips to quickly); fixed-width
    # look-behinds then check that a secret word (plus an optional closing quote) ends right before it,
    # so `max_tokens` / `tokens_used` never match. Look-behinds also see already-redacted text, so
    # `token: "token":"x"` hides both values.
    # (the first look-behind is a cheap filter on the last character of every listed word, quote or space)
    behind = "|".join(f"(?<={re.escape(word + quote + space)}[:=])" for word in _KEY_WORD_LIST
                      for quote in ("", '"', "'", '\\"') for space in ("", " "))
    keyed_rx = re.compile(r"(?i)(?P<head>[:=](?<=[ntdey\"' ][:=])(?:" + behind + r")[ \t]*" + _SCHEME + r")(?P<value>"
                          + quoted + "|" + _value_rx(mask) + ")")
    return (
        (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,15}://)([^\s/?#\"'<>]+)@"), userinfo),
        (keyed_rx, keyed),
        (re.compile(r"(?i)(\bbearer[ \t]+)(?!" + re.escape(mask) + r")[A-Za-z0-9._~+/=-]+"),
         lambda m: m.group(1) + mask),
        (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"), lambda m: mask),
        (re.compile(r"\bnvapi-[A-Za-z0-9_-]{8,}"), lambda m: mask),
        (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), lambda m: mask),
    )


_STEMS = ("token", "secret", "password", "passwd", "passphrase", "key", "authorization")
_AFTER_STEM = frozenset(":=\"' \\")


def _may_hold_secret(low: str) -> bool:
    """True when some built-in rule could match (every match holds one of these, lower-cased).

    A key word counts only when a separator, quote or space follows it: `tokens=512` lines (common in
    gateway logs) then skip the regexes.
    """
    if "bearer" in low or "eyj" in low or "nvapi-" in low or "sk-" in low or ("://" in low and "@" in low):
        return True
    for stem in _STEMS:
        i = low.find(stem)
        while i >= 0:
            j = i + len(stem)
            if j < len(low) and low[j] in _AFTER_STEM:
                return True
            i = low.find(stem, j)
    return False


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets in text with ``mask``; build with :meth:`create` (compiles the patterns once)."""

    patterns: tuple[str, ...] = ()
    secret_count: int = 0
    mask: str = REDACTED
    _compiled: tuple[tuple[re.Pattern[str], _Replace], ...] = field(default=(), repr=False, compare=False)
    _extra: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def create(cls, *, patterns: Iterable[str] = (), secrets: Iterable[str | Secret | None] = (),
               mask: str = REDACTED) -> Redactor:
        """A redactor with the built-in rules, extra regex ``patterns`` and literal ``secrets``."""
        if not mask:
            raise ConfigError("the redaction mask must not be empty", hint=f"use e.g. {REDACTED!r} or '***'")
        pats = tuple(patterns)
        extra: list[re.Pattern[str]] = []
        for p in pats:
            try:
                extra.append(re.compile(p))
            except re.error as exc:
                raise ConfigError(f"redaction pattern {p!r} is not a valid regular expression ({exc})",
                                  hint="fix redact_patterns in the zcnb config") from None
        values = {v for v in (s.reveal() if isinstance(s, Secret) else s for s in secrets) if v and len(v) >= 4}
        literal = sorted({f for v in values for f in secret_forms(v)}, key=len, reverse=True)
        if literal:  # explicit values first (in every form they take in messages), in any letter case
            extra.insert(0, re.compile("|".join(re.escape(v) for v in literal), re.IGNORECASE))
        return cls(patterns=pats, secret_count=len(values), mask=mask, _compiled=_rules(mask), _extra=tuple(extra))

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def __reduce__(self) -> tuple[object, ...]:
        # The built-in rules hold functions local to _rules(): rebuild them in the receiving process
        # (the log engines send redactors to worker processes).
        return (_restore_redactor, (self.patterns, self.secret_count, self.mask, self._extra))

    def redact(self, text: str) -> str:
        """Return ``text`` with every secret replaced by the mask."""
        for rx in self._extra:
            text = rx.sub(self.mask, text)
        if not _may_hold_secret(text.lower()):  # substring tests are far cheaper than the regexes
            return text
        for rx, repl in self._compiled:
            text = rx.sub(repl, text)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """Byte version (decodes with replacement, so invalid UTF-8 survives as U+FFFD)."""
        return self.redact(data.decode("utf-8", "replace")).encode("utf-8")

    def to_dict(self) -> dict[str, object]:
        # never the secret values themselves, only how many there are
        return {"patterns": list(self.patterns), "secret_values": self.secret_count}

    def _repr_markdown_(self) -> str:
        return (f"Redactor: {len(self._compiled)} built-in rules, {len(self.patterns)} extra patterns, "
                f"{self.secret_count} known secret values")


_RULE_NAMES = ("credentials in a URL (user:password@ or token@)", "a secret-named field (token=..., password: ...)",
               "a Bearer token", "a JWT (eyJ...)", "an NVIDIA API key (nvapi-...)", "an API key (sk-...)")


def credential_kinds(text: str) -> list[str]:
    """What secret-shaped things ``text`` holds, by the built-in rules (``[]``: none); never the values."""
    if not _may_hold_secret(text.lower()):
        return []
    return [name for (rx, _), name in zip(_rules(REDACTED), _RULE_NAMES, strict=True) if rx.search(text)]


def secret_forms(value: str) -> set[str]:
    """Every form a secret value takes in messages: as is, Python ``repr`` (``\\n``, ``\\x..``) of the text and
    of its bytes (httpx's "Illegal header value b'...'"), JSON-escaped, URL-encoded, each of those escaped once
    more, and, for a value with line breaks or other control characters, the pieces between them (a
    line-oriented file splits it there; pieces of 8 characters or more). The redactor also ignores letter case.
    """
    from urllib.parse import quote, quote_plus

    raw = value.encode("utf-8", "surrogateescape")
    forms = {value, repr(value)[1:-1], repr(raw)[2:-1], json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1], quote(raw, safe=""), quote_plus(raw, safe=""), quote(raw)}
    forms |= {json.dumps(f)[1:-1] for f in list(forms)} | {repr(f)[1:-1] for f in list(forms)}
    forms |= {piece for piece in re.split(r"[\x00-\x1f\x7f]+", value) if len(piece) >= 8}
    forms |= {f.lower() for f in forms} | {f.upper() for f in forms}  # where case folding changes the length (ß)
    return {f for f in forms if len(f) >= 4}


def _restore_redactor(patterns: tuple[str, ...], secret_count: int, mask: str,
                      extra: tuple[re.Pattern[str], ...]) -> Redactor:
    return Redactor(patterns=patterns, secret_count=secret_count, mask=mask, _compiled=_rules(mask), _extra=extra)


def default_redactor(*, secrets: Iterable[str | Secret | None] = (), mask: str = REDACTED) -> Redactor:
    """Built-in rules plus ``Settings.redact_patterns``, the gateway token (``gateway_token()``) and ``secrets``.

    A config that cannot be read, or a token file that cannot be used, never stops redaction: the rules
    that could be loaded still apply.
    """
    from .config import load_settings, token_values

    extra = list(secrets)
    try:
        settings = load_settings()
    except ConfigError:
        return Redactor.create(secrets=extra, mask=mask)
    # the raw values, also those zcnb refuses to send (a token with a newline, a token file with loose
    # permissions): text other programs wrote may still hold them
    extra += token_values(settings=settings)
    try:
        return Redactor.create(patterns=settings.redact_patterns, secrets=extra, mask=mask)
    except ConfigError:
        return Redactor.create(secrets=extra, mask=mask)


def redact(text: str, *, patterns: Iterable[str] = (), secrets: Iterable[str | Secret | None] = ()) -> str:
    """One-off redaction of ``text`` (build a :class:`Redactor` for repeated use)."""
    return Redactor.create(patterns=patterns, secrets=secrets).redact(text)


def _mask_params(text: str, mask: str) -> str:
    out = []
    for piece in text.split("&"):
        key, sep, _ = piece.partition("=")
        out.append(f"{key}={mask}" if sep and _URL_KEY.fullmatch(unquote_plus(key)) else piece)
    return "&".join(out)


def safe_url(url: str, *, mask: str = REDACTED) -> str:
    """``url`` for messages: no ``user:password@``, secret-looking query/fragment values masked."""
    try:
        parts = urlsplit(str(url))
    except ValueError:  # e.g. an unbalanced IPv6 bracket: fall back to the text rules
        return Redactor.create(mask=mask).redact(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    query = _mask_params(parts.query, mask) if parts.query else ""
    fragment = _mask_params(parts.fragment, mask) if "=" in parts.fragment else parts.fragment
    shown = urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    return Redactor.create(mask=mask).redact(shown)
