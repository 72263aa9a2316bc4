-- Alert evaluation state, shared by every collector that evaluates (one at a time, see
-- collector/src/alerts/): each series' state with a version for compare-and-set, the
-- notifications still to deliver (an outbox written in the transition's transaction), and the
-- fence: the highest leader token that wrote, so a deposed leader's late writes are refused.

ALTER TABLE alert_rules ADD COLUMN source TEXT NOT NULL DEFAULT 'api';  -- 'api' or 'config'
ALTER TABLE alert_rules ADD COLUMN updated_at_ns INTEGER;
ALTER TABLE alert_rules ADD COLUMN deleted_at_ns INTEGER;  -- kept for the history

CREATE INDEX alert_rules_by_project ON alert_rules (project);

ALTER TABLE alert_events ADD COLUMN series TEXT NOT NULL DEFAULT '{}';  -- labels, JSON
ALTER TABLE alert_events ADD COLUMN token INTEGER NOT NULL DEFAULT 0;   -- the writer's fence token

CREATE INDEX alert_events_by_project ON alert_events (project, fired_at_ns);

CREATE TABLE alert_series (
    rule_id     TEXT    NOT NULL REFERENCES alert_rules (id),
    series      TEXT    NOT NULL,  -- labels, canonical JSON
    state       TEXT    NOT NULL,  -- ok, pending, firing, no_data
    since_ns    INTEGER NOT NULL,  -- when this state began
    notified_ns INTEGER,           -- last notification of this state
    value       REAL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (rule_id, series)
);

CREATE TABLE alert_notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL REFERENCES alert_events (id),
    rule_id     TEXT    NOT NULL,
    project     TEXT    NOT NULL,
    channel     INTEGER NOT NULL,  -- index into the rule's notify list
    webhook_id  TEXT    NOT NULL,  -- the same on every attempt, so receivers can deduplicate
    body        TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_ns  INTEGER NOT NULL,
    next_at_ns  INTEGER NOT NULL,
    done_at_ns  INTEGER
);

CREATE INDEX alert_notifications_due ON alert_notifications (next_at_ns) WHERE done_at_ns IS NULL;

-- Notifications of one rule and channel go out in order: one waits for those before it.
CREATE INDEX alert_notifications_pending ON alert_notifications (rule_id, channel, id) WHERE done_at_ns IS NULL;

CREATE TABLE alert_fence (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    token INTEGER NOT NULL
);

INSERT INTO alert_fence (id, token) VALUES (1, 0);
