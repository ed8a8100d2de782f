-- The append-only log and the counter that assigns its positions.

CREATE TABLE events_log (
    position       bigint      PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    name           text        NOT NULL,
    version        bigint      NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    -- FNV-1a of `type/id`: a handler's segment is `aggregate_hash % segments`.
    aggregate_hash bigint      NOT NULL,
    sequence       bigint      NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX events_log_by_name ON events_log (name, position);

-- One row: the last position assigned. An append locks it until its transaction ends, so
-- positions are assigned in commit order and a rolled-back append leaves no hole.
CREATE TABLE events_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    head bigint  NOT NULL
);
INSERT INTO events_head (head) VALUES (0);
