"""The run store's schema: literal SQL, one migration per version, frozen once shipped.

Migration *i* (1-based) upgrades a store at schema version ``i - 1`` to version ``i``. Each is
written once, in the subset SQLite and PostgreSQL share, and :func:`migration_sql` gives it
in either dialect by mapping the column types (SQLite ``REAL`` and ``INTEGER`` become
PostgreSQL ``DOUBLE PRECISION`` and ``BIGINT``; flags stay 0/1 integers in both, so one row
reads the same from either). A shipped migration is never edited: a new field of
:class:`~nbp_kit.records.Attempt` gets a new migration that adds its column, and
``tests/test_schema.py`` holds that the attempts table's columns equal ``ATTEMPT_FIELDS``
after the last one.

>>> len(MIGRATIONS) == SCHEMA_VERSION
True
>>> "DOUBLE PRECISION" in migration_sql(1, "postgresql")
True
"""

from __future__ import annotations

import re

from ..errors import ConfigError

DIALECTS = ("sqlite", "postgresql")

# Version 1: runs and attempts (the attempts columns as Attempt had them in nbp_kit 0.1.0).
_V1 = """
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  created_at REAL NOT NULL,
  plan TEXT,
  provider TEXT,
  base_host TEXT,
  profile TEXT,
  time_scale REAL,
  clock TEXT,
  versions TEXT,
  git_commit TEXT,
  tags TEXT NOT NULL DEFAULT '[]',
  status TEXT NOT NULL DEFAULT 'created',
  meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE attempts (
  attempt_id TEXT PRIMARY KEY,
  call_id TEXT,
  attempt_no INTEGER,
  status TEXT,
  run_id TEXT,
  request_key TEXT,
  hedge INTEGER,
  provider TEXT,
  model TEXT,
  base_host TEXT,
  transport TEXT,
  resolution TEXT,
  aspect_ratio TEXT,
  thinking_level TEXT,
  grid TEXT,
  prompt TEXT,
  seed INTEGER,
  scheduled_at REAL,
  sent_at REAL,
  ended_at REAL,
  queue_s REAL,
  connect_s REAL,
  tls_s REAL,
  send_s REAL,
  wait_s REAL,
  download_s REAL,
  fetch_s REAL,
  parse_s REAL,
  decode_s REAL,
  save_s REAL,
  total_s REAL,
  first_thought_s REAL,
  first_interim_image_s REAL,
  final_image_s REAL,
  http_version TEXT,
  connection_reused INTEGER,
  bytes_down INTEGER,
  bytes_decoded INTEGER,
  download_mbps REAL,
  status_code INTEGER,
  error_kind TEXT,
  error_message TEXT,
  retry_delay_s REAL,
  retry_delay_source TEXT,
  prompt_tokens INTEGER,
  output_tokens INTEGER,
  thoughts_tokens INTEGER,
  image_tokens INTEGER,
  cost_usd REAL,
  response_id TEXT,
  model_version TEXT,
  image_path TEXT,
  image_sha256 TEXT,
  image_width INTEGER,
  image_height INTEGER,
  image_mime TEXT,
  size_ok INTEGER,
  tiles INTEGER,
  tile_paths TEXT,
  server_queue_s REAL,
  server_generation_s REAL,
  time_scale REAL,
  clock TEXT,
  virtual_at REAL
);
"""

# Version 2: indexes for resume, a run's summary and its image folder.
_V2 = """
CREATE INDEX attempts_run ON attempts(run_id);
CREATE INDEX attempts_key ON attempts(run_id, request_key, status);
ALTER TABLE runs ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN image_dir TEXT;
"""

# Version 3: where each attempt was made from, one success per request key (a second success
# already stored, e.g. from two hedged copies finishing together, becomes an error of kind
# duplicate_success, cost kept: it was billed), and the tables
# that let workers on several machines share a run (work items with leases) and its limits
# (a quota bucket and a spend account, updated atomically).
_V3 = """
ALTER TABLE attempts ADD COLUMN worker_id TEXT;
ALTER TABLE attempts ADD COLUMN host TEXT;
ALTER TABLE attempts ADD COLUMN region TEXT;
UPDATE attempts SET status = 'error', error_kind = 'duplicate_success',
  error_message = 'a second success for this request key (recorded before one success per key was enforced)'
WHERE status = 'ok' AND request_key IS NOT NULL AND EXISTS (
  SELECT 1 FROM attempts AS earlier
  WHERE earlier.run_id = attempts.run_id AND earlier.request_key = attempts.request_key AND earlier.status = 'ok'
    AND (COALESCE(earlier.ended_at, 0) < COALESCE(attempts.ended_at, 0)
      OR (COALESCE(earlier.ended_at, 0) = COALESCE(attempts.ended_at, 0) AND earlier.attempt_id < attempts.attempt_id))
);
CREATE UNIQUE INDEX attempts_one_success ON attempts(run_id, request_key) WHERE status = 'ok';
CREATE TABLE work_items (
  run_id TEXT NOT NULL,
  request_key TEXT NOT NULL,
  position INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'todo',
  worker_id TEXT,
  lease_until REAL,
  claims INTEGER NOT NULL DEFAULT 0,
  est_cost_usd REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, request_key)
);
CREATE INDEX work_items_claim ON work_items(run_id, state, position);
CREATE TABLE shared_limits (
  run_id TEXT PRIMARY KEY,
  requests_per_min REAL,
  tokens REAL NOT NULL DEFAULT 0,
  refilled_at REAL NOT NULL DEFAULT 0,
  paused_until REAL NOT NULL DEFAULT 0,
  spend_cap_usd REAL NOT NULL,
  committed_usd REAL NOT NULL DEFAULT 0,
  time_scale REAL NOT NULL DEFAULT 1
);
"""

# Version 4: the shared quota's grant counter (requests let through this minute and the one
# before), from which workers learn a quota they are not told and start slowly until they do.
_V4 = """
ALTER TABLE shared_limits ADD COLUMN window_start REAL NOT NULL DEFAULT 0;
ALTER TABLE shared_limits ADD COLUMN window_grants REAL NOT NULL DEFAULT 0;
ALTER TABLE shared_limits ADD COLUMN previous_grants REAL NOT NULL DEFAULT 0;
"""

# Version 5: reference images and editing sessions (send_s is their upload).
_V5 = """
ALTER TABLE attempts ADD COLUMN input_images INTEGER;
ALTER TABLE attempts ADD COLUMN input_bytes INTEGER;
ALTER TABLE attempts ADD COLUMN input_pixels INTEGER;
ALTER TABLE attempts ADD COLUMN bytes_up INTEGER;
ALTER TABLE attempts ADD COLUMN session_id TEXT;
ALTER TABLE attempts ADD COLUMN turn INTEGER;
"""

# Version 6: server time as the front end reports it, relay fetch bytes, the emulator's overrun.
_V6 = """
ALTER TABLE attempts ADD COLUMN server_total_s REAL;
ALTER TABLE attempts ADD COLUMN bytes_fetched INTEGER;
ALTER TABLE attempts ADD COLUMN emulator_late_s REAL;
"""

# Version 7: the quota a 429 named (metric, id, stated limit, dimensions).
_V7 = """
ALTER TABLE attempts ADD COLUMN quota_metric TEXT;
ALTER TABLE attempts ADD COLUMN quota_id TEXT;
ALTER TABLE attempts ADD COLUMN quota_value REAL;
ALTER TABLE attempts ADD COLUMN quota_dimensions TEXT;
"""

#: Every migration, oldest first. Append; never edit a shipped entry.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)

_PG_TYPES = ((re.compile(r"\bREAL\b"), "DOUBLE PRECISION"), (re.compile(r"\bINTEGER\b"), "BIGINT"))


def migration_sql(version: int, dialect: str) -> str:
    """The SQL that upgrades a store from ``version - 1`` to ``version``, in ``dialect``.

    >>> migration_sql(2, "sqlite").split(";")[0].strip()
    'CREATE INDEX attempts_run ON attempts(run_id)'
    """
    if dialect not in DIALECTS:
        raise ConfigError(f"dialect={dialect!r} is not accepted; use one of {', '.join(map(repr, DIALECTS))}")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ConfigError(f"version={version!r} is not accepted; use a whole number from 1 to {SCHEMA_VERSION}")
    sql = MIGRATIONS[version - 1]
    if dialect == "postgresql":
        for pattern, replacement in _PG_TYPES:
            sql = pattern.sub(replacement, sql)
    return sql


def statements(sql: str) -> list[str]:
    """Split a migration into statements (the schema holds no ``;`` inside a literal)."""
    return [s.strip() for s in sql.split(";") if s.strip()]
