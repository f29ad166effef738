-- Cross-replica single-flight for Clari exports: the replica whose insert wins starts the Clari job
-- and records its id; the others poll that same job instead of starting another.
CREATE TABLE export_jobs (
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    request_key      TEXT NOT NULL,
    clari_job_id     TEXT,
    status           TEXT NOT NULL CHECK (status IN ('starting', 'running', 'done', 'failed')),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (organization_id, request_key)
);
