-- Durable timers: each fires its event at `due_at` (a worker appends it to the log and deletes
-- the row in one transaction, taking due rows with FOR UPDATE SKIP LOCKED). An owner has at
-- most one timer per key.

CREATE TABLE events_timers (
    id             uuid        PRIMARY KEY,
    due_at         timestamptz NOT NULL,
    owner          text,
    key            text,
    event_id       uuid        NOT NULL,
    name           text        NOT NULL,
    version        integer     NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    payload        jsonb       NOT NULL,
    correlation_id uuid        NOT NULL,
    causation_id   uuid,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_timers_by_due ON events_timers (due_at, id);
CREATE UNIQUE INDEX events_timers_by_key ON events_timers (owner, key)
    WHERE owner IS NOT NULL AND key IS NOT NULL;
