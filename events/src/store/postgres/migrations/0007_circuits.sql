-- The circuit breaker of each segment, as the worker holding it recorded it: open until
-- `circuit_until`, after `circuit_failures` fresh events failed in a row. For operators
-- (`status`, the gauges); the worker keeps its own breaker in memory.
ALTER TABLE events_subscriptions
    ADD COLUMN circuit_until    timestamptz,
    ADD COLUMN circuit_failures integer NOT NULL DEFAULT 0;
