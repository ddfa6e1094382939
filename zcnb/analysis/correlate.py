"""Which activity explains the memory growth, and how many bytes each event retains.

Per time bucket: the baseline (minimum memory in the bucket, so transient peaks do not count) and its
increment to the next bucket; increments across a restart are dropped. The increments are regressed on
the per-bucket activity counts of the log (:attr:`zcnb.logs.LogSummary.buckets`) with non-negative
least squares plus a free intercept (background growth); the coefficients are bytes retained per event.
Intervals come from a bootstrap over buckets; each activity also gets a one-variable regression
(Pearson r, p-value) so a reader can see how strong the evidence is on its own.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import AnalysisError, ConfigError
from ..units import format_bytes
from ._prepare import pick_column

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Correlation", "baseline_increments", "correlate", "explain_growth"]

_LEVEL_COLUMNS = ("error", "warning")


def baseline_increments(samples: pd.DataFrame, *, bucket_s: int, column: str | None = None) -> pd.DataFrame:
    """Per bucket: ``baseline_bytes`` (min), ``increment_bytes`` to the next bucket, ``pid``.

    The increment is NaN across a restart and from a new process's first bucket: a process that has just
    started loads its code and arenas, growth that no event retained (the minimum of that bucket may be a
    sample taken a moment after exec, megabytes below where the process settles).
    """
    import pandas as pd

    if "timestamp" not in samples.columns:
        raise ConfigError("samples need a 'timestamp' column", hint="read them with zcnb.collect.sampling.read_samples")
    col = pick_column(samples, column)
    df = samples.copy()
    if "event" in df.columns:
        df = df[df["event"].fillna("").astype(str) != "gap"]
    df = df[df[col].notna()]
    if df.empty:
        raise AnalysisError(f"no {col} values in the samples", hint="check the sampler's sources")
    ts = pd.to_datetime(df["timestamp"], utc=True)
    key = ts.dt.floor(f"{bucket_s}s")
    pid = df["pid"] if "pid" in df.columns else pd.Series(0, index=df.index)
    g = pd.DataFrame({"v": df[col].astype(float).to_numpy(), "pid": pid.to_numpy()}, index=key.to_numpy())
    grouped = g.groupby(level=0)
    out = pd.DataFrame({"baseline_bytes": grouped["v"].min(), "pid": grouped["pid"].agg(lambda s: s.iloc[-1]),
                        "pids": grouped["pid"].nunique(dropna=False)})
    out.index = pd.DatetimeIndex(out.index, tz="UTC") if out.index.tz is None else out.index
    out = out.reindex(pd.date_range(out.index.min(), out.index.max(), freq=f"{bucket_s}s"))
    nxt = out["baseline_bytes"].shift(-1)
    same = (out["pid"].shift(-1) == out["pid"]) & (out["pids"].shift(-1) == 1) & (out["pids"] == 1)
    prev = out["pid"].ffill().shift(1)
    same &= ~(prev.notna() & (prev != out["pid"]))  # not the first bucket of a new process
    out["increment_bytes"] = (nxt - out["baseline_bytes"]).where(same)
    out.index.name = "bucket"
    return out[["baseline_bytes", "increment_bytes", "pid"]]


@dataclass(frozen=True, eq=False)
class Correlation:
    """Activities ranked by how much of the baseline growth they explain."""

    table: pd.DataFrame  # activity, bytes_per_event, low, high, events, share, r, p_value
    r2: float
    n_buckets: int
    bucket_s: int
    column: str
    intercept_bytes: float
    evidence: str  # "strong" | "moderate" | "weak evidence" | "none"
    statement: str
    notes: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return f"Correlation({self.statement!r})"

    @property
    def top(self) -> str | None:
        return str(self.table["activity"].iloc[0]) if len(self.table) else None

    def bytes_per_event(self) -> pd.DataFrame:
        """The per-activity estimates with readable sizes (e.g. ``64.0 KiB (60.2-67.9 KiB)``)."""
        t = self.table.copy()
        t["per_event"] = [f"{format_bytes(b)} ({format_bytes(lo)}-{format_bytes(hi)})"
                          for b, lo, hi in zip(t["bytes_per_event"], t["low"], t["high"])]
        return t[["activity", "per_event", "events", "share", "r", "p_value"]]

    def to_dict(self) -> dict[str, Any]:
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
                for r in self.table.to_dict(orient="records")]
        return {"ranking": rows, "r2": self.r2, "n_buckets": self.n_buckets, "bucket_s": self.bucket_s,
                "column": self.column, "intercept_bytes_per_bucket": self.intercept_bytes, "evidence": self.evidence,
                "top": self.top, "statement": self.statement, "notes": list(self.notes)}

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<h4>Memory growth vs activity</h4><p><b>{html.escape(self.statement)}</b></p>"
                + str(self.bytes_per_event().head(15).to_html(index=False)) + (f"<ul>{notes}</ul>" if notes else ""))


def _design(activity: pd.DataFrame, inc: pd.DataFrame, *, min_events: int,
            notes: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    import pandas as pd

    acts = activity.copy()
    acts = acts[[c for c in acts.columns if c != "tool:skill"]]
    joined = inc.join(acts, how="left").fillna({c: 0 for c in acts.columns})
    joined = joined[joined["increment_bytes"].notna()]
    X = joined[list(acts.columns)].astype(float)
    X = X.loc[:, (X.sum() >= min_events) & (X.std() > 0)]
    cols = list(X.columns)
    corr = X.corr() if len(cols) > 1 else pd.DataFrame()
    drop: set[str] = set()
    for i, a in enumerate(cols):  # near-identical columns (every 401 also logs a warning) cannot be told apart
        for b in cols[i + 1:]:
            if a in drop or b in drop or not (corr.loc[a, b] > 0.98):
                continue
            loser = a if a in _LEVEL_COLUMNS else b  # keep the activity, drop the level column
            keep = b if loser == a else a
            drop.add(loser)
            notes.append(f"{loser} moves with {keep} (r>0.98): kept {keep}")
    return X.drop(columns=sorted(drop)), joined["increment_bytes"].astype(float)


def _fit(X: Any, y: Any) -> tuple[Any, float]:
    import numpy as np
    from scipy.optimize import nnls

    A = np.column_stack([X, np.ones(len(y)), -np.ones(len(y))])  # free intercept as two non-negative parts
    coef, _ = nnls(A, y, maxiter=50 * A.shape[1])
    return coef[:-2], float(coef[-2] - coef[-1])


def correlate(samples: pd.DataFrame, activity: Any, *, column: str | None = None, min_events: int = 3,
              n_boot: int = 400, seed: int = 0) -> Correlation:
    """Rank activities by how well they explain baseline memory growth; bytes per event with 95% intervals.

    ``activity`` is a :class:`zcnb.logs.LogSummary` or its ``buckets`` frame (bucket x activity counts).
    """
    import numpy as np
    import pandas as pd
    from scipy import stats

    buckets = getattr(activity, "buckets", activity)
    if not isinstance(buckets, pd.DataFrame):
        raise ConfigError("activity must be a LogSummary or its buckets DataFrame", hint="pass summarize_logs(...)")
    if len(buckets.index) < 2:
        raise AnalysisError("the log covers fewer than 2 time buckets", hint="use a smaller bucket or a longer log")
    width = getattr(activity, "bucket_s", None) or int((buckets.index[1] - buckets.index[0]).total_seconds())
    col = pick_column(samples, column)
    log_pids = set(getattr(activity, "pids", ()) or ())
    sample_pids = set(samples["pid"].dropna().astype(int)) if "pid" in samples.columns else set()
    if log_pids and sample_pids and not log_pids & sample_pids:
        raise AnalysisError(f"the samples are of pid {sorted(sample_pids)} but the log of pid {sorted(log_pids)}: "
                            "not the same process", hint="sample and read the log of the same gateway run")
    inc = baseline_increments(samples, bucket_s=width, column=col)
    notes: list[str] = []
    X, y = _design(buckets, inc, min_events=min_events, notes=notes)
    n = len(y)
    if n < 4 or X.shape[1] == 0:
        raise AnalysisError(f"only {n} usable buckets and {X.shape[1]} varying activities overlap the samples",
                            hint="samples and log must cover the same time; record longer or use smaller buckets",
                            n_buckets=n)
    Xv, yv = X.to_numpy(), y.to_numpy()
    coef, intercept = _fit(Xv, yv)
    resid = yv - (Xv @ coef + intercept)
    ss_tot = float(((yv - yv.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, X.shape[1]))
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        boots[i] = _fit(Xv[idx], yv[idx])[0]
    low, high = np.percentile(boots, 2.5, axis=0), np.percentile(boots, 97.5, axis=0)
    growth = float(yv.sum())
    rows = []
    for j, name in enumerate(X.columns):
        x = Xv[:, j]
        r, p = stats.pearsonr(x, yv) if np.std(x) > 0 and np.std(yv) > 0 else (0.0, 1.0)
        rows.append({"activity": name, "bytes_per_event": float(coef[j]), "low": float(low[j]), "high": float(high[j]),
                     "events": int(x.sum()), "share": float(coef[j] * x.sum() / growth) if growth > 0 else 0.0,
                     "r": float(r), "p_value": float(p)})
    table = pd.DataFrame(rows).sort_values(["share", "r"], ascending=False, ignore_index=True)
    evidence, statement = _judge(table, r2=r2, n=n, width=width)
    return Correlation(table=table, r2=r2, n_buckets=n, bucket_s=width, column=col, intercept_bytes=intercept,
                       evidence=evidence, statement=statement, notes=tuple(notes))


def _judge(table: pd.DataFrame, *, r2: float, n: int, width: int) -> tuple[str, str]:
    top = table.iloc[0]
    if top["share"] <= 0 or top["bytes_per_event"] <= 0:
        return "none", f"no activity explains the memory growth (R² {r2:.2f} over {n} buckets of {width} s)"
    if n >= 15 and r2 >= 0.5 and top["low"] > 0 and top["p_value"] < 1e-3 and top["share"] >= 0.5:
        evidence = "strong"
    elif n >= 8 and top["low"] > 0 and top["p_value"] < 0.01:
        evidence = "moderate"
    else:
        evidence = "weak evidence"
    statement = (f"{top['activity']} best explains the growth: each event retains ~{format_bytes(top['bytes_per_event'])} "
                 f"({format_bytes(top['low'])}-{format_bytes(top['high'])}), {top['share']:.0%} of the growth; "
                 f"R² {r2:.2f} over {n} buckets of {width} s, r={top['r']:.2f} p={top['p_value']:.2g} ({evidence})")
    return evidence, statement


def explain_growth(samples: pd.DataFrame | None, activity: Any, **options: Any) -> Correlation:
    """:func:`correlate` for notebooks: when the data cannot be correlated, a result that says why (no raise)."""
    import pandas as pd

    empty = pd.DataFrame(columns=["activity", "bytes_per_event", "low", "high", "events", "share", "r", "p_value"])
    if samples is None or len(samples) == 0:
        reason = "no memory samples in this incident: record some with zcnb sample (stage 01)"
    else:
        try:
            return correlate(samples, activity, **options)
        except AnalysisError as exc:
            reason = str(exc)
    return Correlation(table=empty, r2=float("nan"), n_buckets=0, bucket_s=int(getattr(activity, "bucket_s", 0) or 0),
                       column="", intercept_bytes=float("nan"), evidence="none",
                       statement=f"no correlation computed: {reason}")
