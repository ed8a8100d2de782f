-- The live workers of each handler (heartbeat membership): each takes at most
-- ceil(segments / live members) of the handler's segments, with no coordinator.

CREATE TABLE events_members (
    handler     text        NOT NULL,
    worker      uuid        NOT NULL,
    host        text        NOT NULL,
    pid         bigint      NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    -- Live until then unless it beats again.
    alive_until timestamptz NOT NULL,
    PRIMARY KEY (handler, worker)
);
