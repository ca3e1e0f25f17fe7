"""Editing advice from attempts: upload rate, downscaling savings, Files API break-even."""

from __future__ import annotations

import pandas as pd
import pytest

from nbp_kit.analysis.editing import editing_advice, editing_breakdown
from nbp_kit.errors import ConfigError


def _frame(mbps: float = 8.0, side: int = 2048, count: int = 4, bpp: float = 1.5, n: int = 5) -> pd.DataFrame:
    input_bytes = count * side * side * bpp
    bytes_up = input_bytes * 4 / 3 + 500
    rows = [
        {
            "status": "ok",
            "input_images": count,
            "input_pixels": count * side * side,
            "input_bytes": input_bytes,
            "bytes_up": bytes_up,
            "send_s": bytes_up * 8 / (mbps * 1e6),
            "wait_s": 20.0 + i,
            "total_s": 20.0 + i + bytes_up * 8 / (mbps * 1e6),
            "connect_s": 0.15,
        }
        for i in range(n)
    ]
    rows.append(
        {
            "status": "ok",
            "input_images": 0,
            "input_pixels": None,
            "input_bytes": None,
            "bytes_up": 400,
            "send_s": 0.0001,
            "wait_s": 18.0,
            "total_s": 18.1,
            "connect_s": 0.15,
        }
    )
    return pd.DataFrame(rows)


def test_advice_recovers_the_upload_rate_and_the_savings() -> None:
    advice = editing_advice(_frame(), downscale_to_px=1024)
    assert advice.upload_mbps == pytest.approx(8.0, rel=0.01)
    assert advice.bytes_per_pixel == pytest.approx(1.5)
    inline_s = 4 * 2048 * 2048 * 1.5 * 4 / 3 * 8 / 8e6
    assert advice.downscale_saves_s == pytest.approx(inline_s * 0.75, rel=0.01)
    assert advice.files_api_break_even_uses == 0  # raw bytes once beat base64 even for one use here
    assert "1024 px" in advice.sentences[0] and "Files API" in advice.sentences[1]


def test_break_even_grows_with_round_trips() -> None:
    small = _frame(side=512, count=2)
    assert editing_advice(small, rtt_s=2.0).files_api_break_even_uses >= 2


def test_breakdown_splits_upload_and_wait() -> None:
    table = editing_breakdown(_frame())
    assert table[["ref_count", "ref_side_px", "n"]].values.tolist() == [[4, 2050.0, 5]]
    assert table["upload_s"].iloc[0] == pytest.approx(4 * 2048 * 2048 * 1.5 * 4 / 3 * 8 / 8e6, rel=0.01)
    assert table["wait_s"].iloc[0] == 22.0


def test_advice_without_uploads_says_what_to_measure() -> None:
    advice = editing_advice(_frame().iloc[-1:])
    assert advice.upload_mbps is None and "reference_images" in advice.sentences[0]


def test_advice_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="downscale_to_px"):
        editing_advice(_frame(), downscale_to_px=10)
    with pytest.raises(ConfigError, match="df"):
        editing_advice([1, 2])


def test_upload_rate_ignores_the_buffered_head_of_each_upload() -> None:
    # every upload finishes 0.5 MB early (socket buffers): the ratio overstates the link, the slope does not
    sizes = [400_000.0, 1_500_000.0, 3_400_000.0, 13_000_000.0]
    rows = [
        {
            "status": "ok",
            "input_images": 2,
            "input_pixels": 2 * 1000 * 1000,
            "input_bytes": b * 0.75,
            "bytes_up": b,
            "send_s": max(0.001, (b - 500_000) * 8 / 8e6),
            "wait_s": 1.0,
            "total_s": 2.0,
        }
        for b in sizes
    ]
    advice = editing_advice(pd.DataFrame(rows))
    assert advice.upload_mbps == pytest.approx(8.0, rel=0.1)
