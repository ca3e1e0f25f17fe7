"""Uploads are timed: on the 8 Mbps network profile a 10 MB reference set is in ``send_s``.

The emulator reads request bodies at the profile's bandwidth (its listening socket keeps a small
receive buffer), and ``Client(send_buffer_bytes=...)`` keeps the client's kernel from buffering
megabytes of the upload; ``send_s`` is then the upload as the link carried it. One request,
about 18 s of wall time (bandwidth is physical: ``time_scale`` does not shrink it).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from nbp_kit import Client, ImageSpec
from nbp_kit.records import PHASES


def _noise_png(side: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def test_upload_of_10_mb_of_references_is_send_s_at_8_mbps(emulator_factory, tmp_path: Path) -> None:
    refs = [_noise_png(912, seed) for seed in range(4)]  # ~2.5 MB each, incompressible
    assert 9.5e6 < sum(map(len, refs)) < 10.5e6
    emu = emulator_factory("instant", time_scale=0.01, network="cross-border-8mbps")
    with Client.for_emulator(emu, output_dir=tmp_path, send_buffer_bytes=64 * 1024) as client:
        gen = client.generate("place these products on one shelf", ImageSpec(resolution="1K"), images=refs)
    a = gen.attempts[-1]
    assert gen.ok and a.input_images == 4 and a.input_bytes == sum(map(len, refs))
    upload_s = a.bytes_up * 8 / 8e6  # the request body (base64 images) at 8 Mbps
    assert abs(a.send_s - upload_s) <= 0.10 * upload_s, (a.send_s, upload_s)
    phases = sum(getattr(a, f"{p}_s") or 0.0 for p in PHASES)
    assert abs(phases - a.total_s) <= 0.01 * a.total_s + 0.005, (phases, a.total_s)


def test_send_buffer_setting_is_checked() -> None:
    import pytest

    from nbp_kit.errors import ConfigError

    with pytest.raises(ConfigError, match="send_buffer_bytes"):
        Client(api_key="k", base_url="http://127.0.0.1:9", send_buffer_bytes=10)
