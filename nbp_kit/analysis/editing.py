"""Editing latency from measurements: what reference images cost in upload and in model time.

:func:`editing_breakdown` splits the attempts that carried reference images by reference set
(count x side) into upload (``send_s``), model and network wait (``wait_s``) and the rest;
:func:`editing_advice` turns the measured upload rate into two pieces of advice:

* downscaling references to ``N`` px saves ``X`` s of upload per request at *your* bandwidth;
* uploading a reference once through the Files API pays off when it is reused more than
  ``k`` times (an inline request re-sends it as base64 every time).

Both read only the attempts frame (:meth:`nbp_kit.RunStore.attempts`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .frames import is_ok, require_frame
from .frames import num as _num

_MIN_UPLOAD_BYTES = 256 * 1024  # smaller bodies fit in socket buffers: their send_s says nothing of the link


def num(df: pd.DataFrame, column: str) -> pd.Series:
    return pd.Series(_num(df, column), index=df.index)


def _with_references(df: pd.DataFrame) -> pd.DataFrame:
    require_frame(df, ["status", "input_images", "input_bytes", "input_pixels", "bytes_up", "send_s"])
    out = df[is_ok(df) & (num(df, "input_images").fillna(0) > 0).to_numpy()].copy()
    out["ref_count"] = num(out, "input_images").astype(int)
    per_image = num(out, "input_pixels") / out["ref_count"]
    out["ref_side_px"] = np.sqrt(per_image).round(-1)  # nearest 10 px: one label per size
    return out


def editing_breakdown(df: pd.DataFrame) -> pd.DataFrame:
    """Median seconds per reference set: upload (send), wait (model and network), total.

    One row per (``ref_count``, ``ref_side_px``) with ``n``, ``input_mb``, ``upload_s``,
    ``wait_s``, ``total_s`` and ``upload_share`` (upload / total).
    """
    refs = _with_references(df)
    cols = ["ref_count", "ref_side_px", "n", "input_mb", "upload_s", "wait_s", "total_s", "upload_share"]
    if refs.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (count, side), g in refs.groupby(["ref_count", "ref_side_px"]):
        upload, wait, total = (float(num(g, c).median()) for c in ("send_s", "wait_s", "total_s"))
        rows.append(
            {
                "ref_count": int(count),
                "ref_side_px": float(side),
                "n": len(g),
                "input_mb": float(num(g, "input_bytes").median()) / 1e6,
                "upload_s": upload,
                "wait_s": wait,
                "total_s": total,
                "upload_share": upload / total if total else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=cols).sort_values(["ref_count", "ref_side_px"], ignore_index=True)


def _upload_mbps(bytes_up: np.ndarray, send_s: np.ndarray) -> float | None:
    """Upload rate from (request bytes, send seconds). With several sizes, the slope of a line
    fitted through them: socket buffers take a fixed amount of every upload ahead of the link,
    which shifts the line but not its slope. With one size, the median ratio."""
    keep = np.isfinite(bytes_up) & np.isfinite(send_s) & (send_s > 0)
    x, y = bytes_up[keep], send_s[keep]
    if len(x) == 0:
        return None
    if len(x) >= 2 and x.max() >= 1.5 * x.min():
        slope = float(np.polyfit(x, y, 1)[0])
        return 8 / slope / 1e6 if slope > 0 else None
    return float(np.median(x * 8 / y / 1e6))


@dataclasses.dataclass(frozen=True, slots=True)
class EditingAdvice:
    """Advice for reference images, from measured uploads (``None`` where the data says nothing)."""

    upload_mbps: float | None  # measured upload rate (request bytes against send_s)
    bytes_per_pixel: float | None  # of the references sent (their encoding and content)
    typical_refs: int | None  # median reference count per request
    typical_side_px: float | None  # median reference side
    downscale_to_px: int
    downscale_saves_s: float | None  # upload seconds saved per request by downscaling
    files_api_break_even_uses: int | None  # Files API wins when a reference set is used more than this
    sentences: tuple[str, ...]


def editing_advice(df: pd.DataFrame, *, downscale_to_px: int = 1024, rtt_s: float | None = None) -> EditingAdvice:
    """Downscaling and Files API advice from measured reference uploads.

    ``rtt_s`` is the round trip the Files API's two extra requests cost (start and finish a
    resumable upload); by default the median measured ``connect_s`` (one round trip).
    """
    if isinstance(downscale_to_px, bool) or not isinstance(downscale_to_px, int) or downscale_to_px < 64:
        raise ConfigError(f"downscale_to_px={downscale_to_px!r} is not accepted; use whole pixels >= 64")
    refs = _with_references(df)
    big = refs[num(refs, "bytes_up") >= _MIN_UPLOAD_BYTES]
    mbps_or_none = _upload_mbps(num(big, "bytes_up").to_numpy(), num(big, "send_s").to_numpy())
    if mbps_or_none is None:
        msg = (
            "no measured uploads of reference images of at least 256 KB: run a sweep with "
            "reference_images (e.g. ['4x1024']) to measure your upload"
        )
        return EditingAdvice(None, None, None, None, downscale_to_px, None, None, (msg,))
    mbps = mbps_or_none
    bpp = float((num(refs, "input_bytes") / num(refs, "input_pixels")).median())
    count = int(refs["ref_count"].median())
    side = float(refs["ref_side_px"].median())
    if rtt_s is None:
        connect = num(df, "connect_s").dropna() if "connect_s" in df.columns else pd.Series(dtype=float)
        rtt_s = float(connect.median()) if not connect.empty else 0.0
    b64 = 4 / 3
    inline_s = count * side * side * bpp * b64 * 8 / (mbps * 1e6)  # one request's reference upload
    sentences = []
    saves = None
    if side > downscale_to_px:
        kept = (downscale_to_px / side) ** 2
        saves = inline_s * (1 - kept)
        sentences.append(
            f"Downscaling references to {downscale_to_px} px (from about {side:.0f} px) saves "
            f"{saves:.2f} s of upload per request with {count} references at your measured "
            f"{mbps:.1f} Mbps upload."
        )
    else:
        sentences.append(
            f"Your references (about {side:.0f} px) are already at or below {downscale_to_px} px: "
            "downscaling further saves little upload."
        )
    once_s = inline_s / b64 + 2 * rtt_s  # raw bytes, once, plus the upload's two extra round trips
    k = math.floor(once_s / inline_s) if inline_s > 0 else None
    if k is not None:
        sentences.append(
            f"Upload a reference set once through the Files API when it is used more than {k} "
            f"time{'s' if k != 1 else ''}: inline, each request re-sends it as base64 "
            f"({inline_s:.2f} s at {mbps:.1f} Mbps); once through the Files API costs about "
            f"{once_s:.2f} s (raw bytes and two more round trips)."
        )
    return EditingAdvice(mbps, bpp, count, side, downscale_to_px, saves, k, tuple(sentences))


__all__ = ["EditingAdvice", "editing_advice", "editing_breakdown"]
