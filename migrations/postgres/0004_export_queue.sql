-- The export_jobs row becomes the organisation's queue in front of Clari's concurrency limit:
-- a new status 'queued', and one lane row per organisation that serialises promotions.
ALTER TABLE export_jobs DROP CONSTRAINT export_jobs_status_check;
ALTER TABLE export_jobs ADD CONSTRAINT export_jobs_status_check
    CHECK (status IN ('queued', 'starting', 'running', 'done', 'failed'));
-- Place in the organisation's queue (first come, first served).
ALTER TABLE export_jobs ADD COLUMN queue_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX export_jobs_by_org_status ON export_jobs (organization_id, status);

CREATE TABLE export_lanes (
    organization_id  TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    touched_at       BIGINT NOT NULL
);
