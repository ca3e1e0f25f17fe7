"""Shared plumbing of the analysis modules: column checks, group codes, latency views.

A *config* is one combination of :data:`CONFIG_COLUMNS`; every analysis takes the grouping
columns as a parameter (``by=``). Missing values in a grouping column (a ``None`` thinking
level, say) become the label ``"(none)"`` so they form a group of their own.

>>> import pandas as pd
>>> codes, keys = group_codes(pd.DataFrame({"r": ["2K", "1K", "2K"]}), ("r",))
>>> codes.tolist(), keys["r"].tolist()
([1, 0, 1], ['1K', '2K'])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError

#: The columns that make a "config" (one row of a summary).
CONFIG_COLUMNS: tuple[str, ...] = (
    "provider",
    "model",
    "resolution",
    "aspect_ratio",
    "thinking_level",
    "grid",
    "transport",
)
#: Label used for a missing value in a grouping column.
MISSING_LABEL = "(none)"
#: Natural order of well-known knob levels (the first present is the default baseline).
LEVEL_ORDER: dict[str, int] = {
    MISSING_LABEL: 0,
    "minimal": 1,
    "low": 2,
    "medium": 3,
    "high": 4,
    "1K": 10,
    "2K": 11,
    "4K": 12,
    "1x1": 20,
    "2x2": 21,
    "3x3": 22,
    "unary": 30,
    "stream": 31,
}


def require_frame(df: object, columns: Sequence[str], *, argument: str = "df") -> pd.DataFrame:
    """Check ``df`` is a DataFrame holding ``columns``; raise ConfigError naming what is missing."""
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"{argument}={type(df).__name__} is not accepted; use the tidy attempts DataFrame")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{argument} lacks column(s) {missing}; the attempts frame needs {list(columns)} "
            "(see nbp_kit.records.ATTEMPT_FIELDS)"
        )
    return df


def as_columns(by: str | Sequence[str] | None, *, argument: str = "by") -> tuple[str, ...]:
    """Normalise a ``by=`` argument to a tuple of column names."""
    if by is None:
        return ()
    if isinstance(by, str):
        return (by,)
    try:
        cols = tuple(by)
    except TypeError:
        raise ConfigError(f"{argument}={by!r} is not accepted; use a column name or a sequence of names") from None
    if not all(isinstance(c, str) for c in cols):
        raise ConfigError(f"{argument}={by!r} is not accepted; use column names (strings)")
    return cols


def present(df: pd.DataFrame, by: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``by`` that ``df`` has (config columns a frame lacks are skipped)."""
    return tuple(c for c in by if c in df.columns)


def _labels(uniques: object) -> np.ndarray:
    arr = np.asarray(uniques, dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = arr.copy()
        arr[missing] = MISSING_LABEL
    return arr


def level_key(value: object) -> tuple[int, str]:
    """Sort key putting known levels in their natural order, others alphabetically after."""
    return (LEVEL_ORDER.get(str(value), 100), str(value))


def group_codes(df: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group code per row and the frame of group keys (sorted), one row per code.

    Codes depend only on the key values, never on row order.
    """
    n = len(df)
    if not by:
        return np.zeros(n, dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1 if n else 0))
    col_codes: list[np.ndarray] = []
    col_labels: list[np.ndarray] = []
    for c in by:
        codes, uniques = pd.factorize(df[c], use_na_sentinel=False)
        labels = _labels(uniques)
        # sort by key value (not first appearance) so codes never depend on row order, with
        # known levels in their natural order ("low" before "high", "1K" before "4K")
        order = sorted(range(len(labels)), key=lambda i: level_key(labels[i]))
        rank = np.empty(len(labels), dtype=np.int64)
        rank[order] = np.arange(len(labels))
        col_codes.append(rank[codes])
        col_labels.append(labels[order])
    dims = tuple(max(len(lbl), 1) for lbl in col_labels)
    flat = np.ravel_multi_index(tuple(col_codes), dims) if n else np.zeros(0, np.int64)
    gcodes, guniq = pd.factorize(flat, sort=True)
    parts = np.unravel_index(np.asarray(guniq, dtype=np.int64), dims)
    keys = pd.DataFrame({c: col_labels[i][parts[i]] for i, c in enumerate(by)})
    return gcodes.astype(np.int64), keys


def is_ok(df: pd.DataFrame) -> np.ndarray:
    """Boolean array: the attempt ended with an image (``status == "ok"``)."""
    return np.asarray(df["status"] == "ok", dtype=bool)


def num(df: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column as float (missing -> NaN; an absent column -> all NaN)."""
    if column not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def user_calls(df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per ``call_id``: user latency ``max(ended_at) - min(scheduled_at)`` (retries
    and back-off included), ``ok`` if any attempt succeeded, ``attempts``, the call's cost,
    and the ``by`` columns of its first attempt.

    >>> from nbp_kit.analysis.synthetic import synthetic_attempts
    >>> calls = user_calls(synthetic_attempts(500, seed=2))
    >>> bool((calls["user_latency_s"] > 0).all())
    True
    """
    require_frame(df, ("call_id", "status", "ended_at"))
    codes, _ = pd.factorize(df["call_id"], use_na_sentinel=False)
    n_calls = int(codes.max()) + 1 if len(codes) else 0
    start = num(df, "scheduled_at")
    start = np.where(np.isnan(start), num(df, "sent_at"), start)
    end = num(df, "ended_at")
    s = pd.Series(start).groupby(codes).min().to_numpy()
    e = pd.Series(end).groupby(codes).max().to_numpy()
    ok = np.bincount(codes, weights=is_ok(df), minlength=n_calls) > 0
    attempts = np.bincount(codes, minlength=n_calls)
    cost = np.bincount(codes, weights=np.nan_to_num(num(df, "cost_usd")), minlength=n_calls)
    first = np.unique(codes, return_index=True)[1] if n_calls else np.zeros(0, np.int64)
    # take() keeps each column's dtype (categorical, arrow string): no million-object arrays
    out: dict[str, object] = {c: df[c].take(first).reset_index(drop=True) for c in by}
    out.update(
        call_id=df["call_id"].take(first).reset_index(drop=True),
        scheduled_at=s,
        ended_at=e,
        user_latency_s=e - s,
        ok=ok,
        attempts=attempts,
        cost_usd=cost,
    )
    if "tiles" in df.columns:
        out["tiles"] = num(df, "tiles")[first]
    return pd.DataFrame(out)


def latency_view(df: pd.DataFrame, by: Sequence[str], kind: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows to summarise for ``kind`` ("attempt" or "user"): (frame, latency_s, ok).

    Rows still ``"started"`` (in flight, or cut short by a crash) have no outcome yet and
    are left out, so a live sweep's success rate is not dragged down by its open requests.
    """
    if "status" in df.columns and len(df):
        started = np.asarray(df["status"] == "started", dtype=bool)
        if started.any():
            df = df[~started]
    if kind == "attempt":
        require_frame(df, ("status", "total_s", *by))
        return df, num(df, "total_s"), is_ok(df)
    if kind == "user":
        calls = user_calls(df, by)
        return calls, calls["user_latency_s"].to_numpy(dtype=float), calls["ok"].to_numpy(dtype=bool)
    raise ConfigError(f"latency={kind!r} is not accepted; use 'attempt' or 'user'")


def qname(q: float) -> str:
    """Column name of a quantile: 0.5 -> ``p50``, 0.999 -> ``p99.9``."""
    return f"p{round(q * 100, 6):g}"


def time_base_note(df: pd.DataFrame) -> str | None:
    """ "emulator: times scaled x0.02" / "virtual clock" when the frame's times are not real."""
    notes = []
    if "clock" in df.columns and len(df):
        clocks = set(df["clock"].dropna().astype(str).unique())
        if "virtual" in clocks:
            notes.append("virtual clock")
    if "time_scale" in df.columns and len(df):
        scales = pd.to_numeric(df["time_scale"], errors="coerce").dropna().unique()
        odd = sorted(float(s) for s in scales if s != 1.0)
        if odd:
            notes.insert(0, "emulator: times scaled " + ", ".join(f"x{s:g}" for s in odd))
    return "; ".join(notes) or None
