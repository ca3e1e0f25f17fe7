"""The Flex service tier: ``"serviceTier": "flex"`` on a request, half price, a longer queue,
and 503s when the service sheds flex traffic. All of it is profile data (``"flex"`` section);
the defaults below apply when a profile has none.

A flex request's queue gets an extra lognormal wait (median ``queue_median_s``, spread
``queue_sigma``, times ``time_scale``), and with probability
``shed_prob_base + shed_prob_per_load * (load - 1)`` it is answered 503 UNAVAILABLE (only when
the emulator draws faults, like every random error).

>>> DEFAULTS["shed_prob_base"]
0.05
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import Draw
    from .wire import Serving

#: Flex behaviour, overridable per profile under ``"flex"`` (service seconds).
DEFAULTS: dict[str, float] = {
    "queue_median_s": 20.0,
    "queue_sigma": 1.2,
    "shed_prob_base": 0.05,
    "shed_prob_per_load": 0.2,
}
#: ``serviceTier`` values the API takes (google-genai's ServiceTier, lower case on the wire).
TIERS: tuple[str, ...] = ("unspecified", "standard", "flex", "priority")


def apply(app: Serving, fault: str | None, draw: Draw, load: float) -> tuple[str | None, Draw]:
    """A flex request's fault (maybe shed with a 503) and its longer queue."""
    p: dict[str, Any] = {**DEFAULTS, **app.profile.get("flex", {})}
    if fault is None and app.faults_on:
        shed = float(p["shed_prob_base"]) + float(p["shed_prob_per_load"]) * (load - 1.0)
        if app.rng.random() < shed:
            fault = "503"
    sigma = float(p["queue_sigma"])
    extra = (
        float(app.rng.lognormal(math.log(float(p["queue_median_s"])), sigma))
        if sigma > 0
        else float(p["queue_median_s"])
    )
    return fault, dataclasses.replace(draw, queue_s=draw.queue_s + extra * app.time_scale)
