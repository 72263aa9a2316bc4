-- Alert evaluation state, shared by every collector that evaluates (one at a time, see
-- collector/src/alerts/): each series' state with a version for compare-and-set, the
-- notifications still to deliver (an outbox written in the transition's transaction), and the
-- fence: the highest leader token that wrote, so a deposed leader's late writes are refused.

ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'api';  -- 'api' or 'config'
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS updated_at_ns bigint;
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS deleted_at_ns bigint;  -- kept for the history

CREATE INDEX IF NOT EXISTS alert_rules_by_project ON alert_rules (project);

ALTER TABLE alert_events ADD COLUMN IF NOT EXISTS series text NOT NULL DEFAULT '{}';  -- labels, JSON
ALTER TABLE alert_events ADD COLUMN IF NOT EXISTS token bigint  NOT NULL DEFAULT 0;   -- the writer's fence token

CREATE INDEX IF NOT EXISTS alert_events_by_project ON alert_events (project, fired_at_ns);

CREATE TABLE IF NOT EXISTS alert_series (
    rule_id     text    NOT NULL REFERENCES alert_rules (id),
    series      text    NOT NULL,  -- labels, canonical JSON
    state       text    NOT NULL,  -- ok, pending, firing, no_data
    since_ns    bigint  NOT NULL,  -- when this state began
    notified_ns bigint,           -- last notification of this state
    value       double precision,
    version     bigint  NOT NULL,
    PRIMARY KEY (rule_id, series)
);

CREATE TABLE IF NOT EXISTS alert_notifications (
    id          bigserial PRIMARY KEY,
    event_id    bigint  NOT NULL REFERENCES alert_events (id),
    rule_id     text    NOT NULL,
    project     text    NOT NULL,
    channel     bigint  NOT NULL,  -- index into the rule's notify list
    webhook_id  text    NOT NULL,  -- the same on every attempt, so receivers can deduplicate
    body        text    NOT NULL,
    attempts    bigint  NOT NULL DEFAULT 0,
    created_ns  bigint  NOT NULL,
    next_at_ns  bigint  NOT NULL,
    done_at_ns  bigint
);

CREATE INDEX IF NOT EXISTS alert_notifications_due ON alert_notifications (next_at_ns) WHERE done_at_ns IS NULL;

-- Notifications of one rule and channel go out in order: one waits for those before it.
CREATE INDEX IF NOT EXISTS alert_notifications_pending ON alert_notifications (rule_id, channel, id) WHERE done_at_ns IS NULL;

CREATE TABLE IF NOT EXISTS alert_fence (
    id    bigint  PRIMARY KEY CHECK (id = 1),
    token bigint  NOT NULL
);

INSERT INTO alert_fence (id, token) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
