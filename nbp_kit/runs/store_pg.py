"""The run store's PostgreSQL backend: one team store for everyone's runs, through psycopg 3.

``RunStore("postgresql://user@host/db")`` uses it; the tables, columns and migrations are the
SQLite ones (:mod:`nbp_kit.runs.schema`, PostgreSQL dialect). The store's statements are written
once with SQLite placeholders (``?`` and ``:name``); :func:`to_pg` rewrites them for psycopg.
Each write is its own committed transaction, as in SQLite. The schema version lives in a
one-row table ``nbp_kit_schema``; migrations run under an advisory lock, so workers that
open a new database at the same moment migrate it once.

A password in the URL is never shown: :attr:`PostgresDB.label_url` (what messages and
``RunStore.path`` show) has it replaced by ``***``. Prefer a ``~/.pgpass`` file or
``PGPASSWORD`` over a password in the URL.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, StoreError
from .schema import migration_sql, statements

# A constant key for pg_advisory_xact_lock: "nbp_kit schema" (any 64-bit number would do).
_MIGRATION_LOCK = 0x6E62_705F_6B69_74

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pg(sql: str) -> str:
    """SQLite placeholders to psycopg's: ``?`` -> ``%s``, ``:name`` -> ``%(name)s``.

    >>> to_pg("SELECT * FROM t WHERE a = ? AND b = :b AND c LIKE 'x%'")
    "SELECT * FROM t WHERE a = %s AND b = %(b)s AND c LIKE 'x%%'"
    """
    sql = sql.replace("%", "%%").replace("?", "%s")
    return _NAMED.sub(r"%(\1)s", sql)


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``.

    >>> redact_url("postgresql://ann:s3cret@db.example:5432/runs")
    'postgresql://ann:***@db.example:5432/runs'
    """
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def connect(url: str, *, autocommit: bool = True) -> Any:
    """A psycopg connection (rows as dicts); a missing driver or an unreachable server -> StoreError."""
    try:
        import psycopg
        from psycopg.rows import dict_row
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise ConfigError(f"path={redact_url(url)!r} needs psycopg 3: pip install 'psycopg[binary]'") from exc
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(
            f"store path={redact_url(url)!r} cannot be reached: {str(exc).strip()}. "
            "Check the host, port, database name and credentials (a ~/.pgpass file or PGPASSWORD)."
        ) from exc


class PostgresDB:
    """The backend :class:`~nbp_kit.runs.store.RunStore` drives: one autocommit connection."""

    dialect = "postgresql"

    def __init__(self, url: str, *, read_only: bool) -> None:
        import psycopg

        self.url = url
        self.label_url = redact_url(url)
        self.read_only = read_only
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self._unique = psycopg.errors.UniqueViolation
        self.conn = connect(url)
        if read_only:
            self.conn.read_only = True

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, self._unique)

    def write(self, sql: str, params: Any, *, many: bool) -> int:
        with self.conn.cursor() as cur:
            if many:
                with self.conn.transaction():
                    cur.executemany(to_pg(sql), params)
            else:
                cur.execute(to_pg(sql), params)  # autocommit: one statement, one transaction, one round trip
            return int(cur.rowcount)

    def write_all(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            for sql, params in steps:
                cur.execute(to_pg(sql), params)

    def read(self, sql: str, params: Any) -> list[dict[str, Any]]:
        with self.conn.cursor() as cur:
            cur.execute(to_pg(sql), params if params is not None else ())
            return list(cur.fetchall()) if cur.description else []

    def version(self) -> int:
        exists = self.conn.execute("SELECT to_regclass('nbp_kit_schema') AS t").fetchone()["t"]
        if exists is None:
            return 0
        row = self.conn.execute("SELECT version FROM nbp_kit_schema").fetchone()
        return int(row["version"]) if row else 0

    def migrate(self, version: int) -> None:
        """Apply migration ``version`` once, even when several processes open the store at once."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            self.conn.execute("CREATE TABLE IF NOT EXISTS nbp_kit_schema (version BIGINT NOT NULL)")
            if self.version() >= version:
                return  # another process got there first
            for statement in statements(migration_sql(version, "postgresql")):
                self.conn.execute(statement)
            self.conn.execute("DELETE FROM nbp_kit_schema")
            self.conn.execute("INSERT INTO nbp_kit_schema (version) VALUES (%s)", (version,))

    def close(self) -> None:
        self.conn.close()


def require_postgres(store: Any, what: str) -> None:
    """Refuse an SQLite store where only PostgreSQL can do the job (row locks across machines)."""
    if getattr(store, "dialect", None) != "postgresql":
        raise ConfigError(
            f"store={getattr(store, 'path', store)!r} is not accepted for {what}; use a postgresql:// URL "
            "(workers on several machines share a run through PostgreSQL's row locks)"
        )
