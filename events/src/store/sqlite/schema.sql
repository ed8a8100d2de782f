-- The SQLite store's schema, applied at open (every statement is idempotent).

-- The append-only log. `position` is assigned inside the one write transaction SQLite runs at
-- a time, so the log a reader sees is always a gap-free prefix.
CREATE TABLE IF NOT EXISTS events_log (
    position       INTEGER PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX IF NOT EXISTS events_log_by_name ON events_log (name, position);
-- The operator's `log --correlation`: a whole chain by its correlation id.
CREATE INDEX IF NOT EXISTS events_log_by_correlation ON events_log (json_extract(metadata, '$.correlation_id'));
-- A process manager's command is sent once: its id is the causation id of the events it caused.
CREATE INDEX IF NOT EXISTS events_log_by_causation ON events_log (json_extract(metadata, '$.causation_id'));

-- One row per durable handler (one segment on SQLite): its checkpoint and its lease. The
-- lease token grows each time the lease changes hands (fencing). The circuit columns are the
-- holder's breaker, recorded for operators (open until `circuit_until`, 0 when closed).
CREATE TABLE IF NOT EXISTS events_checkpoints (
    handler          TEXT    PRIMARY KEY,
    position         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL DEFAULT 0,
    lease_host       TEXT,
    lease_pid        INTEGER,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    circuit_until    INTEGER NOT NULL DEFAULT 0,
    circuit_failures INTEGER NOT NULL DEFAULT 0
);

-- Pending failures per handler: retries, dead letters, and the events held back behind them.
CREATE TABLE IF NOT EXISTS events_failures (
    id              INTEGER PRIMARY KEY,
    handler         TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    aggregate_key   TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('retrying', 'dead', 'held')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    UNIQUE (handler, position)
);
CREATE INDEX IF NOT EXISTS events_failures_by_aggregate ON events_failures (handler, aggregate_key, position);

-- One snapshot per stream (event-sourced aggregates): the state up to `sequence`, in the
-- aggregate's snapshot schema `version`.
CREATE TABLE IF NOT EXISTS events_snapshots (
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    sequence       INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Views (read models) by id: one row per (view type, id), at the version it was built up to
-- (for a view per aggregate, the sequence of the last event it applied).
CREATE TABLE IF NOT EXISTS events_views (
    view    TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (view, id)
);

-- The live workers of each handler (heartbeat membership). With one segment per handler one
-- of them delivers and the others stand by; `status` shows them all.
CREATE TABLE IF NOT EXISTS events_members (
    handler     TEXT    NOT NULL,
    worker      TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    joined_at   INTEGER NOT NULL,
    alive_until INTEGER NOT NULL,
    PRIMARY KEY (handler, worker)
);

-- Durable timers: each fires its event at `due_at` (the worker appends it to the log and
-- deletes the row in one transaction). An owner has at most one timer per key.
CREATE TABLE IF NOT EXISTS events_timers (
    id             TEXT    PRIMARY KEY,
    due_at         INTEGER NOT NULL,
    owner          TEXT,
    key            TEXT,
    event_id       TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_timers_by_due ON events_timers (due_at, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_timers_by_key ON events_timers (owner, key)
    WHERE owner IS NOT NULL AND key IS NOT NULL;
