-- Log records and anomaly events get a stable id (a hash of their content, computed by the
-- collector), so a retried batch is stored once. Rows from before have none.

ALTER TABLE logs ADD COLUMN record_id INTEGER;
CREATE UNIQUE INDEX logs_by_record ON logs (project, record_id);

ALTER TABLE anomalies ADD COLUMN record_id INTEGER;
CREATE UNIQUE INDEX anomalies_by_record ON anomalies (project, record_id);
