-- Custom events and scores (`GET /api/v1/events`, the trace detail, score summaries) are read by
-- event name and time; log records without a name (most of them) are left out of the index.
CREATE INDEX logs_by_event ON logs (project, event_name, time_ns) WHERE event_name IS NOT NULL;
