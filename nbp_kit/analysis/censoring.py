"""Which attempts are right-censored, and which are hedge copies that lost the race.

An attempt cut by a timeout or cancelled did not *fail* to be slow: it was at least as slow
as its recorded ``total_s``, and the slowest attempts are exactly the ones a deadline cuts.
Leaving them out makes the tail look short. The analysis treats them as right-censored at
their elapsed time (Kaplan-Meier, :mod:`nbp_kit.analysis.quantile_ci`).

A hedge race ends with the loser cancelled (``error_kind="cancelled"``) while another attempt
of the same call succeeded: the loser is not a failure (the call got its image), so it is
left out of failure rates, and its latency is censored (it would have taken longer).

>>> import pandas as pd
>>> f = pd.DataFrame({"call_id": ["a", "a", "b"], "status": ["ok", "error", "error"],
...                   "error_kind": [None, "cancelled", "timeout"], "total_s": [30.0, 30.0, 90.0]})
>>> censored_attempts(f).tolist(), hedge_losers(f).tolist()
([False, True, True], [False, True, False])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Error kinds whose elapsed time is a lower bound of the attempt's latency.
CENSORING_KINDS: tuple[str, ...] = ("timeout", "cancelled")


def censored_attempts(df: pd.DataFrame) -> np.ndarray:
    """True for attempts cut short (timeout, cancelled) with a finite elapsed time."""
    if "error_kind" not in df.columns or not len(df):
        return np.zeros(len(df), dtype=bool)
    kind = df["error_kind"].astype(object).to_numpy()
    total = pd.to_numeric(df["total_s"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return (
        np.asarray(df["status"] == "error", dtype=bool)
        & np.isin(kind, CENSORING_KINDS)
        & np.isfinite(total)
        & (total > 0)
    )


def hedge_losers(df: pd.DataFrame) -> np.ndarray:
    """True for cancelled attempts of a call that another attempt answered (a lost race)."""
    if "error_kind" not in df.columns or "call_id" not in df.columns or not len(df):
        return np.zeros(len(df), dtype=bool)
    cancelled = np.asarray(df["error_kind"] == "cancelled", dtype=bool)
    if not cancelled.any():
        return cancelled
    codes, _ = pd.factorize(df["call_id"], use_na_sentinel=False)
    call_ok = np.bincount(codes, weights=np.asarray(df["status"] == "ok", dtype=float)) > 0
    return cancelled & call_ok[codes]


def censored_calls(df: pd.DataFrame, call_ids: pd.Series) -> np.ndarray:
    """Per call in ``call_ids``: True when it got no image and its last attempt was cut short."""
    if not len(df):
        return np.zeros(len(call_ids), dtype=bool)
    cut = censored_attempts(df)
    end = pd.to_numeric(df["ended_at"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    frame = pd.DataFrame(
        {
            "call_id": df["call_id"].to_numpy(),
            "cut": cut,
            "ok": np.asarray(df["status"] == "ok"),
            "end": np.nan_to_num(end, nan=-np.inf),
        }
    )
    last = frame.sort_values("end", kind="stable").groupby("call_id", sort=False).tail(1).set_index("call_id")
    any_ok = frame.groupby("call_id", sort=False)["ok"].any()
    verdict = last["cut"] & ~any_ok.reindex(last.index).fillna(False)
    return verdict.reindex(pd.Index(call_ids)).fillna(False).to_numpy(dtype=bool)
