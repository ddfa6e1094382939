"""The per-bucket activity matrix of a log summary against its plain definition: for every (bucket, key) the sum
of the counts given for it, whichever part (Python counters or native arrays) they come from, repeated cells
included; idle buckets between the first and the last are rows, and beyond ``_MAX_ROWS`` only buckets with
counts are."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from zcnb.logs import summary
from zcnb.logs.scan import Acc


def _acc(rng: np.random.Generator, width: int) -> tuple[Acc, Counter[tuple[int, tuple[str, ...]]]]:
    acc = Acc()
    want: Counter[tuple[int, tuple[str, ...]]] = Counter()
    for b, a, n in zip(rng.integers(0, 50, 40), rng.integers(0, 4, 40), rng.integers(1, 9, 40)):
        key = (f"request:r{a}",)
        acc.buckets[(int(b) * width, key[0])] += int(n)
        want[(int(b) * width, key)] += int(n)
    for _part in range(3):  # native parts: their own key lists, overlapping each other and the counters
        keys = [(f"request:r{k}",) for k in rng.permutation(6)] + [("skill", "git", "token")]
        m = 300
        b = np.sort(rng.integers(0, 50, m)).astype(np.int64) * width
        c = rng.integers(0, len(keys), m).astype(np.int32)
        n = rng.integers(1, 1000, m).astype(np.int64)
        acc.bucket_arrays.append((b, c, n, keys))
        for bi, ci, ni in zip(b.tolist(), c.tolist(), n.tolist()):
            want[(bi, keys[ci])] += ni
    return acc, want


@pytest.mark.parametrize("max_rows", [500_000, 10])
def test_bucket_matrix_sums_every_cell(monkeypatch: pytest.MonkeyPatch, max_rows: int) -> None:
    monkeypatch.setattr(summary, "_MAX_ROWS", max_rows)
    width = 60
    acc, want = _acc(np.random.default_rng(7), width)
    rows, mat, keys, present, _folded = summary._bucket_matrix(acc, width)
    assert mat.shape == (len(rows), len(keys))
    got = Counter({(int(rows[i]), keys[j]): int(mat[i, j]) for i, j in zip(*np.nonzero(mat))})
    assert got == want
    assert all(present[keys.index(k)] for _b, k in want)
    used = sorted({b for b, _k in want})
    if max_rows > 50:  # every bucket from the first to the last, idle ones included
        assert rows.tolist() == list(range(used[0], used[-1] + width, width))
    else:
        assert rows.tolist() == used


def test_bucket_table_columns_match_the_matrix() -> None:
    width = 60
    acc, want = _acc(np.random.default_rng(11), width)
    frame, totals = summary._bucket_table(acc, width)
    for (b, key), n in want.items():
        if key[0] != "skill":
            assert frame.loc[frame.index[(b - frame.index[0].value // 10**9) // width], key[0]] == n
    assert totals["git"] == sum(n for (_b, k), n in want.items() if k[0] == "skill")
    assert frame.to_numpy().dtype == np.int64
