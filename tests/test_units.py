"""zcnb.units: the one size parser and the byte/duration formatters every module uses."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zcnb.commands.analyze import parse_size as analyze_parse_size
from zcnb.exceptions import ConfigError
from zcnb.fleet import format_bytes as fleet_format_bytes
from zcnb.fleet import parse_size as fleet_parse_size
from zcnb.units import format_bytes, format_duration, parse_size

GIB = 1024**3


@pytest.mark.parametrize(("text", "value"), [
    ("2GiB", 2 * GIB), ("2G", 2 * GIB), ("2g", 2 * GIB), ("2GB", 2_000_000_000), ("1.5GB", 1_500_000_000),
    ("512 MiB", 512 * 2**20), ("512M", 512 * 2**20), ("1.5K", 1536), ("1kb", 1000), ("3T", 3 * 1024**4),
    ("1P", 1024**5), ("4096", 4096), ("4096B", 4096), (" 7 ", 7), (1e6, 1_000_000), (4096, 4096), (2.6, 3),
])
def test_parse_size(text: str | float, value: int) -> None:
    got = parse_size(text)
    assert got == value and isinstance(got, int)


@pytest.mark.parametrize("text", ["", "G", "lots", "2 parsecs", "2XB", "2iB", "0", "0.4", "-1G", "-1GiB", "1e9",
                                  "nan", "inf", "2GiBB", math.inf, math.nan, -5.0, 0, True])
def test_parse_size_rejects_with_a_hint(text: str | float) -> None:
    with pytest.raises(ConfigError) as info:
        parse_size(text)
    assert info.value.hint and "GiB" in info.value.hint


def test_callers_share_the_one_implementation() -> None:
    assert analyze_parse_size is parse_size and fleet_parse_size is parse_size and fleet_format_bytes is format_bytes


@given(st.integers(min_value=1, max_value=2**50), st.sampled_from(["", "K", "M", "G", "KiB", "MiB", "GiB", "KB", "MB"]))
def test_parse_size_scales(n: int, unit: str) -> None:
    base = 1000 if unit.endswith("B") and "i" not in unit else 1024
    power = {"": 0, "K": 1, "M": 2, "G": 3}[unit[:1]]
    assert parse_size(f"{n}{unit}") == n * base**power


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (math.nan, "-"), (math.inf, "-"), (0, "0 B"), (12, "12 B"), (1023, "1023 B"), (1536, "1.5 KiB"),
    (65536, "64.0 KiB"), (5 * 2**20, "5.0 MiB"), (-3 * GIB, "-3.0 GiB"), (2 * 1024**4, "2.0 TiB"),
    (3000 * 1024**4, "3000.0 TiB"),
])
def test_format_bytes(value: float | None, text: str) -> None:
    assert format_bytes(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (math.nan, "-"), (math.inf, "never"), (0, "0 s"), (45, "45 s"), (119, "119 s"), (120, "2 min"),
    (3600, "60 min"), (7200, "2.0 h"), (3 * 86400, "3.0 d"), (-90, "-90 s"),
])
def test_format_duration(value: float | None, text: str) -> None:
    assert format_duration(value) == text


@given(st.floats(min_value=1, max_value=2**60, allow_nan=False))
def test_format_bytes_round_trips_within_rounding(value: float) -> None:
    number, unit = format_bytes(value).split()
    back = parse_size(number + ("" if unit == "B" else unit))
    assert abs(back - value) <= max(0.051 * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(unit), 0.5)
