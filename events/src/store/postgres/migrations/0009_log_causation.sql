-- A process manager's command is sent once by effect: its id is the causation id of the events
-- it caused, looked up before the command is sent again.
CREATE INDEX events_log_by_causation ON events_log ((metadata->>'causation_id'));
