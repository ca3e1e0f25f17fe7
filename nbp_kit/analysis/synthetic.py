"""Synthetic attempt frames with a known truth, for tests, benchmarks and docs examples.

:func:`synthetic_attempts` returns a frame whose columns are exactly
:data:`nbp_kit.records.ATTEMPT_FIELDS`, drawn from a simple latency model whose every effect
is a parameter, so an analysis can be checked against the truth it should recover:

    total = queue + connect + tls + send + wait + download + parse + decode + save
    wait  = server_queue + server_generation + rtt
    server_generation = (base[resolution] + thinking_extra[level]) * grid_factor[grid]
                        * load(hour of week) * LogNormal(0, sigma)

``load`` is ``slow_factor`` inside the slow window and 1 outside it. Failed attempts (429 and
503, more of them inside the slow window) are retried up to ``max_attempts`` times, so calls,
retries and back-off look like the client's records. Everything is vectorised with numpy:
a million rows take well under a second.

>>> df = synthetic_attempts(1_000, seed=1)
>>> len(df), df["status"].isin(["ok", "error"]).all()
(1000, np.True_)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError
from ..records import ATTEMPT_FIELDS

#: Mean server generation time (s) by resolution before thinking, grid and load effects.
BASE_GENERATION_S: dict[str, float] = {"1K": 15.0, "2K": 32.0, "4K": 58.0}
#: Extra generation time (s) by thinking level (the seed article's midpoints).
THINKING_EXTRA_S: dict[str | None, float] = {None: 0.0, "minimal": 0.0, "low": 0.0, "medium": 7.5, "high": 20.0}
#: Multiplier on generation time by grid (a 2x2 grid is one bigger render, not four).
GRID_FACTOR: dict[str, float] = {"1x1": 1.0, "2x2": 1.3, "3x3": 1.6}
#: Response body bytes (base64 PNG) by resolution.
BODY_BYTES: dict[str, int] = {"1K": 1_800_000, "2K": 5_000_000, "4K": 10_000_000}
IMAGE_USD: dict[str, float] = {"1K": 0.134, "2K": 0.134, "4K": 0.24}
THINKING_TOKENS: dict[str | None, int] = {None: 300, "minimal": 100, "low": 300, "medium": 900, "high": 2000}
_TEXT_USD_PER_TOKEN = 12.0 / 1e6
#: Default slow window: US office hours, 21:00-02:00 Beijing time = 13:00-18:00 UTC, Mon-Fri.
DEFAULT_SLOW_WINDOW: tuple[tuple[int, int], ...] = tuple((d, h) for d in range(5) for h in range(13, 18))
#: Monday 2026-03-02 00:00 UTC: weeks start on a Monday so hour-of-week cells line up.
DEFAULT_START_AT = 1772409600.0
_TILES = {"1x1": 1, "2x2": 4, "3x3": 9}


def _config_grid(
    resolutions: Sequence[str],
    thinking_levels: Sequence[str | None],
    aspect_ratios: Sequence[str],
    grids: Sequence[str],
) -> list[tuple[str, str | None, str, str]]:
    for res in resolutions:
        if res not in BASE_GENERATION_S:
            raise ConfigError(f"resolutions={res!r} is not accepted; use one of {sorted(BASE_GENERATION_S)}")
    for grid in grids:
        if grid not in GRID_FACTOR:
            raise ConfigError(f"grids={grid!r} is not accepted; use one of {sorted(GRID_FACTOR)}")
    return list(itertools.product(resolutions, thinking_levels, aspect_ratios, grids))


def synthetic_attempts(
    n: int = 10_000,
    *,
    seed: int = 0,
    resolutions: Sequence[str] = ("1K", "2K", "4K"),
    thinking_levels: Sequence[str | None] = ("low", "high"),
    aspect_ratios: Sequence[str] = ("1:1",),
    grids: Sequence[str] = ("1x1",),
    thinking_extra_s: Mapping[str | None, float] | None = None,
    start_at: float = DEFAULT_START_AT,
    days: float = 7.0,
    slow_window: Sequence[tuple[int, int]] = DEFAULT_SLOW_WINDOW,
    slow_factor: float = 1.35,
    sigma: float = 0.18,
    rtt_s: float = 0.08,
    bandwidth_mbps: float = 100.0,
    reuse_rate: float = 0.9,
    rate_429: float = 0.02,
    rate_503: float = 0.01,
    slow_error_factor: float = 3.0,
    max_attempts: int = 3,
    time_scale: float = 1.0,
    clock: str = "real",
    provider: str = "gemini",
    model: str = "gemini-3-pro-image-preview",
    transport: str = "unary",
    run_id: str = "synthetic",
) -> pd.DataFrame:
    """A tidy attempts frame of ``n`` rows drawn from a model whose truth you set.

    Configs are the product of ``resolutions x thinking_levels x aspect_ratios x grids``, drawn
    uniformly per call. ``slow_window`` lists (day, hour) cells of the week (day 0 = Monday,
    UTC) where generation is ``slow_factor`` times slower and errors ``slow_error_factor``
    times likelier. ``thinking_extra_s`` overrides :data:`THINKING_EXTRA_S` (seconds added by
    each level); aspect ratio has no effect on latency, by construction. ``time_scale`` scales
    generation (as the emulator does) and marks ``clock="scaled"`` unless a clock is given;
    ``clock="virtual"`` fills ``virtual_at``.

    >>> df = synthetic_attempts(2_000, seed=3, thinking_extra_s={"low": 0.0, "high": 15.0})
    >>> sorted(df["thinking_level"].unique())
    ['high', 'low']
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"n={n!r} is not accepted; use a whole number >= 0")
    if max_attempts < 1:
        raise ConfigError(f"max_attempts={max_attempts!r} is not accepted; use 1 or more")
    if clock not in ("real", "scaled", "virtual"):
        raise ConfigError(f"clock={clock!r} is not accepted; use 'real', 'scaled' or 'virtual'")
    if time_scale <= 0:
        raise ConfigError(f"time_scale={time_scale!r} is not accepted; use a number > 0")
    if clock == "real" and time_scale != 1.0:
        clock = "scaled"
    extra = dict(THINKING_EXTRA_S)
    if thinking_extra_s is not None:
        extra.update(thinking_extra_s)
    configs = _config_grid(resolutions, thinking_levels, aspect_ratios, grids)
    rng = np.random.default_rng(seed)

    # Calls first: each call picks a config and a start time; attempts are expanded from it.
    n_calls = max(int(n), 1)
    cfg = rng.integers(0, len(configs), n_calls)
    call_start = start_at + rng.random(n_calls) * days * 86400.0
    how = ((call_start - start_at) // 3600).astype(np.int64) + _how_offset(start_at)
    slow_cells = np.zeros(168, dtype=bool)
    for day, hour in slow_window:
        slow_cells[(day % 7) * 24 + hour % 24] = True
    in_slow = slow_cells[how % 168]
    err_mult = np.where(in_slow, slow_error_factor, 1.0)
    p429 = np.clip(rate_429 * err_mult, 0, 0.95)
    p503 = np.clip(rate_503 * err_mult, 0, 0.95 - p429)
    u = rng.random((n_calls, max_attempts))
    kind = np.where(u < p429[:, None], 429, np.where(u < (p429 + p503)[:, None], 503, 200))
    ok_mat = kind == 200
    # attempts per call: up to and including the first success, at most max_attempts
    first_ok = np.where(ok_mat.any(axis=1), ok_mat.argmax(axis=1) + 1, max_attempts)
    call_idx = np.repeat(np.arange(n_calls), first_ok)[:n]
    m = len(call_idx)
    starts = np.cumsum(first_ok) - first_ok
    attempt_no = np.arange(m) - starts[call_idx] + 1
    status_code = kind[call_idx, attempt_no - 1]
    ok = status_code == 200

    cfg_a = cfg[call_idx]
    base = np.array([BASE_GENERATION_S[c[0]] + extra.get(c[1], 0.0) for c in configs]) * np.array(
        [GRID_FACTOR[c[3]] for c in configs]
    )
    load = np.where(in_slow[call_idx], slow_factor, 1.0)
    gen = base[cfg_a] * load * rng.lognormal(-0.5 * sigma**2, sigma, m)
    # a small share of heavy-tail stragglers, as seen in the field
    gen *= np.where(rng.random(m) < 0.01, rng.uniform(1.5, 3.0, m), 1.0)
    gen = np.where(ok, gen, 0.0) * time_scale
    server_queue = np.where(ok, rng.exponential(0.3, m), 0.0) * time_scale
    reused = rng.random(m) < reuse_rate
    connect = np.where(reused, 0.0, rtt_s * rng.uniform(1.0, 1.5, m))
    tls = np.where(reused, 0.0, 2 * rtt_s * rng.uniform(1.0, 1.5, m))
    send = rng.uniform(0.001, 0.01, m)
    rtt = rtt_s * rng.uniform(1.0, 1.3, m)
    wait = server_queue + gen + rtt
    body = np.where(ok, np.array([BODY_BYTES[c[0]] for c in configs])[cfg_a], 300)
    body = (body * rng.uniform(0.85, 1.15, m)).astype(np.int64)
    download = body * 8 / (bandwidth_mbps * 1e6) * rng.uniform(1.0, 1.4, m)
    parse = np.where(ok, body / 400e6, 1e-4)
    decode = np.where(ok, body / 150e6, 0.0)
    save = np.where(ok, rng.uniform(0.005, 0.03, m), 0.0)
    queue = rng.exponential(0.02, m)
    total = queue + connect + tls + send + wait + download + parse + decode + save
    retry_delay = np.where(ok | (attempt_no >= max_attempts), np.nan, rng.uniform(0, 2.0 * 2.0**attempt_no))
    # each attempt is scheduled when the previous one of its call ended plus its back-off
    gap = total + np.nan_to_num(retry_delay)
    cum = np.cumsum(gap)
    before = cum - gap
    call_first = starts[call_idx]  # index of the call's first attempt (all calls are whole up to n)
    offset = before - before[np.minimum(call_first, m - 1)] if m else before
    scheduled = call_start[call_idx] + offset
    sent = scheduled + queue
    ended = scheduled + total

    tiles = np.array([_TILES[c[3]] for c in configs])[cfg_a]
    think_tokens = np.array([THINKING_TOKENS.get(c[1], 300) for c in configs])[cfg_a]
    price = np.array([IMAGE_USD[c[0]] for c in configs])[cfg_a]
    cost = np.where(ok, price + think_tokens * _TEXT_USD_PER_TOKEN, 0.0)

    cols: dict[str, object] = {
        "attempt_id": _ids(np.arange(m)),
        "call_id": _ids(call_idx),
        "attempt_no": attempt_no,
        "status": pd.Categorical.from_codes(np.where(ok, 0, 1), categories=["ok", "error"]),
        "run_id": _const(run_id, m),
        "request_key": _const(None, m),
        "hedge": np.zeros(m, dtype=bool),
        "provider": _const(provider, m),
        "model": _const(model, m),
        "base_host": _const("synthetic", m),
        "transport": _const(transport, m),
        "resolution": _cat([c[0] for c in configs], cfg_a),
        "aspect_ratio": _cat([c[2] for c in configs], cfg_a),
        "thinking_level": _cat([c[1] for c in configs], cfg_a),
        "grid": _cat([c[3] for c in configs], cfg_a),
        "prompt": _const("synthetic prompt", m),
        "seed": np.full(m, np.nan),
        "scheduled_at": scheduled,
        "sent_at": sent,
        "ended_at": ended,
        "queue_s": queue,
        "connect_s": connect,
        "tls_s": tls,
        "send_s": send,
        "wait_s": wait,
        "download_s": download,
        "fetch_s": np.full(m, np.nan),
        "parse_s": parse,
        "decode_s": decode,
        "save_s": save,
        "total_s": total,
        "http_version": _const("HTTP/2", m),
        "connection_reused": reused,
        "bytes_down": body,
        "bytes_decoded": np.where(ok, body * 3 // 4, 0),
        "download_mbps": body * 8 / 1e6 / download,
        "status_code": status_code,
        "error_kind": pd.Categorical.from_codes(
            np.where(status_code == 429, 0, np.where(status_code == 503, 1, -1)),
            categories=["rate_limited", "overloaded"],
        ),
        "retry_delay_s": retry_delay,
        "retry_delay_source": pd.Categorical.from_codes(np.where(np.isnan(retry_delay), -1, 0), categories=["backoff"]),
        "output_tokens": np.where(ok, 1120, 0),
        "thoughts_tokens": np.where(ok, think_tokens, 0),
        "image_tokens": np.where(ok, 1120, 0),
        "cost_usd": cost,
        "tiles": tiles,
        "size_ok": ok,
        "server_queue_s": server_queue,
        "server_generation_s": gen,
        "time_scale": np.full(m, float(time_scale)),
        "clock": _const(clock, m),
        "virtual_at": sent if clock == "virtual" else np.full(m, np.nan),
    }
    # fields the model has nothing to say about (image paths, response ids...) are missing
    columns = {name: cols[name] if name in cols else _const(None, m) for name in ATTEMPT_FIELDS}
    # copy=False: the arrays are fresh, so skip pandas consolidating them (a 2x slowdown)
    return pd.DataFrame(columns, copy=False)


def _ids(values: np.ndarray) -> pd.Series:
    # pyarrow casts a million ints to strings ~20x faster than numpy/pandas astype(str)
    return pd.Series(pd.array(pc.cast(pa.array(values), pa.string()), dtype="str"))


def _const(value: str | None, m: int) -> pd.Categorical:
    """A constant (or all-missing) text column, stored as a one-category categorical."""
    cats = [] if value is None else [value]
    return pd.Categorical.from_codes(np.full(m, 0 if cats else -1, dtype=np.int8), categories=cats)


def _cat(values: Sequence[object], codes: np.ndarray) -> pd.Categorical:
    """Config values per row from config codes; ``None`` becomes a missing value."""
    cats = [v for v in dict.fromkeys(values) if v is not None]
    lookup = np.array([cats.index(v) if v is not None else -1 for v in values], dtype=np.int16)
    return pd.Categorical.from_codes(lookup[codes], categories=cats)


def _how_offset(epoch_s: float) -> int:
    """Hour of week (Monday 00:00 UTC = 0) of ``epoch_s``; 1970-01-01 was a Thursday."""
    return int(((epoch_s // 3600) + 3 * 24) % 168)
