"""What Prometheus scrapes and alerts on: ``zcnb exporter``'s series per gateway and ``zcnb alert-rules``.

- :mod:`zcnb.monitor.targets`: which gateways on this host, how to find each process and its log.
- :mod:`zcnb.monitor.logcount`: incremental log counting (journal follower, log-file tail).
- :mod:`zcnb.monitor.exporter`: the ``zcnb exporter`` collector and server (reads /proc and logs only).
- :mod:`zcnb.monitor.rules`: the ``zcnb alert-rules`` rules file on those series.

It reads the target through :mod:`zcnb.collect` and :mod:`zcnb.logs` only; what happens when an alert fires
is :mod:`zcnb.alerting`. Nothing is imported here: ``import zcnb.monitor`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
