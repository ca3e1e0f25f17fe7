"""Schema migrations are literal SQL, frozen per version, and upgrade a previous version's store."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from nbp_kit.errors import ConfigError, StoreError
from nbp_kit.records import ATTEMPT_FIELDS, Attempt
from nbp_kit.runs.schema import MIGRATIONS, SCHEMA_VERSION, migration_sql, statements
from nbp_kit.runs.store import RunStore

# sha256 of each shipped migration. A shipped migration never changes: stores in the field
# were built with it. Add a new migration (and its hash here) instead of editing one.
SHIPPED = {
    1: "6d0f00fc4ae17fd7f01a603f8183e37cd134400817490f940b2cb03d63aaadf5",
    2: "568230508307bcf140154ab92027318d8b53a3e55e5deb740e45ba588198fb4b",
    3: "c1ea93c49f1ef8085c7e657cd66a15be0baaaa8114f983d7a7b93f5523cfd426",
    4: "3e530156b61763b17710fe57e0ca47bdd5d3d2e6cf6fa3ab059354a093d76227",
    5: "75b35e4f7d51e7be6ef7a459f0483f57dce3d865e24e2e7ff13ff55d18a286e5",
    6: "069e3696dffc368655d6c8cb0ddf95ed2c991eb322876617147020e4b009c03a",
    7: "8527eca596efba05f41ccc9a4325b8a0f698a01dd00857d96cbd97168bb41454",
}

# The attempts columns a store at version 2 has (Attempt in nbp_kit 0.1.0, before worker_id/host/region).
V2_ATTEMPT_COLUMNS = ATTEMPT_FIELDS[: ATTEMPT_FIELDS.index("virtual_at") + 1]


@pytest.mark.parametrize("version", sorted(SHIPPED))
def test_shipped_migrations_are_frozen(version):
    digest = hashlib.sha256(MIGRATIONS[version - 1].encode()).hexdigest()
    assert digest == SHIPPED[version], f"migration {version} was edited; append a new migration instead"


def test_every_migration_is_listed_as_shipped():
    assert sorted(SHIPPED) == list(range(1, SCHEMA_VERSION + 1))


def test_a_new_sqlite_store_has_every_attempt_field_as_a_column(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    cols = [r["name"] for r in store._read("PRAGMA table_info(attempts)")]
    assert cols == list(ATTEMPT_FIELDS)


def test_postgresql_dialect_maps_types_only():
    pg = migration_sql(1, "postgresql")
    assert "REAL" not in pg.replace("DOUBLE PRECISION", "") and " INTEGER" not in pg
    assert pg.count("DOUBLE PRECISION") == migration_sql(1, "sqlite").count("REAL")
    with pytest.raises(ConfigError, match="dialect='mysql'"):
        migration_sql(1, "mysql")
    with pytest.raises(ConfigError, match="version=0"):
        migration_sql(0, "sqlite")


def _v2_rows():
    run = {
        "run_id": "old",
        "created_at": 1.0,
        "plan": "{}",
        "provider": "gemini",
        "tags": '["kept"]',
        "summary": '{"ok": 1}',
    }
    attempt = {
        "attempt_id": "a1",
        "call_id": "c1",
        "attempt_no": 1,
        "status": "ok",
        "run_id": "old",
        "request_key": "k1",
        "hedge": 0,
        "cost_usd": 0.134,
        "tile_paths": "[]",
        "tiles": 1,
        "connection_reused": 1,
        "total_s": 2.5,
        "ended_at": 10.0,
    }
    # Two hedged copies that both finished ok: a version-2 store could hold both.
    twin = {**attempt, "attempt_id": "a1-hedge", "hedge": 1, "ended_at": 10.5}
    return run, attempt, twin


def _insert_sql(table, row, mark):
    cols = ", ".join(row)
    return f"INSERT INTO {table} ({cols}) VALUES ({', '.join(mark for _ in row)})"


def _check_migrated(store):
    assert store.schema_version == SCHEMA_VERSION
    run = store.get_run("old")
    assert run["tags"] == ["kept"] and run["summary"] == {"ok": 1}
    frame = store.attempts(run_ids=["old"]).set_index("attempt_id")
    assert frame.loc["a1", "status"] == "ok" and frame.loc["a1", "cost_usd"] == pytest.approx(0.134)
    assert bool(frame.loc["a1", "connection_reused"])
    assert frame.loc["a1", "region"] is None and frame.loc["a1", "host"] is None
    # The later of two stored successes for one key became a duplicate, its cost kept.
    assert frame.loc["a1-hedge", "status"] == "error" and frame.loc["a1-hedge", "error_kind"] == "duplicate_success"
    assert frame.loc["a1-hedge", "cost_usd"] == pytest.approx(0.134)
    # The new fields are written and read back.
    store.attempt_finished(
        Attempt(
            attempt_id="a2",
            call_id="c2",
            attempt_no=1,
            status="ok",
            run_id="old",
            request_key="k2",
            worker_id="w1",
            host="box-1",
            region="eu-west",
        )
    )
    row = store.attempts(run_ids=["old"]).set_index("attempt_id").loc["a2"]
    assert (row["worker_id"], row["host"], row["region"]) == ("w1", "box-1", "eu-west")
    # Version 3's unique index: a second success for one request key is stored as a duplicate.
    store.attempt_finished(
        Attempt(
            attempt_id="a3", call_id="c3", attempt_no=1, status="ok", run_id="old", request_key="k1", cost_usd=0.134
        )
    )
    row = store.attempts(run_ids=["old"]).set_index("attempt_id").loc["a3"]
    assert (row["status"], row["error_kind"]) == ("error", "duplicate_success")
    assert store.done_keys("old") == {"k1", "k2"}
    with pytest.raises(StoreError, match="could not be written"):  # the index itself, below the store's handling
        store._write("UPDATE attempts SET status = 'ok' WHERE attempt_id = 'a3'")


def test_sqlite_store_at_version_2_is_migrated(tmp_path):
    path = tmp_path / "v2.sqlite"
    conn = sqlite3.connect(path)
    for version in (1, 2):
        conn.executescript(migration_sql(version, "sqlite"))
    conn.execute("PRAGMA user_version=2")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(attempts)")]
    assert tuple(cols) == V2_ATTEMPT_COLUMNS  # really the previous version's table
    run, attempt, twin = _v2_rows()
    conn.execute(_insert_sql("runs", run, "?"), tuple(run.values()))
    for row in (attempt, twin):
        conn.execute(_insert_sql("attempts", row, "?"), tuple(row.values()))
    conn.commit()
    conn.close()
    with RunStore(path) as store:
        _check_migrated(store)
        assert [r["name"] for r in store._read("PRAGMA table_info(attempts)")] == list(ATTEMPT_FIELDS)
        assert store._read("PRAGMA integrity_check")[0]["integrity_check"] == "ok"


def test_postgresql_store_at_version_2_is_migrated(pg_url):
    import psycopg

    run, attempt, twin = _v2_rows()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with conn.transaction():
            for version in (1, 2):
                for statement in statements(migration_sql(version, "postgresql")):
                    conn.execute(statement)
            conn.execute("CREATE TABLE nbp_kit_schema (version BIGINT NOT NULL)")
            conn.execute("INSERT INTO nbp_kit_schema VALUES (%s)", (2,))
            conn.execute(_insert_sql("runs", run, "%s"), tuple(run.values()))
            for row in (attempt, twin):
                conn.execute(_insert_sql("attempts", row, "%s"), tuple(row.values()))
    with RunStore(pg_url) as store:
        _check_migrated(store)
        cols = [
            r["column_name"]
            for r in store._read(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'attempts' ORDER BY ordinal_position"
            )
        ]
        assert cols == list(ATTEMPT_FIELDS)


def test_two_processes_opening_a_new_postgresql_store_migrate_it_once(pg_url):
    import threading

    errors = []

    def open_store():
        try:
            RunStore(pg_url).close()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert RunStore(pg_url).schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_at_the_previous_version_with_a_shared_run_is_migrated(backend, tmp_path, request):
    """Version 3 (shared runs) -> 4 (the quota's grant counter): the shared run's limits survive."""
    limits = {"run_id": "team", "requests_per_min": 7.5, "spend_cap_usd": 40.0, "committed_usd": 1.25}
    if backend == "sqlite":
        url = str(tmp_path / "v3.sqlite")
        conn = sqlite3.connect(url)
        for version in range(1, SCHEMA_VERSION):
            conn.executescript(migration_sql(version, "sqlite"))
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION - 1}")
        conn.execute(_insert_sql("shared_limits", limits, "?"), tuple(limits.values()))
        conn.commit()
        conn.close()
    else:
        import psycopg

        url = request.getfixturevalue("pg_url")
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            for version in range(1, SCHEMA_VERSION):
                for statement in statements(migration_sql(version, "postgresql")):
                    conn.execute(statement)
            conn.execute("CREATE TABLE nbp_kit_schema (version BIGINT NOT NULL)")
            conn.execute("INSERT INTO nbp_kit_schema VALUES (%s)", (SCHEMA_VERSION - 1,))
            conn.execute(_insert_sql("shared_limits", limits, "%s"), tuple(limits.values()))
    with RunStore(url) as store:
        assert store.schema_version == SCHEMA_VERSION
        row = store._read("SELECT * FROM shared_limits WHERE run_id = 'team'")[0]
        assert (row["requests_per_min"], row["committed_usd"]) == (7.5, 1.25)
        assert (row["window_start"], row["window_grants"], row["previous_grants"]) == (0, 0, 0)
