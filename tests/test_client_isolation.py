"""A sweep never changes a client it is given; the sync Client forwards setting writes."""

from __future__ import annotations

import asyncio

import pytest

from nbp_kit import AsyncClient, Client, ImageSpec, Timeouts
from nbp_kit.runs.plan import Plan
from nbp_kit.runs.runner import run_sweep
from nbp_kit.runs.store import RunStore

PLAN = Plan(prompts=["isolation"], resolutions=["1K"], repetitions=2, seed=0)


def _hooks(client):
    target = getattr(client, "aio", client)
    return (target.sink, target.pacer, target.retry_budget, target.output_dir)


def test_sweep_leaves_a_sync_client_unchanged(emulator, tmp_path) -> None:
    store = RunStore(tmp_path / "s.sqlite")
    with Client.for_emulator(emulator, output_dir=tmp_path / "mine") as client:
        before = _hooks(client)
        res = run_sweep(PLAN, client, store=store, concurrency=2, progress=False, output_dir=tmp_path / "sweep")
        assert res.ok == 2
        assert _hooks(client) == before
        n = len(store.attempts())
        client.generate("ad hoc afterwards", ImageSpec(resolution="1K"), save=False)  # not the sweep's
    assert len(store.attempts()) == n == 2


def test_sweep_leaves_an_async_client_unchanged(emulator, tmp_path) -> None:
    store = RunStore(tmp_path / "s.sqlite")

    async def main() -> tuple[tuple, tuple]:
        async with AsyncClient.for_emulator(emulator, output_dir=tmp_path / "mine") as client:
            before = _hooks(client)
            # run_sweep is sync: it runs its loop in its own thread, as from a notebook
            res = await asyncio.to_thread(
                run_sweep, PLAN, client, store=store, concurrency=2, progress=False, output_dir=tmp_path / "sweep"
            )
            assert res.ok == 2
            return before, _hooks(client)

    before, after = asyncio.run(main())
    assert before == after and after[0] is None


def test_sync_client_forwards_setting_writes(emulator, tmp_path) -> None:
    with Client.for_emulator(emulator, output_dir=tmp_path) as client:
        client.timeouts = Timeouts(connect_s=1)
        assert client.aio.timeouts.connect_s == 1 and client.timeouts.connect_s == 1
        client.output_dir = tmp_path / "elsewhere"
        assert client.aio.output_dir == tmp_path / "elsewhere"
        with pytest.raises(AttributeError, match="base_url"):
            client.base_url = "http://elsewhere"
        with pytest.raises(Exception, match="timeouts="):
            client.timeouts = 5
        assert client.generate("after the write", ImageSpec(resolution="1K"), save=False).ok


class _ThreadNoting(RunStore):
    def __init__(self, path) -> None:
        super().__init__(path)
        self.threads: dict[str, set[str]] = {"started": set(), "finished": set()}

    def attempt_started(self, attempt) -> None:
        import threading

        self.threads["started"].add(threading.current_thread().name)
        super().attempt_started(attempt)

    def attempt_finished(self, attempt) -> None:
        import threading

        self.threads["finished"].add(threading.current_thread().name)
        super().attempt_finished(attempt)


def test_sweep_commits_finished_attempts_off_the_timing_loop(emulator, tmp_path) -> None:
    store = _ThreadNoting(tmp_path / "s.sqlite")
    res = run_sweep(PLAN, emulator, store=store, concurrency=2, progress=False, output_dir=tmp_path / "sweep")
    assert res.ok == 2
    assert store.threads["finished"] == {"nbp_kit-store-writer"}
    assert "nbp_kit-store-writer" not in store.threads["started"]  # committed before the request goes out
    rows = store.attempts()
    assert len(rows) == 2 and set(rows["status"]) == {"ok"}  # every queued write landed before the result
