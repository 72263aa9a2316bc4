-- Metadata: projects, API keys (only a SHA-256 hash of each key), alert rules and events.
-- The same tables as sql/postgres/; times are Unix nanoseconds.

CREATE TABLE projects (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    created_at_ns INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    project         TEXT    NOT NULL REFERENCES projects (id),
    name            TEXT    NOT NULL,
    display_prefix  TEXT    NOT NULL,
    key_sha256      BLOB    NOT NULL UNIQUE,
    created_at_ns   INTEGER NOT NULL,
    last_used_at_ns INTEGER,
    revoked_at_ns   INTEGER
);

CREATE INDEX api_keys_by_project ON api_keys (project);

CREATE TABLE alert_rules (
    id            TEXT    PRIMARY KEY,
    project       TEXT    NOT NULL REFERENCES projects (id),
    name          TEXT    NOT NULL,
    definition    TEXT    NOT NULL,  -- JSON
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at_ns INTEGER NOT NULL
);

CREATE TABLE alert_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id     TEXT    NOT NULL REFERENCES alert_rules (id),
    project     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    details     TEXT    NOT NULL,  -- JSON
    fired_at_ns INTEGER NOT NULL
);

CREATE INDEX alert_events_by_rule ON alert_events (rule_id, fired_at_ns);
