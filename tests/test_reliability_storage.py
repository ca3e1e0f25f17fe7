"""Storage faults on real file systems: a full disk, a read-only folder, a full images folder.

The tests run as root, so ``chmod`` stops nothing. What does stop root:
- a small ``tmpfs`` mounted for the test (a real ``ENOSPC`` when full, and ``remount,ro`` for a
  read-only file system: ``EROFS``);
- ``chattr +i`` on a folder (immutable: no new file, not even for root).
Where the sandbox cannot mount, the tests fall back to what any user can do (a folder whose
parent is a regular file) and say so in their assertion messages; the SQLite-level
``max_page_count`` simulation lives in test_store.py.

Each case must fail with a clear error (``StoreError`` for the run store; an attempt recorded
with kind ``save_failed`` for images) and leave a database that passes
``PRAGMA integrity_check`` with every committed row intact.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbp_kit import ImageSpec, Plan, RunStore, run_sweep
from nbp_kit import emulator as emulator_mod
from nbp_kit.errors import StoreError
from nbp_kit.records import Attempt


def _attempt(i: int, run_id: str, **kw: object) -> Attempt:
    base: dict = dict(
        attempt_id=f"a{i}",
        call_id=f"c{i}",
        attempt_no=1,
        run_id=run_id,
        request_key=f"k{i}",
        resolution="1K",
        aspect_ratio="1:1",
        prompt="a cat",
        sent_at=100.0 + i,
        scheduled_at=100.0 + i,
        status="ok",
    )
    base.update(kw)
    return Attempt(**base)


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@contextlib.contextmanager
def _tmpfs(tmp_path: Path, size_kb: int) -> Iterator[Path | None]:
    """A fresh tmpfs of ``size_kb`` at a temp folder, or None where mounting is not allowed."""
    mnt = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if done.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def _fill(folder: Path) -> Path:
    """Fill the file system holding ``folder`` until ENOSPC; returns the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
    return filler


@contextlib.contextmanager
def _immutable(folder: Path) -> Iterator[bool]:
    ok = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["chattr", "-i", str(folder)], check=True)


# ------------------------------------------------------------------------------ the run store
def test_store_on_a_full_disk_fails_clearly_and_keeps_committed_rows(tmp_path: Path) -> None:
    with _tmpfs(tmp_path, 2048) as mnt:
        if mnt is None:  # no mount: the max_page_count simulation in test_store.py covers this
            root, full_disk = tmp_path, False
        else:
            root, full_disk = mnt, True
        path = root / "runs" / "s.sqlite"
        store = RunStore(path)
        rid = store.create_run(plan={}, provider="gemini")
        for i in range(20):
            store.attempt_finished(_attempt(i, rid))
        if full_disk:
            filler = _fill(root)
        else:
            pages = store._read("PRAGMA page_count")[0]["page_count"]
            store._conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(StoreError) as info:
            for i in range(20, 5000):  # rows with big messages, until the disk is full
                store.attempt_finished(
                    _attempt(i, rid, status="error", error_kind="server_error", error_message="x" * 4000)
                )
        message = str(info.value)
        assert "could not be written" in message and "disk has room" in message, message
        assert "full" in message.lower() or not full_disk, message  # SQLite's own "database or disk is full"
        # a new store on the full disk fails at open, with the path named
        if full_disk:
            with pytest.raises(StoreError, match="cannot be opened for writing"):
                RunStore(root / "other" / "s.sqlite")
        store.close()
        if full_disk:
            filler.unlink()
        assert _integrity(path) == "ok"
        again = RunStore(path)
        ids = set(again.attempts()["attempt_id"])
        assert {f"a{i}" for i in range(20)} <= ids
        again.attempt_finished(_attempt(9999, rid))  # writable again once there is room
        again.close()
        assert _integrity(path) == "ok"


def test_store_on_a_read_only_file_system_fails_clearly(tmp_path: Path) -> None:
    with _tmpfs(tmp_path, 4096) as mnt:
        if mnt is None:
            blocker = tmp_path / "file"
            blocker.write_text("x")
            with pytest.raises(StoreError, match="cannot be opened for writing"):
                RunStore(blocker / "s.sqlite")
            return
        path = mnt / "s.sqlite"
        store = RunStore(path)
        rid = store.create_run(plan={}, provider="gemini")
        store.attempt_finished(_attempt(1, rid))
        store.close()
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode == 0
        with pytest.raises(StoreError) as info:
            RunStore(path)
        assert str(path) in str(info.value) and "cannot be opened for writing" in str(info.value)
        with pytest.raises(StoreError):
            RunStore(mnt / "new" / "s.sqlite")
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        assert _integrity(path) == "ok"
        assert set(RunStore(path).attempts()["attempt_id"]) == {"a1"}


def test_store_in_an_immutable_folder_fails_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "s.sqlite"
    store = RunStore(path)
    rid = store.create_run(plan={}, provider="gemini")
    store.attempt_finished(_attempt(1, rid))
    store.close()  # the last close removes -wal and -shm, so reopening must create them
    with _immutable(folder) as locked:
        if locked:
            with pytest.raises(StoreError, match="cannot be opened for writing"):
                RunStore(path)
            with pytest.raises(StoreError, match="cannot be opened for writing"):
                RunStore(folder / "fresh.sqlite")
        else:  # file systems without attributes: a folder under a regular file
            (tmp_path / "plain").write_text("x")
            with pytest.raises(StoreError, match="cannot be opened for writing"):
                RunStore(tmp_path / "plain" / "s.sqlite")
    assert _integrity(path) == "ok"
    assert set(RunStore(path).attempts()["attempt_id"]) == {"a1"}


# ------------------------------------------------------------------------------ the images folder
@pytest.fixture(scope="module")
def emu():
    with emulator_mod.start("instant", time_scale=0.005, faults=False, quotas=False) as e:
        yield e


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_images_folder_full_or_read_only_is_a_recorded_failure(emu, tmp_path: Path, how: str) -> None:
    store_path = tmp_path / "store" / "s.sqlite"
    store = RunStore(store_path)
    plan = Plan(prompts=["disk"], resolutions=["1K"], repetitions=4, seed=1)
    with _tmpfs(tmp_path, 512) as mnt:
        if mnt is not None and how == "full":
            _fill(mnt)
            images, expect = mnt / "images", "No space left on device"
        elif mnt is not None:
            (mnt / "images").mkdir()
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            images, expect = mnt / "images", "Read-only file system"
        else:  # no mount: an images folder whose parent is a regular file
            (tmp_path / "plain").write_text("x")
            images, expect = tmp_path / "plain" / "images", "Not a directory"
        result = run_sweep(
            plan,
            emu,
            store=store,
            output_dir=images,
            spend_cap_usd=5,
            concurrency=2,
            progress=False,
            max_error_rate=1.0,
        )
        leftovers = [p for p in (images.rglob("*") if images.is_dir() else []) if p.is_file()]
    rows = store.attempts()
    assert len(rows) == 4 and result.ok == 0, rows[["status", "error_kind"]]
    assert set(rows["status"]) == {"error"} and set(rows["error_kind"]) == {"save_failed"}
    assert all(expect in m for m in rows["error_message"]), rows["error_message"].tolist()
    assert not leftovers, leftovers  # no half-written or temp image file
    assert (rows["cost_usd"] > 0).all()  # generated, so billed: the cost is kept, not lost
    store.close()
    assert _integrity(store_path) == "ok"


def test_save_failed_is_not_retried_and_names_the_folder(emu, tmp_path: Path) -> None:
    from nbp_kit import Client

    (tmp_path / "plain").write_text("x")
    target = tmp_path / "plain" / "out"
    with Client.for_emulator(emu, output_dir=target) as client:
        gen = client.generate("disk", ImageSpec(resolution="1K"), raise_on_error=False)
    assert not gen.ok and len(gen.attempts) == 1  # retrying would pay for the image again
    assert gen.error is not None and gen.error.kind == "save_failed" and not gen.error.retryable
    assert str(target) in str(gen.error)
