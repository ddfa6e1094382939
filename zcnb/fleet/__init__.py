"""Fleet: every instance's memory history from Prometheus (or a fleet CSV), assessed and ranked.

``view`` (:func:`fleet_view`, :func:`fleet_from_prometheus`, the alert-rule comparison) and
``fleet_csv`` (the offline exchange format). The names below are this package's front door.
"""

from __future__ import annotations

from .fleet_csv import read_fleet_csv, write_fleet_csv
from .view import (
           AlertRule,
           FleetRow,
           FleetView,
           alert_rule,
           fleet_from_prometheus,
           fleet_view,
           format_bytes,
           parse_size,
)

__all__ = ["AlertRule", "FleetRow", "FleetView", "alert_rule", "fleet_from_prometheus", "fleet_view",
           "format_bytes", "parse_size", "read_fleet_csv", "write_fleet_csv"]
