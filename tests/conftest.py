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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A throw-away PostgreSQL cluster for the session (see tests/_postgres.py); skips with the reason when it cannot start."""
    from _postgres import cluster_or_reason

    for cluster in cluster_or_reason():
        if isinstance(cluster, str):
            pytest.skip(f"PostgreSQL cluster unavailable: {cluster}")
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """A fresh, empty PostgreSQL database on the session's cluster (its postgresql:// URL)."""
    return str(pg_cluster.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The store suite runs on both backends: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "s.sqlite")
    return str(request.getfixturevalue("pg_url"))
