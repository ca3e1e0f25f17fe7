"""Sweep plans: what to run, in what order, and what it will cost before anything is sent.

A :class:`Plan` is the cross product prompts x resolutions x thinking levels x aspect ratios
x grids x transports, repeated. Each repetition is a *block* shuffled with the plan's seed, so
a slow afternoon spreads over every configuration instead of masquerading as one config's
effect. Every item has a stable ``request_key`` (a hash of its config, prompt and repetition)
that resume uses to skip what already succeeded::

    >>> plan = Plan(prompts=["a red bicycle"], resolutions=["1K", "2K"], repetitions=2, seed=1)
    >>> [i.spec.resolution for i in plan.items()]  # two blocks, each shuffled
    ['1K', '2K', '1K', '2K']
    >>> plan.preflight().requests
    4

:func:`check_spend_cap` refuses a plan whose estimate passes the cap. The runner lives in
:mod:`nbp_kit.runs.runner`; ``run_sweep`` and ``start_sweep`` are re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import random
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SpendCapExceeded
from ..profiles import load_profile
from ..spec import DEFAULT_MODEL, GRIDS, ImageSpec

#: Default spend cap in USD: small on purpose, raise it per sweep.
DEFAULT_SPEND_CAP_USD = 2.0
PROVIDERS: tuple[str, ...] = ("gemini", "relay")
TRANSPORTS: tuple[str, ...] = ("unary", "stream")

# Mean service seconds when no emulator profile is known: the seed article's table
# (data/reference/seed_claims.md), thinking "low" for an unset level.
_DEFAULT_MEAN_S: dict[str, dict[str, float]] = {
    "1K": {"low": 17.5, "medium": 25.0, "high": 37.5},
    "2K": {"low": 35.0, "medium": 42.5, "high": 52.5},
    "4K": {"low": 60.0, "medium": 67.5, "high": 100.0},
}
_DEFAULT_GRID_FACTOR = {"1x1": 1.0, "2x2": 1.15, "3x3": 1.35}


def _tuple(name: str, value: Any, *, allow_none_item: bool = False) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or value is None:
        value = [value]
    try:
        out = tuple(value)
    except TypeError:
        raise ConfigError(f"{name}={value!r} is not accepted; pass a list") from None
    if not out:
        raise ConfigError(f"{name}={list(out)!r} is not accepted; pass at least one value")
    if not allow_none_item and any(v is None for v in out):
        raise ConfigError(f"{name}={list(out)!r} is not accepted; None is not a value here")
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class PlanItem:
    """One request of a plan. ``block`` is its repetition (0-based), ``index`` its position."""

    index: int
    block: int
    prompt: str
    spec: ImageSpec
    transport: str
    request_key: str
    seed: int  # the image seed sent with the request (derived from the key: stable)
    references: tuple[int, int] = (0, 0)  # reference images sent: (count, side in px)
    edit_turns: int = 1  # turns of the editing session this item runs (1: one request)

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in ("index", "block", "prompt", "transport", "request_key", "seed")},
            **self.spec.as_dict(),
            "reference_images": f"{self.references[0]}x{self.references[1]}",
            "edit_turns": self.edit_turns,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Preflight:
    """What a plan will cost before it is sent.

    ``est_time_s`` is wall time: mean service time x time scale, divided by concurrency (or
    set by the rate limit when that is slower).
    """

    requests: int
    images: int  # variants: a 2x2 grid call is 4
    est_cost_usd: float
    est_time_s: float
    concurrency: int
    time_scale: float
    cost_per_request_usd: float  # the cheapest single request (the cap must pass it)
    source: str  # where the time estimate came from: a profile name or "seed article table"
    spend_rate_time_s: float | None = None  # wall time a spend-rate limit alone implies

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.requests} requests, {self.images} images, estimated ${self.est_cost_usd:.2f}, "
            f"about {_fmt_s(self.est_time_s)} at concurrency {self.concurrency} "
            f"(time scale {self.time_scale:g}; times from {self.source})"
            + (
                f"; the spend-rate limit alone implies {_fmt_s(self.spend_rate_time_s)}"
                if self.spend_rate_time_s
                else ""
            )
        )


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """A sweep: the cross product of the knobs, ``repetitions`` times, shuffled per block.

    >>> plan = Plan(prompts=["a cat"], resolutions=["1K"], repetitions=3, seed=7)
    >>> len(plan.items()), plan.items()[0].request_key == Plan(prompts=["a cat"], repetitions=3, seed=7).items()[0].request_key
    (3, True)
    """

    prompts: Sequence[str]
    resolutions: Sequence[str] = ("1K",)
    thinking_levels: Sequence[str | None] = (None,)
    aspect_ratios: Sequence[str] = ("1:1",)
    grids: Sequence[str] = ("1x1",)
    transports: Sequence[str] = ("unary",)
    repetitions: int = 1
    seed: int = 0
    model: str = DEFAULT_MODEL
    provider: str = "gemini"
    check_capabilities: bool = True
    #: Reference images per request as ``"COUNTxSIDE"`` (``"3x1024"``: three 1024 px images) or
    #: ``(count, side)``; ``"0x0"`` sends none. Synthetic images, the same for every run.
    reference_images: Sequence[Any] = ("0x0",)
    #: Turns per editing session (each turn replays the history with its thought signatures).
    edit_turns: Sequence[int] = (1,)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "prompts", _tuple("prompts", self.prompts))
        for p in self.prompts:
            if not isinstance(p, str) or not p.strip():
                raise ConfigError(f"prompts contains {p!r}; every prompt must be a non-empty string")
        set_(self, "resolutions", _tuple("resolutions", self.resolutions))
        set_(self, "thinking_levels", _tuple("thinking_levels", self.thinking_levels, allow_none_item=True))
        set_(self, "aspect_ratios", _tuple("aspect_ratios", self.aspect_ratios))
        set_(self, "grids", _tuple("grids", self.grids))
        set_(self, "transports", _tuple("transports", self.transports))
        if isinstance(self.repetitions, bool) or not isinstance(self.repetitions, int) or self.repetitions < 1:
            raise ConfigError(f"repetitions={self.repetitions!r} is not accepted; use a whole number >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed={self.seed!r} is not accepted; use a whole number")
        if self.provider not in PROVIDERS:
            raise ConfigError(
                f"provider={self.provider!r} is not accepted; use one of {', '.join(map(repr, PROVIDERS))}"
            )
        for t in self.transports:
            if t not in TRANSPORTS:
                raise ConfigError(f"transports contains {t!r}; use 'unary' or 'stream'")
        for g in self.grids:
            if g not in GRIDS:
                raise ConfigError(f"grids contains {g!r}; use one of {', '.join(map(repr, GRIDS))}")
        set_(
            self,
            "reference_images",
            tuple(parse_references(v) for v in _tuple("reference_images", self.reference_images)),
        )
        set_(self, "edit_turns", _tuple("edit_turns", self.edit_turns))
        for turns in self.edit_turns:
            if isinstance(turns, bool) or not isinstance(turns, int) or not 1 <= turns <= 20:
                raise ConfigError(f"edit_turns contains {turns!r}; use whole numbers from 1 to 20")
        if self.provider != "gemini" and (self.edit_turns != (1,) or any(n for n, _ in self.reference_images)):
            raise ConfigError(
                f"reference_images / edit_turns are not accepted for provider={self.provider!r}; "
                "editing needs provider='gemini'"
            )
        specs = self.specs()  # ImageSpec validates each value
        if self.check_capabilities:
            _check_capabilities(self.provider, self.model, specs, self.transports)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Plan:
        """A plan from a ``.json`` or ``.toml`` file whose keys are :class:`Plan` fields.

        A TOML plan may put the fields under a ``[plan]`` table.
        """
        p = Path(path)
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"plan file={str(path)!r} cannot be read: {exc}") from exc
        try:
            raw = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"plan file={str(path)!r} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        if isinstance(raw, dict) and isinstance(raw.get("plan"), dict):
            raw = raw["plan"]
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "plan") -> Plan:
        """A plan from a dict of :class:`Plan` fields (unknown keys are refused)."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: a plan must be a mapping of fields, got {type(raw).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - fields)
        if unknown:
            raise ConfigError(f"{source}: unknown plan field(s) {unknown}; accepted: {sorted(fields)}")
        if "prompts" not in raw:
            raise ConfigError(f"{source}: a plan needs 'prompts'")
        raw = dict(raw)
        if "thinking_levels" in raw:  # TOML has no null: "default" or "" mean "send no knob"
            tl = raw["thinking_levels"]
            tl = [tl] if isinstance(tl, str) or tl is None else tl
            raw["thinking_levels"] = [None if v in (None, "", "default", "none") else v for v in tl]
        return cls(**raw)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["reference_images"] = [f"{n}x{side}" for n, side in self.reference_images]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    # -- items --------------------------------------------------------------------------
    def specs(self) -> list[ImageSpec]:
        """Every distinct configuration, in declaration order."""
        return [
            ImageSpec(resolution=r, aspect_ratio=a, thinking_level=t, grid=g, model=self.model)
            for r, t, a, g in itertools.product(self.resolutions, self.thinking_levels, self.aspect_ratios, self.grids)
        ]

    def items(self) -> list[PlanItem]:
        """All requests: blocks in order, each block shuffled with ``seed`` (same seed, same order)."""
        base = [
            (p, s, t, r, e)
            for s in self.specs()
            for t in self.transports
            for p in self.prompts
            for r in self.reference_images
            for e in self.edit_turns
        ]
        out: list[PlanItem] = []
        for rep in range(self.repetitions):
            block = list(base)
            random.Random(f"{self.seed}:{rep}").shuffle(block)
            for prompt, spec, transport, refs, turns in block:
                edits = None if (refs[0], turns) == (0, 1) else {"references": list(refs), "edit_turns": turns}
                key = request_key(self.provider, spec, prompt, transport, rep, edits=edits)
                out.append(
                    PlanItem(
                        index=len(out),
                        block=rep,
                        prompt=prompt,
                        spec=spec,
                        transport=transport,
                        request_key=key,
                        seed=int(key[:8], 16) % 2**31,
                        references=refs if refs[0] else (0, 0),
                        edit_turns=turns,
                    )
                )
        return out

    def __len__(self) -> int:
        return (
            len(self.prompts)
            * len(self.resolutions)
            * len(self.thinking_levels)
            * len(self.aspect_ratios)
            * len(self.grids)
            * len(self.transports)
            * self.repetitions
            * len(self.reference_images)
            * len(self.edit_turns)
        )

    # -- pre-flight ---------------------------------------------------------------------
    def preflight(
        self,
        *,
        concurrency: int = 1,
        time_scale: float = 1.0,
        profile: str | dict[str, Any] | None = None,
        rate_per_min: float | None = None,
    ) -> Preflight:
        """Requests, images, estimated cost and estimated wall time, before anything is sent.

        >>> Plan(prompts=["x"], repetitions=2).preflight().est_cost_usd
        0.273364
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency={concurrency!r} is not accepted; use a whole number >= 1")
        if not (isinstance(time_scale, (int, float)) and time_scale > 0):
            raise ConfigError(f"time_scale={time_scale!r} is not accepted; use a number > 0")
        prof = load_profile_dict(profile)
        items = self.items()
        cost = sum(item_expected_cost(self.provider, i, profile=prof) for i in items)
        service_s = sum(_mean_service_s(i.spec, prof) * i.edit_turns for i in items) * time_scale
        est = service_s / concurrency
        if rate_per_min:
            est = max(est, len(items) / rate_per_min * 60.0 * time_scale)
        cheapest = min(
            expected_cost(self.provider, s, prompt=min(self.prompts, key=len), profile=prof) for s in self.specs()
        )
        return Preflight(
            requests=sum(i.edit_turns for i in items),
            images=sum(i.spec.tiles * i.edit_turns for i in items),
            est_cost_usd=round(cost, 6),
            est_time_s=est,
            concurrency=concurrency,
            time_scale=float(time_scale),
            cost_per_request_usd=cheapest,
            source=(prof or {}).get("name", "seed article table") if prof else "seed article table",
        )


def request_key(
    provider: str, spec: ImageSpec, prompt: str, transport: str, repetition: int, *, edits: dict[str, Any] | None = None
) -> str:
    """Stable hash naming one plan item (the same in every process and Python version)."""
    fields: dict[str, Any] = {
        "provider": provider,
        "spec": spec.as_dict(),
        "prompt": prompt,
        "transport": transport,
        "rep": repetition,
    }
    if edits is not None:  # only editing items carry it, so every other key stays what it was
        fields["edits"] = edits
    doc = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def _check_capabilities(provider: str, model: str, specs: Iterable[ImageSpec], transports: Sequence[str]) -> None:
    from .. import providers

    caps = providers.capabilities(provider, model)
    for spec in specs:
        if spec.thinking_level is not None and spec.thinking_level not in caps.thinking_levels:
            raise ConfigError(
                f"thinking_levels contains {spec.thinking_level!r}, which provider={provider!r} model={model!r} "
                f"does not document; accepted: {list(caps.thinking_levels) or 'none (use None)'}. "
                "Pass check_capabilities=False to measure it anyway."
            )
        if spec.grid not in caps.grids:
            raise ConfigError(
                f"grids contains {spec.grid!r}, which provider={provider!r} does not offer; "
                f"accepted: {list(caps.grids)}"
            )
    if "stream" in transports and not caps.streaming:
        raise ConfigError(f"transports contains 'stream', which provider={provider!r} does not offer")


def load_profile_dict(profile: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The latency profile a plan estimates with (a name, a path, a dict or ``None``)."""
    if profile is None or isinstance(profile, dict):
        return profile
    return load_profile(profile)


def _mean_service_s(spec: ImageSpec, profile: dict[str, Any] | None) -> float:
    """Mean generation + queue seconds for one call (unscaled)."""
    level = spec.thinking_level or "low"
    if profile:
        lat = profile.get("latency", {})
        model = profile.get("models", {}).get(spec.model, {})
        level = spec.thinking_level or model.get("default_level", "low")
        level = model.get("level_cells", {}).get(level, level)
        cell = lat.get("cells", {}).get(spec.resolution, {}).get(level)
        if cell is not None:
            if lat.get("zero"):
                return 0.0
            mean = (
                cell["mean_s"]
                * model.get("speed", 1.0)
                * lat.get("grid_factor", _DEFAULT_GRID_FACTOR).get(spec.grid, 1.0)
            )
            return mean + lat.get("queue", {}).get("mean_s", 0.0)
    table = _DEFAULT_MEAN_S[spec.resolution]
    return table.get(level, table["low"]) * _DEFAULT_GRID_FACTOR.get(spec.grid, 1.0)


# Thought tokens billed per call when no profile says otherwise (text-output price). The
# service documents none; these midpoints match the emulator's default profile.
_DEFAULT_THOUGHT_TOKENS: dict[str, float] = {"minimal": 100.0, "low": 190.0, "medium": 600.0, "high": 1700.0}


def expected_cost(provider: str, spec: ImageSpec, *, prompt: str = "", profile: dict[str, Any] | None = None) -> float:
    """Expected price of one successful call.

    Per-call prices (relays) come straight from ``pricing.estimate_cost``. Token-priced
    models add what the image price leaves out: the prompt (about 4 characters a token)
    and the expected thought tokens (from the emulator profile, else a default table).
    """
    from ..providers import pricing

    base = float(pricing.estimate_cost(provider, spec.model, spec))
    try:
        row = pricing.price_row(provider, spec.model)
    except Exception:  # noqa: BLE001 - no token prices: the table price is all we know
        return base
    if "per_call_usd" in row or "image_output_per_mtok_usd" not in row:
        return base
    level = spec.thinking_level
    model_info = (profile or {}).get("models", {}).get(spec.model, {})
    level = level or model_info.get("default_level") or "low"
    span = (profile or {}).get("thoughts", {}).get("tokens", {}).get(level)
    thoughts = (span[0] + span[1]) / 2.0 if span else _DEFAULT_THOUGHT_TOKENS.get(level, _DEFAULT_THOUGHT_TOKENS["low"])
    prompt_tokens = max(1, -(-len(prompt) // 4)) if prompt else 0
    usd = (
        prompt_tokens * row.get("input_per_mtok_usd", 0.0)
        + spec.output_tokens * row["image_output_per_mtok_usd"]
        + thoughts * row.get("text_output_per_mtok_usd", 0.0)
    ) / 1e6
    return round(usd, 6)


def parse_references(value: Any) -> tuple[int, int]:
    """``"3x1024"`` or ``(3, 1024)`` -> ``(3, 1024)``: count of reference images and their side in px.

    >>> parse_references("3x1024"), parse_references((0, 0))
    ((3, 1024), (0, 0))
    """
    try:
        if isinstance(value, str):
            count, side = (int(v) for v in value.lower().split("x"))
        else:
            given = [int(v) if isinstance(v, int) and not isinstance(v, bool) else None for v in value]
            if len(given) != 2 or given[0] is None or given[1] is None:
                raise TypeError(value)
            count, side = given[0], given[1]
    except (ValueError, TypeError, AssertionError):
        raise ConfigError(
            f"reference_images contains {value!r}; use 'COUNTxSIDE' such as '3x1024' "
            "(count 0-14, side 64-4096 px) or '0x0' for none"
        ) from None
    if not (0 <= count <= 14 and (count == 0 or 64 <= side <= 4096)):
        raise ConfigError(f"reference_images contains {value!r}; use a count of 0-14 and a side of 64-4096 px")
    return count, side if count else 0


def item_expected_cost(provider: str, item: PlanItem, *, profile: dict[str, Any] | None = None) -> float:
    """Expected price of one plan item: every turn, plus 560 input tokens per reference image."""
    from ..providers import pricing

    one = expected_cost(provider, item.spec, prompt=item.prompt, profile=profile)
    try:
        per_token = pricing.price_row(provider, item.spec.model).get("input_per_mtok_usd", 0.0) / 1e6
    except Exception:  # noqa: BLE001 - no token prices: the call price is all we know
        per_token = 0.0
    # Turn t replays the t - 1 images the model returned, billed as input images too.
    images = item.references[0] * item.edit_turns + item.edit_turns * (item.edit_turns - 1) // 2
    return round(one * item.edit_turns + images * 560 * per_token, 6)


def check_spend_cap(preflight: Preflight, spend_cap_usd: float, *, already_spent_usd: float = 0.0) -> None:
    """Refuse a plan whose estimate (plus what a resumed run already spent) passes the cap.

    >>> check_spend_cap(Plan(prompts=["x"], repetitions=100).preflight(), 2.0)
    Traceback (most recent call last):
    ...
    nbp_kit.errors.SpendCapExceeded: the plan's estimated cost $13.67 (100 requests) is above spend_cap_usd=2.0; ...
    """
    check_cap_value(spend_cap_usd, preflight.cost_per_request_usd)
    total = preflight.est_cost_usd + already_spent_usd
    if total > spend_cap_usd + 1e-9:
        spent = f" plus ${already_spent_usd:.2f} already spent" if already_spent_usd else ""
        raise SpendCapExceeded(
            f"the plan's estimated cost ${preflight.est_cost_usd:.2f} ({preflight.requests} requests){spent} "
            f"is above spend_cap_usd={spend_cap_usd!r}; raise it with spend_cap_usd={_round_up(total)} "
            f"(command line: --spend-cap {_round_up(total)}) or shrink the plan"
        )


def check_cap_value(spend_cap_usd: Any, one_request_usd: float) -> None:
    """A cap must be a number at least one request's price."""
    if isinstance(spend_cap_usd, bool) or not isinstance(spend_cap_usd, (int, float)) or spend_cap_usd != spend_cap_usd:
        raise ConfigError(f"spend_cap_usd={spend_cap_usd!r} is not accepted; use a number of US dollars")
    if spend_cap_usd < one_request_usd:
        raise ConfigError(
            f"spend_cap_usd={spend_cap_usd!r} is below the price of one request (${one_request_usd:.3f}); "
            f"use at least {one_request_usd:.3f}"
        )


def _round_up(usd: float) -> float:
    import math

    return math.ceil(round(usd * 100, 6)) / 100
