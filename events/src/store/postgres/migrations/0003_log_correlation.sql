-- The operator's `log --correlation`: a whole chain by its correlation id.
CREATE INDEX events_log_by_correlation ON events_log ((metadata->>'correlation_id'));
