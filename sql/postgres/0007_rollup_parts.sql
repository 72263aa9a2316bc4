-- Filtered user and session summaries from the rollups: a user's or session's row keeps its
-- calls per series in `parts` (`query::rollup::Parts`: each series' id, then its sums), NULL in
-- the other rows, and `rollup_series` names the series behind each id, so a summary's filter
-- becomes a set of ids. User and session rows come in weeks too (`Dim::widths`): a month's
-- summary reads each user's weeks rather than thirty days. Right after this, in the same
-- transaction, the collector names the series of the rollups kept so far and rebuilds the user
-- and session rows from the stored spans' day on; older rows (past the spans' retention) keep
-- their totals without parts, and the week that straddles the retention's edge counts only
-- the spans still stored.
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
