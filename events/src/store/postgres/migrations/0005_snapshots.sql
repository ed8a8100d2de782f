-- Snapshots of event-sourced aggregates: one row per stream, the state at `sequence`, of the
-- aggregate's snapshot schema `version` (a row of another version is ignored and replaced).

CREATE TABLE events_snapshots (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    version        bigint NOT NULL,
    sequence       bigint NOT NULL,
    state          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
