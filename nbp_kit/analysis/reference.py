"""The seed article's published figures, as a tidy frame to compare runs against."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._paths import REFERENCE_DIR
from ..errors import ConfigError


def load_reference(path: str | Path | None = None) -> pd.DataFrame:
    """The seed article's published figures (``data/reference/seed_measurements.csv``).

    >>> sorted(load_reference()["table"].unique())[:2]
    ['grid', 'latency']
    """
    path = Path(path) if path is not None else REFERENCE_DIR / "seed_measurements.csv"
    if not path.exists():
        raise ConfigError(
            f"reference={str(path)!r} does not exist; use a CSV like data/reference/seed_measurements.csv"
        )
    return pd.read_csv(path, comment="#", dtype={"resolution": "string", "thinking_level": "string"})
