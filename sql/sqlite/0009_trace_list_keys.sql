-- The trace list filters by user, session and errors: every trace gets a `trace_keys` row per
-- user (`u:`) and session (`x:`) any of its spans names, and `e:` when any span failed, as the
-- collector writes them from now on (exporters/src/query/trace_list.rs). The traces already
-- stored get theirs here, from their spans and list rows.

INSERT OR IGNORE INTO trace_keys (project, key, start_ns, trace_id)
SELECT DISTINCT s.project, 'u:' || s.user_id, t.start_ns, s.trace_id
FROM spans s JOIN traces t ON t.project = s.project AND t.trace_id = s.trace_id
WHERE s.user_id IS NOT NULL;

INSERT OR IGNORE INTO trace_keys (project, key, start_ns, trace_id)
SELECT DISTINCT s.project, 'x:' || s.session_id, t.start_ns, s.trace_id
FROM spans s JOIN traces t ON t.project = s.project AND t.trace_id = s.trace_id
WHERE s.session_id IS NOT NULL;

INSERT OR IGNORE INTO trace_keys (project, key, start_ns, trace_id)
SELECT project, 'e:', start_ns, trace_id FROM traces WHERE error <> 0;
