-- The export_jobs row becomes the organisation's queue in front of Clari's concurrency limit:
-- a new status 'queued', and one lane row per organisation that serialises promotions.
CREATE TABLE export_jobs_new (
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    request_key      TEXT NOT NULL,
    clari_job_id     TEXT,
    status           TEXT NOT NULL
                     CHECK (status IN ('queued', 'starting', 'running', 'done', 'failed')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- Place in the organisation's queue (first come, first served).
    queue_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, request_key)
);
INSERT INTO export_jobs_new
    (organization_id, request_key, clari_job_id, status, created_at, updated_at)
    SELECT organization_id, request_key, clari_job_id, status, created_at, updated_at
    FROM export_jobs;
DROP TABLE export_jobs;
ALTER TABLE export_jobs_new RENAME TO export_jobs;
CREATE INDEX export_jobs_by_org_status ON export_jobs (organization_id, status);

CREATE TABLE export_lanes (
    organization_id  TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    touched_at       INTEGER NOT NULL
);
