-- Durable delivery: one row per (handler, segment) holding its checkpoint and its claim, and
-- the pending failures (retries, dead letters, events held back behind them).

CREATE TABLE events_subscriptions (
    handler      text        NOT NULL,
    segment      integer     NOT NULL,
    -- Into how many segments the handler's stream is split: every row of a handler agrees.
    segments     integer     NOT NULL CHECK (segments > 0 AND segment >= 0 AND segment < segments),
    position     bigint      NOT NULL DEFAULT 0,
    -- The claim: its holder, its lease, and the fencing token that grows each time it changes
    -- hands.
    owner_worker uuid,
    owner_host   text,
    owner_pid    bigint,
    token        bigint      NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, segment)
);

CREATE TABLE events_failures (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler         text        NOT NULL,
    segment         integer     NOT NULL,
    position        bigint      NOT NULL,
    aggregate_key   text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('retrying', 'dead', 'held')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (handler, position)
);
CREATE INDEX events_failures_by_aggregate ON events_failures (handler, aggregate_key, position);
CREATE INDEX events_failures_by_segment ON events_failures (handler, segment, status);
