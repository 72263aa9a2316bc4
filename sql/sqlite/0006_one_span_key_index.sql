-- `spans_by_id` (0005) repeats the index of the spans table's own primary key
-- (`sqlite_autoindex_spans_1`, on the same columns, also unique): every span was indexed twice by
-- its key, 77 bytes per span. The primary key's index finds a trace's spans as well.
DROP INDEX IF EXISTS spans_by_id;
