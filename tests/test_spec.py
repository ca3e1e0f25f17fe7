"""ImageSpec: the official table, and every bad value refused with a clear message."""

from __future__ import annotations

import pytest

from nbp_kit import ASPECT_RATIOS, ConfigError, ImageSpec, load_presets, preset


def test_pixel_table_and_tokens() -> None:
    assert ImageSpec().pixel_size == (1024, 1024)
    assert ImageSpec(resolution="4K", aspect_ratio="21:9").pixel_size == (6336, 2688)
    assert ImageSpec(resolution="2K").output_tokens == 1120 and ImageSpec(resolution="4K").output_tokens == 2000
    assert len(ASPECT_RATIOS) == 10
    assert ImageSpec(grid="3x3").tiles == 9


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"resolution": "3K"}, ["resolution='3K'", "'1K', '2K', '4K'"]),
        ({"resolution": "2k"}, ["resolution='2k'", "uppercase"]),
        ({"aspect_ratio": "1:2"}, ["aspect_ratio='1:2'", "'16:9'"]),
        ({"thinking_level": "max"}, ["thinking_level='max'", "'low'"]),
        ({"grid": "4x4"}, ["grid='4x4'", "'2x2'"]),
        ({"model": ""}, ["model=''"]),
        ({"output_format": "png"}, ["output_format='png'", "'b64_json'"]),
        ({"include_thoughts": "yes"}, ["include_thoughts='yes'", "True or False"]),
    ],
)
def test_bad_values(kwargs: dict, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        ImageSpec(**kwargs)
    for needle in needles:
        assert needle in str(info.value)


def test_presets() -> None:
    presets = load_presets()
    assert set(presets) == {"preview", "web", "social", "print", "batch"}
    assert preset("web", aspect_ratio="1:1").aspect_ratio == "1:1"
    with pytest.raises(ConfigError, match="preset='nope'"):
        preset("nope")
