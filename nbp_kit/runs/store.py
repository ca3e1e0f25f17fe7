"""The run store: every run and every attempt, durable, in one SQLite file (or a PostgreSQL team store).

SQLite in WAL mode with ``synchronous=FULL``: an attempt row is committed as ``"started"``
*before* its request is sent (:meth:`RunStore.attempt_started`, the client's sink protocol)
and completed when the outcome is known (:meth:`RunStore.attempt_finished`). Each write is its
own committed transaction, so a process killed at any moment leaves a readable database whose
committed rows are intact. WAL lets a notebook read while a sweep writes::

    >>> store = RunStore.memory()
    >>> run_id = store.create_run(plan={"prompts": ["a cat"]}, provider="gemini", base_host="127.0.0.1:8000")
    >>> store.attempts(run_ids=[run_id]).empty
    True

The schema is versioned with literal SQL migrations, frozen per version
(:mod:`nbp_kit.runs.schema`); a database written by an older kit is upgraded when opened. The narrow
interface (create, write attempts, read frames) runs on two backends: SQLite here (the
version in ``PRAGMA user_version``) and PostgreSQL for a ``postgresql://`` URL
(:mod:`nbp_kit.runs.store_pg`), with the same statements and tables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .._paths import PROJECT_DIR, RUNS_DIR
from ..errors import ConfigError, StoreError, redact
from ..records import ATTEMPT_FIELDS, Attempt
from .schema import SCHEMA_VERSION, migration_sql

#: Default database path (``NBP_KIT_RUNS`` moves it).
DEFAULT_STORE_PATH = RUNS_DIR / "nbp_kit.sqlite"

_FIELD_TYPES: dict[str, str] = {f.name: str(f.type).replace(" | None", "") for f in dataclasses.fields(Attempt)}

_RUN_COLUMNS = (
    "run_id",
    "created_at",
    "plan",
    "provider",
    "base_host",
    "profile",
    "time_scale",
    "clock",
    "versions",
    "git_commit",
    "tags",
    "status",
    "meta",
    "summary",
    "image_dir",
)
_JSON_RUN_COLUMNS = ("plan", "versions", "tags", "meta", "summary")


def _package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("nbp-kit", "httpx2", "h2", "stamina", "pandas", "hypercorn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import platform

    out["python"] = platform.python_version()
    return out


def _git_commit() -> str | None:
    """The kit's commit when running from a git checkout, else None."""
    if not (PROJECT_DIR / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _to_sql(name: str, value: Any) -> Any:
    if name == "tile_paths":
        return json.dumps(list(value or ()))
    if isinstance(value, bool):
        return int(value)
    if name == "error_message" and value:
        return redact(str(value))
    return value


class _SqliteDB:
    """One SQLite connection (WAL, ``synchronous=FULL``); the version lives in ``user_version``."""

    dialect = "sqlite"

    def __init__(self, path: str, *, read_only: bool) -> None:
        self.path = path
        self.label = f"path={path!r}"
        memory = path == ":memory:"
        try:
            if memory:
                conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            else:
                p = Path(path)
                if read_only:
                    conn = sqlite3.connect(
                        f"{p.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
                    )
                else:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(str(p), check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA busy_timeout=30000")
            if not memory and not read_only:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"store path={path!r}: SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"store path={path!r} cannot be opened for {'reading' if read_only else 'writing'}: {exc}. "
                "Pass a path in a folder you can write (or set NBP_KIT_RUNS)."
            ) from exc
        self.conn = conn
        self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def write(self, sql: str, params: Any, *, many: bool) -> int:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.executemany(sql, params) if many else self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return cur.rowcount

    def write_all(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Several statements in one transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in steps:
                self.conn.execute(sql, params)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def read(self, sql: str, params: Any) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, version: int) -> None:
        """Apply migration ``version`` and set the version, in one transaction."""
        try:
            # executescript commits; wrap the migration with its version bump.
            self.conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration_sql(version, 'sqlite')}\nPRAGMA user_version={version};\nCOMMIT;"
            )
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


class RunStore:
    """Runs and attempts in SQLite (default) or PostgreSQL. Thread-safe: one connection guarded by a lock.

    ``path`` is a file path (its folder is created), ``":memory:"``, or a
    ``postgresql://`` URL (a team store shared by workers on several machines, see
    :mod:`nbp_kit.runs.store_pg`). A folder that cannot be written, a path under a regular file,
    a full disk or a database that cannot be reached raise :class:`StoreError`.

    >>> store = RunStore.memory()
    >>> rid = store.create_run(plan={}, provider="gemini", base_host="localhost")
    >>> store.tag_run(rid, "baseline"); store.runs().loc[0, "tags"]
    ['baseline']
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE_PATH, *, read_only: bool = False) -> None:
        if not isinstance(path, (str, os.PathLike)):  # str(12345) would be a file in the cwd
            raise ConfigError(
                f"path={path!r:.80} is not accepted; use a file path (str or Path), ':memory:' or a postgresql:// URL"
            )
        self.path = str(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._db: Any
        if is_postgres_url(self.path):
            from .store_pg import PostgresDB

            self._db = PostgresDB(self.path, read_only=read_only)
            self.path = self._db.label_url
        else:
            self._db = _SqliteDB(self.path, read_only=read_only)
        self._closed = False
        if not read_only:
            self._migrate()
        else:
            self._check_version()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def memory(cls) -> RunStore:
        """A throw-away in-memory store (the test seam).

        >>> RunStore.memory().runs().empty
        True
        """
        return cls(":memory:")

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self._db.dialect)

    @property
    def _conn(self) -> Any:
        """The backend's raw connection (tests reach SQLite pragmas through it)."""
        return self._db.conn

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._db.close()
                self._closed = True

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore(path={self.path!r})"

    # -- low level ----------------------------------------------------------------------
    def _write(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, many: bool = False) -> int:
        """Run one statement in its own committed transaction; errors become StoreError."""
        if self.read_only:
            raise StoreError(f"store path={self.path!r} was opened read-only; open it without read_only=True to write")
        with self._lock:
            try:
                return int(self._db.write(sql, params, many=many))
            except self._db.errors as exc:
                raise StoreError(
                    f"store path={self.path!r} could not be written: {exc}. "
                    "Check the folder is writable and the disk has room; committed rows are intact."
                ) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return list(self._db.read(sql, params))
            except self._db.errors as exc:
                raise StoreError(f"store path={self.path!r} could not be read: {exc}") from exc

    def _migrate(self) -> None:
        with self._lock:
            try:
                version = self._db.version()
            except self._db.errors as exc:
                raise StoreError(f"store path={self.path!r} could not be read: {exc}") from exc
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store path={self.path!r} has schema version {version}, newer than this kit's {SCHEMA_VERSION}; upgrade nbp_kit"
                )
            for i in range(version, SCHEMA_VERSION):
                try:
                    self._db.migrate(i + 1)
                except self._db.errors as exc:
                    raise StoreError(
                        f"store path={self.path!r} could not be set up (migration {i + 1}): {exc}. "
                        "Pass a path in a folder you can write (or set NBP_KIT_RUNS)."
                    ) from exc

    def _check_version(self) -> None:
        version = self.schema_version
        if version != SCHEMA_VERSION:
            hint = (
                " (open it once for writing, e.g. `nbp-kit runs list --store ...`, to upgrade it)"
                if version < SCHEMA_VERSION
                else "; upgrade nbp_kit"
            )
            raise StoreError(
                f"store path={self.path!r} has schema version {version}; this kit reads {SCHEMA_VERSION}{hint}"
            )

    @property
    def schema_version(self) -> int:
        with self._lock:
            try:
                return int(self._db.version())
            except self._db.errors as exc:
                raise StoreError(f"store path={self.path!r} could not be read: {exc}") from exc

    # -- runs ---------------------------------------------------------------------------
    def create_run(
        self,
        *,
        plan: dict[str, Any] | None = None,
        provider: str = "gemini",
        base_host: str = "",
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
        profile: str | None = None,
        time_scale: float = 1.0,
        clock: str = "real",
        image_dir: str | os.PathLike[str] | None = None,
        tags: Iterable[str] = (),
    ) -> str:
        """Record a new run and return its id. ``base_host`` is host[:port] only.

        >>> RunStore.memory().create_run(plan={}, provider="relay", run_id="r1")
        'r1'
        """
        if "/" in base_host or "@" in base_host or "?" in base_host:
            raise ConfigError(
                f"base_host={base_host!r} is not accepted; pass host[:port] only (no path, user or query)"
            )
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        row = {
            "run_id": run_id,
            "created_at": time.time(),
            "plan": json.dumps(plan or {}, default=str),
            "provider": provider,
            "base_host": base_host,
            "profile": profile,
            "time_scale": float(time_scale),
            "clock": clock,
            "versions": json.dumps(_package_versions()),
            "git_commit": _git_commit(),
            "tags": json.dumps(sorted(set(tags))),
            "status": "created",
            "meta": json.dumps(meta or {}, default=str),
            "summary": "{}",
            "image_dir": str(image_dir) if image_dir is not None else None,
        }
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        try:
            self._write(f"INSERT INTO runs ({cols}) VALUES ({marks})", row)
        except StoreError as exc:
            if exc.__cause__ is not None and self._db.is_unique_violation(exc.__cause__):
                raise ConfigError(f"run_id={run_id!r} already exists in the store; pass another or resume it") from None
            raise
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's row as a dict (JSON columns decoded); unknown id -> ConfigError."""
        rows = self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            known = [r["run_id"] for r in self._read("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 5")]
            raise ConfigError(f"run_id={run_id!r} is not in the store {self.path!r}; recent runs: {known or 'none'}")
        return _decode_run(rows[0])

    def has_run(self, run_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)))

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        summary: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        time_scale: float | None = None,
        clock: str | None = None,
        profile: str | None = None,
        image_dir: str | None = None,
    ) -> None:
        """Change a run's status, summary (merged), meta (merged) or time base."""
        current = self.get_run(run_id)
        sets: dict[str, Any] = {}
        if status is not None:
            sets["status"] = status
        if summary is not None:
            sets["summary"] = json.dumps({**current["summary"], **summary}, default=str)
        if meta is not None:
            sets["meta"] = json.dumps({**current["meta"], **meta}, default=str)
        for name, value in (
            ("time_scale", time_scale),
            ("clock", clock),
            ("profile", profile),
            ("image_dir", image_dir),
        ):
            if value is not None:
                sets[name] = value
        if sets:
            assign = ", ".join(f"{k} = :{k}" for k in sets)
            self._write(f"UPDATE runs SET {assign} WHERE run_id = :run_id", {**sets, "run_id": run_id})

    def runs(self) -> pd.DataFrame:
        """One row per run, newest first; ``tags`` is a list, ``plan``/``summary`` dicts."""
        rows = [_decode_run(r) for r in self._read("SELECT * FROM runs ORDER BY created_at DESC")]
        frame = pd.DataFrame(rows, columns=list(_RUN_COLUMNS))
        frame["created_at"] = frame["created_at"].astype("float64")
        return frame

    def tag_run(self, run_id: str, tag: str) -> None:
        """Add a tag to a run (tags are a sorted set)."""
        if not isinstance(tag, str) or not tag.strip():
            raise ConfigError(f"tag={tag!r} is not accepted; use a non-empty string")
        run = self.get_run(run_id)
        tags = sorted(set(run["tags"]) | {tag.strip()})
        self._write("UPDATE runs SET tags = ? WHERE run_id = ?", (json.dumps(tags), run_id))

    def delete_run(self, run_id: str) -> None:
        """Delete a run, its attempts and its image folder."""
        run = self.get_run(run_id)
        paths = self._read("SELECT image_path, tile_paths FROM attempts WHERE run_id = ?", (run_id,))
        with self._lock:
            try:
                self._db.write_all(
                    [
                        ("DELETE FROM attempts WHERE run_id = ?", (run_id,)),
                        ("DELETE FROM work_items WHERE run_id = ?", (run_id,)),
                        ("DELETE FROM shared_limits WHERE run_id = ?", (run_id,)),
                        ("DELETE FROM runs WHERE run_id = ?", (run_id,)),
                    ]
                )
            except self._db.errors as exc:
                raise StoreError(f"store path={self.path!r}: run_id={run_id!r} could not be deleted: {exc}") from exc
        if run.get("image_dir"):
            shutil.rmtree(run["image_dir"], ignore_errors=True)
        for row in paths:
            for p in [row["image_path"], *json.loads(row["tile_paths"] or "[]")]:
                if p:
                    Path(p).unlink(missing_ok=True)

    # -- attempts (the client's sink protocol) ------------------------------------------
    def attempt_started(self, attempt: Attempt) -> None:
        """Commit the attempt as ``started`` before its request is sent."""
        self._upsert(attempt)

    def attempt_finished(self, attempt: Attempt) -> None:
        """Commit the completed attempt (its row is replaced by the final record)."""
        self._upsert(attempt)

    def add_attempts(self, attempts: Iterable[Attempt]) -> None:
        """Write many finished attempts in one transaction (imports, tests)."""
        rows = [self._row(a) for a in attempts]
        if rows:
            self._write(self._upsert_sql(), rows, many=True)

    def _row(self, attempt: Attempt) -> dict[str, Any]:
        return {name: _to_sql(name, getattr(attempt, name)) for name in ATTEMPT_FIELDS}

    @staticmethod
    def _upsert_sql() -> str:
        cols = ", ".join(ATTEMPT_FIELDS)
        marks = ", ".join(f":{c}" for c in ATTEMPT_FIELDS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in ATTEMPT_FIELDS if c != "attempt_id")
        return f"INSERT INTO attempts ({cols}) VALUES ({marks}) ON CONFLICT(attempt_id) DO UPDATE SET {updates}"

    def _upsert(self, attempt: Attempt) -> None:
        try:
            self._write(self._upsert_sql(), self._row(attempt))
        except StoreError as exc:
            if attempt.status != "ok" or exc.__cause__ is None or not self._db.is_unique_violation(exc.__cause__):
                raise
            # One success per request key (the schema's unique index): a second one, from two
            # hedged copies finishing together or a worker whose lease had passed, is kept as an
            # error with its cost, since it was billed.
            self._write(
                self._upsert_sql(),
                self._row(
                    attempt.replace(
                        status="error",
                        error_kind="duplicate_success",
                        error_message="another attempt recorded a success for this request key first (this one was billed)",
                    )
                ),
            )

    def mark_interrupted(self, run_id: str) -> int:
        """Mark attempts left ``started`` by a crash as ``error``/``cancelled``; return how many."""
        return self._write(
            "UPDATE attempts SET status = 'error', error_kind = 'cancelled', "
            "error_message = 'interrupted: the process stopped before this attempt finished', cost_usd = NULL "
            "WHERE run_id = ? AND status = 'started'",
            (run_id,),
        )

    def done_keys(self, run_id: str) -> set[str]:
        """Request keys of a run that already have a successful attempt."""
        rows = self._read(
            "SELECT DISTINCT request_key FROM attempts WHERE run_id = ? AND status = 'ok' AND request_key IS NOT NULL",
            (run_id,),
        )
        return {r["request_key"] for r in rows}

    def run_cost_usd(self, run_id: str) -> float:
        """Recorded cost of a run (sum over attempts)."""
        rows = self._read("SELECT COALESCE(SUM(cost_usd), 0.0) AS c FROM attempts WHERE run_id = ?", (run_id,))
        return float(rows[0]["c"])

    def attempts(
        self, run_ids: Iterable[str] | str | None = None, *, status: str | None = None, with_tags: bool = True
    ) -> pd.DataFrame:
        """The tidy attempts frame: one row per attempt, columns = ``ATTEMPT_FIELDS`` (+ ``tags``).

        Integers are nullable ``Int64``, flags nullable ``boolean``, ``tile_paths`` a list.

        >>> RunStore.memory().attempts().columns[0]
        'attempt_id'
        """
        where, params = [], []
        if isinstance(run_ids, str):
            run_ids = [run_ids]
        if run_ids is not None:
            ids = list(run_ids)
            if not ids:
                return _frame([])
            where.append(f"a.run_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if status is not None:
            where.append("a.status = ?")
            params.append(status)
        sql = "SELECT a.*, r.tags AS tags FROM attempts a LEFT JOIN runs r ON a.run_id = r.run_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.scheduled_at, a.sent_at, a.attempt_no"
        frame = _frame(self._read(sql, params))
        if not with_tags:
            frame = frame.drop(columns=["tags"])
        return frame

    def export(self, run_id: str, path: str | os.PathLike[str]) -> Path:
        """Write a run's attempts to ``.parquet`` or ``.csv`` (chosen by the suffix)."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ConfigError(f"path={str(path)!r} is not accepted; end it in '.parquet' or '.csv'")
        self.get_run(run_id)
        frame = self.attempts(run_ids=[run_id])
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            if suffix == ".parquet":
                frame.to_parquet(out, index=False)
            else:
                frame = frame.assign(tile_paths=frame["tile_paths"].map(json.dumps), tags=frame["tags"].map(json.dumps))
                frame.to_csv(out, index=False)
        except OSError as exc:
            raise StoreError(f"export path={str(path)!r} could not be written: {exc}") from exc
        return out


def is_postgres_url(path: str | os.PathLike[str]) -> bool:
    """True for ``postgresql://`` and ``postgres://`` URLs (the PostgreSQL backend)."""
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in _JSON_RUN_COLUMNS:
        raw = out.get(name)
        out[name] = json.loads(raw) if raw else ([] if name == "tags" else {})
    return out


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*ATTEMPT_FIELDS, "tags"])
    for name in ATTEMPT_FIELDS:
        kind = _FIELD_TYPES[name]
        col = frame[name]
        if kind == "float":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif kind == "int":
            frame[name] = pd.array(col.tolist(), dtype="Int64") if len(col) else col.astype("Int64")
        elif kind == "bool":
            values = [None if v is None or v != v else bool(v) for v in col.tolist()]
            frame[name] = pd.array(values, dtype="boolean")
        elif kind == "tuple[str, ...]":
            frame[name] = [json.loads(v) if isinstance(v, str) else [] for v in col.tolist()]
        else:
            frame[name] = col.astype("object")
    frame["tags"] = [json.loads(v) if isinstance(v, str) else [] for v in frame["tags"].tolist()]
    return frame
