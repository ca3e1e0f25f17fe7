"""Shared fixtures: the embedded emulator (see docs/design.md, "Emulator")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbp_kit import emulator as _emulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[_emulator.Emulator]:
    """One emulator for the whole session: loopback, time_scale 0.02, no random faults or quotas."""
    emu = _emulator.start(profile="default", time_scale=0.02, faults=False, quotas=False)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., _emulator.Emulator]]:
    """Start custom emulators (``emulator_factory(profile=..., network=..., ...)``); all are
    stopped at teardown. Defaults: time_scale 0.02, faults and quotas off."""
    started: list[_emulator.Emulator] = []

    def make(profile: str | dict[str, Any] = "default", **kw: Any) -> _emulator.Emulator:
        kw.setdefault("time_scale", 0.02)
        kw.setdefault("faults", False)
        kw.setdefault("quotas", False)
        emu = _emulator.start(profile, **kw)
        started.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in started:
            emu.stop()
