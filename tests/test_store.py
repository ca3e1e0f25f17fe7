from __future__ import annotations

import json
import sqlite3
import threading

import pandas as pd
import pytest

from nbp_kit.errors import ConfigError, StoreError
from nbp_kit.records import ATTEMPT_FIELDS, Attempt
from nbp_kit.runs.store import SCHEMA_VERSION, RunStore


def _attempt(i: int, run_id: str, **kw) -> Attempt:
    base = dict(
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
    )
    base.update(kw)
    return Attempt(**base)


def test_started_then_finished_is_one_row_with_final_values(tmp_path, store_url):
    store = RunStore(store_url)
    rid = store.create_run(plan={"prompts": ["x"]}, provider="gemini", base_host="127.0.0.1:9")
    a = _attempt(1, rid)
    store.attempt_started(a)
    frame = store.attempts(run_ids=[rid])
    assert list(frame["status"]) == ["started"]
    store.attempt_finished(
        a.replace(
            status="ok",
            cost_usd=0.134,
            connection_reused=True,
            bytes_down=1234,
            tile_paths=("t0.png", "t1.png"),
            total_s=2.5,
        )
    )
    frame = store.attempts(run_ids=rid)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["status"] == "ok" and row["cost_usd"] == pytest.approx(0.134)
    assert row["tile_paths"] == ["t0.png", "t1.png"]
    assert list(frame.columns) == [*ATTEMPT_FIELDS, "tags"]
    assert frame["bytes_down"].dtype == "Int64"
    assert frame["connection_reused"].dtype == "boolean"
    assert frame["total_s"].dtype == "float64"
    assert store.done_keys(rid) == {"k1"}
    assert store.run_cost_usd(rid) == pytest.approx(0.134)


def test_run_row_records_provenance_and_never_a_path_or_key(tmp_path, store_url):
    store = RunStore(store_url)
    rid = store.create_run(
        plan={"a": 1},
        provider="gemini",
        base_host="127.0.0.1:9",
        profile="default",
        time_scale=0.02,
        clock="scaled",
        tags=["x"],
    )
    run = store.get_run(rid)
    assert run["plan"] == {"a": 1} and run["time_scale"] == 0.02 and run["clock"] == "scaled"
    assert "python" in run["versions"] and run["tags"] == ["x"]
    assert run["git_commit"] is None or len(run["git_commit"]) == 40
    with pytest.raises(ConfigError, match="base_host"):
        store.create_run(plan={}, base_host="example.com/v1beta?key=SECRET")


def test_schema_is_versioned_and_reopening_keeps_data(tmp_path):
    path = tmp_path / "s.sqlite"
    with RunStore(path) as store:
        rid = store.create_run(plan={}, provider="gemini")
        store.attempt_finished(_attempt(1, rid, status="ok"))
    with RunStore(path) as again:
        assert again.schema_version == SCHEMA_VERSION
        assert len(again.attempts()) == 1
        mode = again._read("PRAGMA journal_mode")[0]["journal_mode"]
        assert mode == "wal"


def test_migrates_an_old_database(tmp_path):
    path = tmp_path / "old.sqlite"
    from nbp_kit.runs.schema import migration_sql

    conn = sqlite3.connect(path)
    conn.executescript(migration_sql(1, "sqlite") + "\nPRAGMA user_version=1;")
    conn.execute("INSERT INTO runs (run_id, created_at) VALUES ('old', 1.0)")
    conn.commit()
    conn.close()
    store = RunStore(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.get_run("old")["summary"] == {}


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(path)


def test_reader_sees_committed_rows_while_writer_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    writer = RunStore(path)
    rid = writer.create_run(plan={}, provider="gemini")
    reader = RunStore(path, read_only=True)
    seen = []
    started = threading.Event()

    def write():
        for i in range(50):
            writer.attempt_started(_attempt(i, rid))
            if i == 5:
                started.set()
            writer.attempt_finished(_attempt(i, rid, status="ok"))

    t = threading.Thread(target=write)
    t.start()
    started.wait(5)
    while t.is_alive():
        seen.append(len(reader.attempts(run_ids=[rid])))
    t.join()
    seen.append(len(reader.attempts(run_ids=[rid])))
    assert seen[-1] == 50
    assert seen == sorted(seen)  # a reader never sees rows disappear
    with pytest.raises(StoreError, match="read-only"):
        reader.tag_run(rid, "x")


def test_path_under_a_regular_file_is_a_clear_store_error(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot be opened for writing"):
        RunStore(blocker / "runs" / "s.sqlite")


def test_read_only_database_file_refuses_writes_without_corruption(tmp_path):
    path = tmp_path / "s.sqlite"
    RunStore(path).close()
    ro = RunStore(path, read_only=True)
    with pytest.raises(StoreError):
        ro.create_run(plan={}, provider="gemini")
    assert RunStore(path).runs().empty


def test_full_disk_raises_store_error_and_keeps_committed_rows(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    rid = store.create_run(plan={}, provider="gemini")
    store.attempt_finished(_attempt(0, rid, status="ok"))
    pages = store._read("PRAGMA page_count")[0]["page_count"]
    store._conn.execute(f"PRAGMA max_page_count={pages}")  # simulate a full disk
    with pytest.raises(StoreError, match="disk has room"):
        for i in range(1, 500):
            store.attempt_finished(_attempt(i, rid, status="ok", prompt="p" * 2000))
    store.close()
    again = RunStore(tmp_path / "s.sqlite")
    assert again._read("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    assert "a0" in set(again.attempts()["attempt_id"])


def test_tag_delete_and_unknown_run(tmp_path, store_url):
    store = RunStore(store_url)
    img_dir = tmp_path / "images" / "r1"
    img_dir.mkdir(parents=True)
    (img_dir / "a1.png").write_bytes(b"png")
    rid = store.create_run(plan={}, provider="gemini", run_id="r1", image_dir=img_dir)
    store.attempt_finished(_attempt(1, rid, status="ok", image_path=str(img_dir / "a1.png")))
    store.tag_run(rid, "baseline")
    store.tag_run(rid, "baseline")
    assert store.runs().loc[0, "tags"] == ["baseline"]
    assert store.attempts().loc[0, "tags"] == ["baseline"]
    with pytest.raises(ConfigError, match="run_id='nope'"):
        store.tag_run("nope", "x")
    with pytest.raises(ConfigError, match="already exists"):
        store.create_run(plan={}, run_id="r1")
    store.delete_run(rid)
    assert store.runs().empty and store.attempts().empty
    assert not img_dir.exists()
    with pytest.raises(ConfigError):
        store.delete_run(rid)


def test_mark_interrupted(tmp_path, store_url):
    store = RunStore(store_url)
    rid = store.create_run(plan={}, provider="gemini")
    store.attempt_started(_attempt(1, rid, cost_usd=0.1))
    store.attempt_finished(_attempt(2, rid, status="ok", cost_usd=0.134))
    assert store.mark_interrupted(rid) == 1
    frame = store.attempts(run_ids=[rid]).set_index("attempt_id")
    assert frame.loc["a1", "status"] == "error" and frame.loc["a1", "error_kind"] == "cancelled"
    assert "interrupted" in frame.loc["a1", "error_message"]
    assert store.run_cost_usd(rid) == pytest.approx(0.134)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_round_trips(tmp_path, suffix, store_url):
    store = RunStore(store_url)
    rid = store.create_run(plan={}, provider="gemini")
    store.add_attempts([_attempt(i, rid, status="ok", cost_usd=0.134, tile_paths=("x",)) for i in range(3)])
    out = store.export(rid, tmp_path / f"out{suffix}")
    back = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert len(back) == 3 and back["cost_usd"].sum() == pytest.approx(0.402)
    if suffix == ".csv":
        assert json.loads(back.loc[0, "tile_paths"]) == ["x"]
    with pytest.raises(ConfigError, match="parquet"):
        store.export(rid, tmp_path / "out.xlsx")


def test_error_messages_are_redacted_in_the_store(store_url):
    from nbp_kit.errors import register_secret

    register_secret("CANARY-abcdef123456")
    store = RunStore(store_url)
    rid = store.create_run(plan={}, provider="gemini")
    store.attempt_finished(_attempt(1, rid, status="error", error_message="bad key CANARY-abcdef123456"))
    assert "CANARY" not in store.attempts().loc[0, "error_message"]


def test_store_takes_a_postgresql_url_and_names_the_backend(pg_url):
    store = RunStore(pg_url)
    assert store.dialect == "postgresql" and RunStore.memory().dialect == "sqlite"
    rid = store.create_run(plan={"prompts": ["x"]}, provider="gemini", run_id="r-pg")
    # A second connection (another worker) sees committed rows at once.
    other = RunStore(pg_url)
    store.attempt_finished(_attempt(1, rid, status="ok", cost_usd=0.134))
    assert other.done_keys(rid) == {"k1"} and other.run_cost_usd(rid) == pytest.approx(0.134)


def test_unreachable_postgresql_is_a_store_error_without_the_password(tmp_path):
    url = f"postgresql://ann:s3cret-pw@/nodb?host={tmp_path}&port=1"
    with pytest.raises(StoreError) as info:
        RunStore(url)
    assert "cannot be reached" in str(info.value) and "s3cret-pw" not in str(info.value)
    assert "ann:***@" in str(info.value)


def test_store_of_the_previous_schema_gains_the_measurement_columns(tmp_path) -> None:
    import sqlite3

    from nbp_kit.runs.schema import SCHEMA_VERSION, migration_sql
    from nbp_kit.runs.store import Attempt

    path = tmp_path / "v5.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for v in range(1, 6):  # version 6 added the measurement columns
        conn.executescript(f"BEGIN;\n{migration_sql(v, 'sqlite')}\nPRAGMA user_version={v};\nCOMMIT;")
    cols = {r[1] for r in conn.execute("PRAGMA table_info(attempts)")}
    conn.close()
    assert not cols & {"server_total_s", "bytes_fetched", "emulator_late_s"}
    st = RunStore(path)
    assert st.schema_version == SCHEMA_VERSION
    st.attempt_finished(
        Attempt(
            attempt_id="a",
            call_id="c",
            attempt_no=1,
            status="ok",
            server_total_s=25.969,
            bytes_fetched=10,
            emulator_late_s=0.5,
        )
    )
    row = st.attempts().iloc[0]
    assert row["server_total_s"] == 25.969 and row["bytes_fetched"] == 10 and row["emulator_late_s"] == 0.5


def test_a_store_of_the_previous_version_gains_the_quota_columns(tmp_path):
    from nbp_kit.runs.schema import SCHEMA_VERSION, migration_sql

    path = tmp_path / "previous.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for v in range(1, SCHEMA_VERSION):
        conn.executescript(f"BEGIN;\n{migration_sql(v, 'sqlite')}\nPRAGMA user_version={v};\nCOMMIT;")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(attempts)")}
    conn.close()
    assert "quota_id" not in columns  # the previous version had no quota fields
    with RunStore(path) as store:
        rid = store.create_run(plan={}, provider="gemini", base_host="")
        store.attempt_started(_attempt(1, rid))
        store.attempt_finished(
            _attempt(1, rid, status="error").replace(
                error_kind="rate_limited",
                quota_id="GenerateContentImagesPerMinutePerProject",
                quota_value=7.0,
                quota_dimensions='{"model": "m"}',
            )
        )
        row = store.attempts(run_ids=[rid]).iloc[0]
    assert (row["quota_id"], row["quota_value"], row["quota_dimensions"]) == (
        "GenerateContentImagesPerMinutePerProject",
        7.0,
        '{"model": "m"}',
    )
