"""What to generate: :class:`ImageSpec`, validated before any request is sent.

The pixel table is Gemini 3 Pro Image's official one (``data/reference/PROVENANCE.md``).
Every invalid value raises :class:`~nbp_kit.errors.ConfigError` naming the argument, the
value and what is accepted::

    >>> ImageSpec(resolution="2K", aspect_ratio="16:9").pixel_size
    (2752, 1536)
    >>> ImageSpec(resolution="3K")
    Traceback (most recent call last):
    ...
    nbp_kit.errors.ConfigError: resolution='3K' is not accepted; use one of '1K', '2K', '4K'
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ._paths import DATA_DIR
from .errors import ConfigError

DEFAULT_MODEL = "gemini-3-pro-image"  # GA id; "gemini-3-pro-image-preview" is still accepted (retired on Vertex AI)
MODELS: tuple[str, ...] = (
    "gemini-3-pro-image",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
)
RESOLUTIONS: tuple[str, ...] = ("1K", "2K", "4K")
THINKING_LEVELS: tuple[str, ...] = ("minimal", "low", "medium", "high")
GRIDS: tuple[str, ...] = ("1x1", "2x2", "3x3")
OUTPUT_FORMATS: tuple[str, ...] = ("b64_json", "url")

#: Official output pixels (width, height) per aspect ratio and resolution.
PIXEL_TABLE: dict[str, dict[str, tuple[int, int]]] = {
    "1:1": {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    "2:3": {"1K": (848, 1264), "2K": (1696, 2528), "4K": (3392, 5056)},
    "3:2": {"1K": (1264, 848), "2K": (2528, 1696), "4K": (5056, 3392)},
    "3:4": {"1K": (896, 1200), "2K": (1792, 2400), "4K": (3584, 4800)},
    "4:3": {"1K": (1200, 896), "2K": (2400, 1792), "4K": (4800, 3584)},
    "4:5": {"1K": (928, 1152), "2K": (1856, 2304), "4K": (3712, 4608)},
    "5:4": {"1K": (1152, 928), "2K": (2304, 1856), "4K": (4608, 3712)},
    "9:16": {"1K": (768, 1376), "2K": (1536, 2752), "4K": (3072, 5504)},
    "16:9": {"1K": (1376, 768), "2K": (2752, 1536), "4K": (5504, 3072)},
    "21:9": {"1K": (1584, 672), "2K": (3168, 1344), "4K": (6336, 2688)},
}
ASPECT_RATIOS: tuple[str, ...] = tuple(PIXEL_TABLE)

#: Output tokens billed for one image (Google's documentation).
IMAGE_OUTPUT_TOKENS: dict[str, int] = {"1K": 1120, "2K": 1120, "4K": 2000}
#: Tokens billed for one input image.
INPUT_IMAGE_TOKENS = 560


def _accepted(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def check_choice(argument: str, value: Any, accepted: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``accepted``."""
    if value not in accepted:
        raise ConfigError(f"{argument}={value!r} is not accepted; use one of {_accepted(accepted)}")


@dataclasses.dataclass(frozen=True, slots=True)
class ImageSpec:
    """One image request's settings.

    ``thinking_level=None`` sends no thinking knob (the documented default for Pro). Whether
    a provider accepts a level is checked by :mod:`nbp_kit.providers`, not here.

    >>> ImageSpec("1K", "1:1", grid="2x2").tiles
    4
    """

    resolution: str = "1K"
    aspect_ratio: str = "1:1"
    thinking_level: str | None = None
    grid: str = "1x1"
    model: str = DEFAULT_MODEL
    include_thoughts: bool = False
    text_and_image: bool = False
    output_format: str = "b64_json"

    def __post_init__(self) -> None:
        if (
            isinstance(self.resolution, str)
            and self.resolution.upper() in RESOLUTIONS
            and self.resolution not in RESOLUTIONS
        ):
            raise ConfigError(
                f"resolution={self.resolution!r} is not accepted (the API wants an uppercase K); "
                f"use one of {_accepted(RESOLUTIONS)}"
            )
        check_choice("resolution", self.resolution, RESOLUTIONS)
        check_choice("aspect_ratio", self.aspect_ratio, ASPECT_RATIOS)
        if self.thinking_level is not None:
            check_choice("thinking_level", self.thinking_level, THINKING_LEVELS)
        check_choice("grid", self.grid, GRIDS)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model={self.model!r} is not accepted; use a model id such as {DEFAULT_MODEL!r}")
        check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        for flag in ("include_thoughts", "text_and_image"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag}={getattr(self, flag)!r} is not accepted; use True or False")

    @property
    def pixel_size(self) -> tuple[int, int]:
        """(width, height) of the whole returned image, per the official table."""
        return PIXEL_TABLE[self.aspect_ratio][self.resolution]

    @property
    def output_tokens(self) -> int:
        """Image output tokens billed for one call (a grid is one image)."""
        return IMAGE_OUTPUT_TOKENS[self.resolution]

    @property
    def tiles(self) -> int:
        """Number of variants in the returned image (4 for a 2x2 grid)."""
        n = int(self.grid.split("x")[0])
        return n * n

    @property
    def config_label(self) -> str:
        """Short human label, e.g. ``2K 16:9 think=low grid=2x2``."""
        parts = [self.resolution, self.aspect_ratio, f"think={self.thinking_level or 'default'}"]
        if self.grid != "1x1":
            parts.append(f"grid={self.grid}")
        return " ".join(parts)

    def replace(self, **changes: Any) -> ImageSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_presets(path: str | Path | None = None) -> dict[str, ImageSpec]:
    """Use-case presets (preview, web, social, print, batch) as :class:`ImageSpec`.

    The defaults come from the seed article (``data/presets.json``); pass your own file
    to replace them with what your runs show.
    """
    path = Path(path) if path is not None else DATA_DIR / "presets.json"
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"presets path={str(path)!r} cannot be read as JSON: {exc}") from exc
    return {name: ImageSpec(**fields) for name, fields in raw.items() if not name.startswith("_")}


def preset(name: str, **changes: Any) -> ImageSpec:
    """One preset by name, optionally changed: ``preset("web", aspect_ratio="1:1")``."""
    presets = load_presets()
    check_choice("preset", name, tuple(presets))
    return presets[name].replace(**changes) if changes else presets[name]
