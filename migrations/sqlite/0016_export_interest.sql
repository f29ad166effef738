-- Who is waiting for an organisation's shared export: one row per (export, caller), refreshed
-- whenever the caller asks for it while it is not ready. A task's cancel stops the Clari job
-- only when nobody else waits for it.
CREATE TABLE export_interest (
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    request_key      TEXT NOT NULL,
    owner            TEXT NOT NULL,
    seen_at          INTEGER NOT NULL,
    PRIMARY KEY (organization_id, request_key, owner)
);
CREATE INDEX export_interest_seen_idx ON export_interest (seen_at);
