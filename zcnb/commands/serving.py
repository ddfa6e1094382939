"""Shared by the long-running commands (``zcnb exporter``, ``zcnb receiver``): listen address, signals."""

from __future__ import annotations

import ipaddress
import sys

__all__ = ["parse_listen", "wait_for_signal", "warn_if_open"]

GATEWAY_HELP = ("a gateway on this host, KEY=VALUE,...: unit=U (MainPID and journal), pid_file=F, pattern=P or "
                "pid=N (how to find it), log_file=F (its log, when not under systemd), journal_file=F / "
                "journal_dir=D (read the unit's journal from files), instance=NAME (the instance label); "
                "repeat for several gateways")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port)."""
    from ..exceptions import ConfigError

    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or int(port) > 65535 or not host:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT", hint="e.g. 127.0.0.1:9840 (port 0: a free one)")
    return host, int(port)


def warn_if_open(host: str) -> None:
    """A warning on stderr when ``host`` is not a loopback address."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        print(f"zcnb: warning: listening on {host}, reachable from other hosts", file=sys.stderr)


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT (a clean stop: the caller's ``with`` blocks then close everything)."""
    import signal
    import threading

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
