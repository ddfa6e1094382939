"""Defaults and paths, loaded from a TOML file and the environment.

Precedence (lowest first): built-in defaults, the TOML file (``$ZCNB_CONFIG`` or
``$XDG_CONFIG_HOME/zcnb/config.toml``), ``ZCNB_*`` environment variables, explicit
keyword overrides. Tokens are never part of the settings: only the *name* of the
environment variable (or a 0600 file) that holds one; see :func:`read_token`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError
from .files import read_input

__all__ = ["DEFAULT_FLEET_QUERY", "EXPORTER_FLEET_QUERY", "NO_TOKEN_LEAK", "Secret", "Settings", "check_token",
           "check_unit", "gateway_token", "load_settings", "read_token", "token_source", "token_values", "xdg_data_dir"]

DEFAULT_FLEET_QUERY = 'process_resident_memory_bytes{job="zeptoclaw-gateway"}'
"""The memory query of ``zcnb fleet`` and of notebook 01's fleet mode when none is given."""

EXPORTER_FLEET_QUERY = "max without (pid) (zcnb_gateway_resident_memory_bytes)"
"""What they read instead when that has no series (the real gateway exports no memory): ``zcnb exporter``'s RSS,
one series per gateway across restarts."""

DEFAULT_UNITS = (
    "zeptoclaw-gateway.service",
    "zeptoclaw-webhook.service",
    "zeptoclaw-shell2http.service",
    "gateway-watchdog.service",
    "whatsapp-responder.service",
)


_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}")


def check_unit(name: str) -> str:
    """A systemd unit name as given, or :class:`ConfigError`: never empty, never starting with ``-`` (which
    ``systemctl``/``journalctl`` would take as an option), only the characters systemd allows."""
    if not isinstance(name, str) or not _UNIT_NAME.fullmatch(name) or name.startswith("-"):
        raise ConfigError(f"{name!r} is not a unit name" + (" (it starts with '-', which systemctl and journalctl "
                          "would read as an option)" if str(name).startswith("-") else ""),
                          hint="give a unit name like zeptoclaw-gateway.service (letters, digits and :_.@\\- only)",
                          unit=str(name))
    return name


class Secret:
    """A string that never shows itself in repr/str/format (tokens, keys)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; use only to put it on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values are not picklable (keep tokens out of stored state)")


def xdg_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/zeptoclaw`` (default ``~/.local/share/zeptoclaw``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".local" / "share")
    return Path(base) / "zeptoclaw"


@dataclass(frozen=True)
class Settings:
    """Everything zcnb needs to know about where the gateway and its data live."""

    host: str = "127.0.0.1"
    port: int = 18789
    token_env: str = "GATEWAY_AUTH_TOKEN"
    token_file: Path | None = None
    unit: str = "zeptoclaw-gateway.service"
    units: tuple[str, ...] = DEFAULT_UNITS
    process_pattern: str = "zeptoclaw-gateway"
    data_dir: Path = field(default_factory=xdg_data_dir)
    zeptoclaw_home: Path = field(default_factory=lambda: Path.home() / ".zeptoclaw")
    incidents_dir: Path | None = None
    metrics_min_interval_s: float = 10.0
    http_timeout_s: float = 5.0
    redact_patterns: tuple[str, ...] = ()
    request_budget: int = 60  # requests zcnb sends to one gateway per window, all zcnb processes together
    request_budget_window_s: float = 60.0
    runtime_dir: Path | None = None  # the request ledger's private folder (default $XDG_RUNTIME_DIR/zcnb, /tmp/zcnb-UID)

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def incidents_path(self) -> Path:
        return self.incidents_dir if self.incidents_dir is not None else self.data_dir / "incidents"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def token(self) -> Secret | None:
        """The gateway token from ``token_env`` or ``token_file`` (None if neither is set)."""
        return read_token(self.token_env, file=self.token_file)


_PATH_FIELDS = {"token_file", "data_dir", "zeptoclaw_home", "incidents_dir", "runtime_dir"}
_TUPLE_FIELDS = {"units", "redact_patterns"}


def _coerce(name: str, value: Any, ftype: str) -> Any:
    if value is None:
        return None
    try:
        if name in _PATH_FIELDS:
            return Path(os.path.expanduser(str(value)))
        if name in _TUPLE_FIELDS:
            if isinstance(value, str):
                items = tuple(v.strip() for v in value.split(",") if v.strip())
            else:
                items = tuple(str(v) for v in value)
            return tuple(check_unit(v) for v in items) if name == "units" else items
        if name == "unit":
            return check_unit(str(value))
        if "int" in ftype:
            return int(value)
        if "float" in ftype:
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {name!r} has an invalid value {value!r} ({exc})",
            hint=f"give {name} as {ftype}",
            setting=name,
        ) from None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from defaults, a TOML file, ``ZCNB_*`` env vars and overrides.

    An override of ``None`` or a blank string means "not given": it keeps the value from the file, the
    environment or the defaults (a notebook's ``unit=""`` must not turn the unit into ``""``).
    """
    env = os.environ if env is None else env
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    cfg_path = Path(path) if path else None
    if cfg_path is None and env.get("ZCNB_CONFIG"):
        cfg_path = Path(env["ZCNB_CONFIG"])
    if cfg_path is None:
        xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".config")
        candidate = Path(xdg) / "zcnb" / "config.toml"
        cfg_path = candidate if candidate.is_file() else None
    if cfg_path is not None:
        raw = read_input(cfg_path, what="config file", hint="fix ZCNB_CONFIG or the path given")
        try:
            data = tomllib.loads(raw.decode("utf-8", errors="replace"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {cfg_path} is not valid TOML: {exc}", hint="fix the file's syntax", path=str(cfg_path)) from None
        data = data.get("zcnb", data)
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(f"unknown setting {key!r} in {cfg_path}", hint=f"known settings: {', '.join(sorted(fields))}", path=str(cfg_path))
            if key in {"token", "auth_token"}:
                raise ConfigError("tokens are not read from the config file", hint="set token_env or token_file instead")
            values[key] = _coerce(key, value, str(fields[key].type))
    for key, f in fields.items():
        env_key = "ZCNB_" + key.upper()
        if env_key in env:
            values[key] = _coerce(key, env[env_key], str(f.type))
    if "GATEWAY_PORT" in env and "port" not in values:
        values["port"] = _coerce("port", env["GATEWAY_PORT"], "int")
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r}", hint=f"known settings: {', '.join(sorted(fields))}")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # not given: the file / env / default value stands
        values[key] = _coerce(key, value, str(fields[key].type))
    values.setdefault("data_dir", xdg_data_dir(env))
    values.setdefault("zeptoclaw_home", Path(env.get("HOME", str(Path.home()))) / ".zeptoclaw")
    return Settings(**values)


def check_token(value: str, source: str, *, ascii_only: bool = True) -> str:
    """``value`` stripped, or :class:`ConfigError` naming ``source`` (never the value) when an HTTP header cannot
    carry it: a control character (newline, tab, NUL...) or, with ``ascii_only``, any non-ASCII character."""
    v = value.strip()
    for ch in v:
        if ch < " " or "\x7f" <= ch <= "\x9f":
            what = "a control character (e.g. a newline or tab)"
        elif ch > "~" and ascii_only:
            what = "a non-ASCII character"
        else:
            continue
        raise ConfigError(f"the token in {source} holds {what}: an HTTP header cannot carry it, so it is not used",
                          hint=f"fix {source}: a token is printable ASCII on one line (e.g. the value printed by "
                               "the gateway's onboarding, without quotes or line breaks)", source=source)
    return v


def read_token(env_var: str | None = "GATEWAY_AUTH_TOKEN", *, file: str | os.PathLike[str] | None = None,
               env: Mapping[str, str] | None = None, ascii_only: bool = True) -> Secret | None:
    """Read a token from the environment variable ``env_var`` or from ``file``.

    A token file must not be readable by group or others (mode 0600 or stricter). The value must be
    printable ASCII (``ascii_only=False``: any printable text, for values that are encoded before they are
    sent, like basic-auth credentials); otherwise :class:`ConfigError` names where it came from, never the value.
    Returns None when neither source is set.
    """
    env = os.environ if env is None else env
    if env_var and env.get(env_var):
        value = check_token(env[env_var], f"env var {env_var}", ascii_only=ascii_only)
        return Secret(value) if value else None
    if file:
        p = Path(file)
        raw = read_input(p, what="token file", hint="create it with mode 0600 or set the env var")
        st = p.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"token file {p} is readable by others (mode {stat.S_IMODE(st.st_mode):o})",
                hint=f"run: chmod 600 {p}",
                path=str(p),
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"the token in token file {p} is not UTF-8 text (binary data?)",
                              hint=f"fix token file {p}: one line of printable ASCII", path=str(p)) from None
        value = check_token(text, f"token file {p}", ascii_only=ascii_only)
        return Secret(value) if value else None
    return None


def token_values(token_env: str | None = None, *, settings: Settings | None = None) -> list[str]:
    """The gateway token's raw values, unchecked (also when :func:`gateway_token` refuses them), for redaction
    only: a value zcnb will not send may still appear in text that other programs wrote."""
    s = settings if settings is not None else load_settings()
    out = []
    value = os.environ.get(token_env or s.token_env)
    if value and value.strip():
        out.append(value.strip())
    if s.token_file:
        try:
            text = Path(s.token_file).read_bytes().decode("utf-8", "surrogateescape").strip()
        except OSError:
            text = ""
        if text:
            out.append(text)
    return out


def gateway_token(token_env: str | None = None, *, settings: Settings | None = None) -> Secret | None:
    """The gateway token as every zcnb entry point should read it.

    From the environment variable ``token_env`` (default: the settings' ``token_env``), else from
    the settings' 0600 ``token_file``; None when neither holds one.
    """
    s = settings if settings is not None else load_settings()
    return read_token(token_env or s.token_env, file=s.token_file)


def token_source(token_env: str | None = None, *, settings: Settings | None = None) -> str:
    """Where :func:`gateway_token` looks, for messages: ``env var NAME`` (and the token file when set)."""
    s = settings if settings is not None else load_settings()
    where = f"env var {token_env or s.token_env}"
    return where + (f" or token file {s.token_file}" if s.token_file else " or the token_file setting")


NO_TOKEN_LEAK = "on the real gateway every request without a valid token leaks memory"
