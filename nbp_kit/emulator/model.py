"""The emulator's latency model, load curve, quotas and clock: all driven by profile data.

A profile (``data/profiles/NAME.json``) gives, per resolution x thinking level, the mean and
P95 of the generation time. Each cell is a lognormal body whose parameters are solved so that
the body reproduces the published mean and P95, mixed with a small heavy tail::

    sigma: 1.645 * sigma - sigma**2 / 2 = ln(p95 / mean)       (smaller root)
    mu:    ln(mean / (1 + tail_prob * (E[tail_mult] - 1))) - sigma**2 / 2

so the mixture's mean stays on the published mean. Draws are multiplied by the model's speed,
the grid factor and the hour-of-week load factor, then by ``time_scale``.

>>> from nbp_kit.profiles import load_profile
>>> m = LatencyModel(load_profile("default"))
>>> 25 < m.cell_quantile("2K", "low", 0.95) < 60
True
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import math
import threading
import time
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigError

_Z95 = 1.6448536269514722


def solve_lognormal(mean_s: float, p95_s: float) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and P95.

    >>> mu, s = solve_lognormal(17.5, 25.0)
    >>> round(math.exp(mu + s * s / 2), 3)
    17.5
    """
    if mean_s <= 0 or p95_s <= mean_s:
        raise ConfigError(f"latency cell mean_s={mean_s!r}, p95_s={p95_s!r}: need 0 < mean_s < p95_s")
    c = math.log(p95_s / mean_s)
    disc = _Z95 * _Z95 - 2 * c
    if disc <= 0:
        raise ConfigError(f"latency cell p95_s={p95_s!r} is too far above mean_s={mean_s!r} for a lognormal")
    sigma = _Z95 - math.sqrt(disc)
    return math.log(mean_s) - sigma * sigma / 2, sigma


@dataclasses.dataclass(frozen=True, slots=True)
class Draw:
    """One request's drawn server times (already multiplied by ``time_scale``)."""

    queue_s: float
    generation_s: float
    load_factor: float
    level: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LatencyModel:
    """Draws generation and queue times from a profile.

    >>> from nbp_kit.profiles import load_profile
    >>> m = LatencyModel(load_profile("default"))
    >>> m.draw(model="gemini-3-pro-image-preview", resolution="1K", level=None,
    ...        grid="1x1", load_factor=1.0, rng=np.random.default_rng(0)).level
    'low'
    """

    def __init__(self, profile: dict[str, Any], *, time_scale: float = 1.0) -> None:
        lat = profile["latency"]
        self.profile = profile
        self.time_scale = time_scale
        self.zero = bool(lat.get("zero", False))
        tail = lat.get("tail", {})
        self.tail_prob = float(tail.get("prob", 0.0))
        self.tail_min = float(tail.get("mult_min", 1.0))
        self.tail_max = float(tail.get("mult_max", 1.0))
        tail_mean = (self.tail_min + self.tail_max) / 2
        self.floor_s = float(lat.get("floor_s", 0.0))
        self.grid_factor: dict[str, float] = {"1x1": 1.0, **lat.get("grid_factor", {})}
        q = lat.get("queue", {})
        self.queue_mean_s = float(q.get("mean_s", 0.0))
        self.queue_sigma = float(q.get("sigma", 0.0))
        self.cells: dict[tuple[str, str], tuple[float, float]] = {}
        for res, levels in lat["cells"].items():
            for level, cell in levels.items():
                mu, sigma = solve_lognormal(float(cell["mean_s"]), float(cell["p95_s"]))
                # The tail mixture adds mean; take it back from the body so the total matches.
                mu -= math.log(1 + self.tail_prob * (tail_mean - 1))
                self.cells[(res, level)] = (mu, sigma)

    def model_info(self, model: str) -> dict[str, Any] | None:
        return self.profile["models"].get(model)

    def cell_level(self, model: str, level: str | None) -> str:
        """The profile cell a model's thinking level maps onto (default level when None)."""
        info = self.model_info(model) or {}
        level = level or info.get("default_level", "low")
        return info.get("level_cells", {}).get(level, level)

    def sample_generation(self, resolution: str, cell_level: str, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` unscaled generation times (seconds) for one cell, load factor 1, speed 1."""
        mu, sigma = self.cells[(resolution, cell_level)]
        x = rng.lognormal(mu, sigma, n)
        tail = rng.random(n) < self.tail_prob
        x[tail] *= rng.uniform(self.tail_min, self.tail_max, int(tail.sum()))
        return np.maximum(x, self.floor_s)

    def cell_quantile(self, resolution: str, cell_level: str, q: float, n: int = 20000) -> float:
        return float(np.quantile(self.sample_generation(resolution, cell_level, np.random.default_rng(1), n), q))

    def draw(
        self,
        *,
        model: str,
        resolution: str,
        level: str | None,
        grid: str,
        load_factor: float,
        rng: np.random.Generator,
    ) -> Draw:
        info = self.model_info(model) or {}
        cell = self.cell_level(model, level)
        if self.zero:
            return Draw(0.0, 0.0, load_factor, level or info.get("default_level", "low"))
        gen = float(self.sample_generation(resolution, cell, rng, 1)[0])
        gen *= float(info.get("speed", 1.0)) * self.grid_factor.get(grid, 1.0) * load_factor
        queue = 0.0
        if self.queue_mean_s > 0:
            s = self.queue_sigma
            queue = float(rng.lognormal(math.log(self.queue_mean_s) - s * s / 2, s)) if s > 0 else self.queue_mean_s
        return Draw(
            queue * self.time_scale, gen * self.time_scale, load_factor, level or info.get("default_level", "low")
        )


def hour_of_week_factors(profile: dict[str, Any]) -> list[float]:
    """168 load factors, index = weekday * 24 + hour (Monday 0), in the profile's UTC hours.

    >>> from nbp_kit.profiles import load_profile
    >>> f = hour_of_week_factors(load_profile("default"))
    >>> f[0 * 24 + 15], f[5 * 24 + 15]
    (1.3, 1.0)
    """
    load = profile.get("load", {})
    days = set(load.get("weekdays", []))
    hours = {int(h): float(v) for h, v in load.get("hour_factor", {}).items()}
    weekend = float(load.get("weekend_factor", 1.0))
    out = []
    for day in range(7):
        for hour in range(24):
            out.append(hours.get(hour, 1.0) if day in days else weekend if day >= 5 else 1.0)
    return out


def parse_clock_start(value: str | float | int | _dt.datetime | None) -> float | None:
    """Epoch seconds from an ISO datetime (UTC if naive), epoch number or None.

    >>> parse_clock_start("2026-01-05T13:00:00Z")
    1767618000.0
    """
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            dt = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(
                f"clock_start={value!r} is not accepted; use an ISO datetime such as "
                f"'2026-01-05T13:00:00Z' or epoch seconds"
            ) from exc
    else:
        raise ConfigError(f"clock_start={value!r} is not accepted; use an ISO datetime string or epoch seconds")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return dt.timestamp()


class Clock:
    """Real, scaled or virtual time. Virtual time = start + elapsed_real * speed.

    >>> c = Clock(time_scale=0.02, clock_start="2026-01-05T00:00:00Z", clock_speed=3600)
    >>> c.kind
    'virtual'
    """

    def __init__(
        self,
        *,
        time_scale: float,
        clock_start: Any = None,
        clock_speed: float = 1.0,
        monotonic: Any = time.monotonic,
        wall: Any = time.time,
    ) -> None:
        if not isinstance(clock_speed, (int, float)) or isinstance(clock_speed, bool) or clock_speed <= 0:
            raise ConfigError(f"clock_speed={clock_speed!r} is not accepted; use a number > 0")
        self._monotonic = monotonic
        self.start_epoch = parse_clock_start(clock_start)
        self.speed = float(clock_speed)
        self.time_scale = time_scale
        self._t0 = monotonic()
        self._wall0 = wall() if self.start_epoch is None else self.start_epoch
        if self.start_epoch is not None or self.speed != 1.0:
            self.kind = "virtual"
        elif time_scale != 1.0:
            self.kind = "scaled"
        else:
            self.kind = "real"

    def virtual_now(self) -> float:
        return self._wall0 + (self._monotonic() - self._t0) * self.speed

    def hour_of_week(self, at: float | None = None) -> int:
        """Monday-0 hour of the week (UTC) of ``at`` (virtual epoch seconds), or of now."""
        dt = _dt.datetime.fromtimestamp(self.virtual_now() if at is None else at, _dt.UTC)
        return dt.weekday() * 24 + dt.hour


class Incidents:
    """Windows of correlated overload on the service clock (profile data ``incidents``)::

        "incidents": [{"start_min": 5, "length_min": 30, "severity": 0.95}]

    ``start_min`` and ``length_min`` are service minutes since the emulator started (a minute
    lasts ``60 * time_scale`` real seconds); inside a window each request is answered 503
    "model is overloaded" with probability ``severity``, faults on or off. An optional
    ``"models": [...]`` limits an incident to those model ids (capacity is per model: Pro can be
    overloaded while Flash answers); without it every model is hit.
    """

    def __init__(self, spec: Any, *, time_scale: float, monotonic: Any = time.monotonic) -> None:
        if not isinstance(spec, list):
            raise ConfigError(
                f"incidents={spec!r:.80} is not accepted; use a list of "
                "{'start_min': m, 'length_min': m, 'severity': p}"
            )
        self.windows: list[tuple[float, float, float, frozenset[str] | None]] = []
        for item in spec:
            try:
                start, length, sev = float(item["start_min"]), float(item["length_min"]), float(item["severity"])
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    f"incidents entry {item!r:.80} is not accepted; use "
                    "{'start_min': m, 'length_min': m, 'severity': p}"
                ) from None
            if start < 0 or length <= 0 or not 0 <= sev <= 1:
                raise ConfigError(
                    f"incidents entry {item!r:.80} is not accepted; start_min >= 0, length_min > 0, severity in [0, 1]"
                )
            models = item.get("models")
            if models is not None and (
                not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models)
            ):
                raise ConfigError(f"incidents entry {item!r:.80} is not accepted; models is a list of model ids")
            minute = 60.0 * time_scale
            self.windows.append((start * minute, (start + length) * minute, sev, frozenset(models) if models else None))
        self._now = monotonic
        self._t0 = monotonic()

    def severity(self, model: str | None = None) -> float:
        """The overload probability now for ``model`` (0 outside every incident that hits it)."""
        t = self._now() - self._t0
        return max(
            (sev for lo, hi, sev, models in self.windows if lo <= t < hi and (models is None or model in models)),
            default=0.0,
        )


class Rejection(NamedTuple):
    """Why a request was refused with 429: the quota, the delay until it frees, and its limit."""

    quota_id: str
    delay_s: float
    daily: bool
    limit: float | None = None  # the limit the body states (None: the body states none)
    kind: str = "quota"  # quota | spend


class Quotas:
    """Per-minute request/image windows, a concurrency cap, a per-day image count and a spend
    limit per rolling 10 minutes, none of which the client is told.

    A "minute" lasts ``60 * time_scale`` real seconds, so scaled runs hit quotas as real ones
    would. ``admit`` returns None or a :class:`Rejection`. ``spend_usd_per_10min`` counts
    ``usd_per_image`` (profile data, default $0.134) per admitted image.
    """

    def __init__(
        self, spec: dict[str, Any], *, time_scale: float, enabled: bool, monotonic: Any = time.monotonic
    ) -> None:
        self.rpm = spec.get("rpm")
        self.ipm = spec.get("images_per_min")
        self.concurrent = spec.get("concurrent")
        self.ipd = spec.get("images_per_day")
        self.spend_limit = spec.get("spend_usd_per_10min")
        self.usd_per_image = float(spec.get("usd_per_image", 0.134))
        self.enabled = enabled
        self.window_s = 60.0 * time_scale
        self.day_s = 86400.0 * time_scale
        self.spend_window_s = 600.0 * time_scale
        self._now = monotonic
        self._lock = threading.Lock()
        self._requests: collections.deque[float] = collections.deque()
        self._images: collections.deque[tuple[float, int]] = collections.deque()
        self._day: collections.deque[tuple[float, int]] = collections.deque()
        self._spend: collections.deque[tuple[float, float]] = collections.deque()
        self.active = 0

    def admit(self, images: int) -> Rejection | None:
        with self._lock:
            now = self._now()
            self.active += 1  # released by release() whatever the outcome
            if not self.enabled:
                return None
            while self._requests and now - self._requests[0] >= self.window_s:
                self._requests.popleft()
            while self._images and now - self._images[0][0] >= self.window_s:
                self._images.popleft()
            while self._day and now - self._day[0][0] >= self.day_s:
                self._day.popleft()
            while self._spend and now - self._spend[0][0] >= self.spend_window_s:
                self._spend.popleft()
            if self.concurrent is not None and self.active > self.concurrent:
                return Rejection(
                    "GenerateContentConcurrentRequestsPerProject", self.window_s / 10, False, self.concurrent
                )
            if self.ipd is not None and sum(n for _, n in self._day) + images > self.ipd:
                return Rejection("GenerateContentImagesPerDayPerProject", self.day_s, True, self.ipd)
            cost = images * self.usd_per_image
            if self.spend_limit is not None and sum(u for _, u in self._spend) + cost > self.spend_limit + 1e-9:
                return Rejection(
                    "GenerateContentSpendPer10MinutesPerProject",
                    self._spend[0][0] + self.spend_window_s - now if self._spend else self.spend_window_s,
                    False,
                    self.spend_limit,
                    kind="spend",
                )
            if self.rpm is not None and len(self._requests) >= self.rpm:
                return Rejection(
                    "GenerateContentRequestsPerMinutePerProject",
                    self._requests[0] + self.window_s - now if self._requests else self.window_s,
                    False,
                    self.rpm,
                )
            if self.ipm is not None and sum(n for _, n in self._images) + images > self.ipm:
                return Rejection(
                    "GenerateContentImagesPerMinutePerProject",
                    self._images[0][0] + self.window_s - now if self._images else self.window_s,
                    False,
                    self.ipm,
                )
            self._requests.append(now)
            self._images.append((now, images))
            self._day.append((now, images))
            self._spend.append((now, cost))
            return None

    def release(self) -> None:
        with self._lock:
            self.active -= 1
