"""Latency profiles: the shipped JSON files in ``data/profiles`` that describe a service's timing.

The emulator serves from a profile; plans read the same file to estimate time before a sweep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._paths import PROFILES_DIR
from .errors import ConfigError


def profile_names() -> tuple[str, ...]:
    """Names of the shipped latency profiles (files in ``data/profiles`` other than networks)."""
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.json") if p.stem != "networks"))


def load_profile(profile: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A profile by name, path or dict. Unknown names raise :class:`ConfigError`.

    >>> load_profile("instant")["name"]
    'instant'
    """
    if isinstance(profile, dict):
        data = profile
    else:
        path = Path(profile)
        if not path.suffix:
            path = PROFILES_DIR / f"{profile}.json"
        if not path.is_file() or path.stem == "networks":
            raise ConfigError(
                f"profile={str(profile)!r} is not accepted; use one of "
                f"{', '.join(repr(n) for n in profile_names())} or a path to a profile JSON file"
            )
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"profile={str(profile)!r} is not valid JSON: {exc}") from exc
    for key in ("latency", "models"):
        if key not in data:
            raise ConfigError(f"profile={data.get('name', profile)!r} lacks the {key!r} section")
    return data
