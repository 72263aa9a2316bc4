-- Resources stored once. Every span of one process carries the same resource (service name, SDK,
-- host, ...), about 90 bytes of JSON per span; spans now name theirs by `resource_id`, a stable
-- 64-bit hash of the project and the attributes' JSON (`record::resource_id`), and leave
-- `resource_attributes` empty; the attributes are kept once in `resources`. Rows written before
-- keep their own `resource_attributes` (no rewrite of the spans on upgrade).
CREATE TABLE resources (
    project    TEXT    NOT NULL,
    id         INTEGER NOT NULL,
    attributes TEXT    NOT NULL,  -- JSON object
    PRIMARY KEY (project, id)
) WITHOUT ROWID;

ALTER TABLE spans ADD COLUMN resource_id INTEGER;
