-- Filtered user and session summaries from the rollups: a user's or session's row keeps its
-- calls per series in `parts` (`query::rollup::Parts`: each series' id, then its sums), NULL in
-- the other rows, and `rollup_series` names the series behind each id, so a summary's filter
-- becomes a set of ids. Right after this, in the same transaction, the collector names the
-- series of the rollups kept so far and rebuilds the user and session rows from the stored
-- spans' day on; older rows (past the spans' retention) keep their totals without parts.
ALTER TABLE rollups ADD COLUMN IF NOT EXISTS parts bytea;

CREATE TABLE IF NOT EXISTS rollup_series (
    project        text   NOT NULL,
    id             bigint NOT NULL,  -- `Series::id`, a stable hash of the other columns
    service        text   NOT NULL,
    provider       text   NOT NULL,
    model          text   NOT NULL,  -- the request model
    response_model text   NOT NULL,
    operation      text   NOT NULL,
    PRIMARY KEY (project, id)
);
