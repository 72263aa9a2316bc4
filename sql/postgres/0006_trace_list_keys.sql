-- The trace list filters by user, session, errors and the words of span names: every trace gets
-- a `trace_keys` row per user (`u:`) and session (`x:`) any of its spans names, per word (`w:`)
-- of its spans' names, and `e:` when any span failed (exporters/src/query/trace_list.rs). No
-- table changes: the collector writes the keys of the traces already stored right after this
-- migration, in the same transaction, as it writes them for every batch from now on.
SELECT 1;
