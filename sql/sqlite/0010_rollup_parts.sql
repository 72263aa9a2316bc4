-- Filtered user and session summaries from the rollups: a user's or session's row keeps its
-- calls per series in `parts` (`query::rollup::Parts`: each series' id, then its sums), NULL in
-- the other rows, and `rollup_series` names the series behind each id, so a summary's filter
-- becomes a set of ids. User and session rows come in weeks too (`Dim::widths`): a month's
-- summary reads each user's weeks rather than thirty days. The rollups are rebuilt from the
-- stored spans right after this, in the same transaction (as 0005's were written).
DELETE FROM rollups;

ALTER TABLE rollups ADD COLUMN parts BLOB;

CREATE TABLE rollup_series (
    project        TEXT    NOT NULL,
    id             INTEGER NOT NULL,  -- `Series::id`, a stable hash of the other columns
    service        TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    model          TEXT    NOT NULL,  -- the request model
    response_model TEXT    NOT NULL,
    operation      TEXT    NOT NULL,
    PRIMARY KEY (project, id)
) WITHOUT ROWID;
