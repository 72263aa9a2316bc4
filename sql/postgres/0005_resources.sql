-- Resources stored once. Every span of one process carries the same resource (service name, SDK,
-- host, ...), about 100 bytes of JSON per span; spans now name theirs by `resource_id`, a stable
-- 64-bit hash of the project and the attributes' JSON (`record::resource_id`), and the
-- attributes are kept once in `resources`. Rows written before keep `resource_attributes`.
-- Kept past the spans' retention (one row per distinct resource).

CREATE TABLE IF NOT EXISTS resources (
    project    text   NOT NULL,
    id         bigint NOT NULL,
    attributes jsonb  NOT NULL,
    PRIMARY KEY (project, id)
);

ALTER TABLE spans ADD COLUMN IF NOT EXISTS resource_id bigint;
ALTER TABLE spans ALTER COLUMN resource_attributes DROP NOT NULL;
