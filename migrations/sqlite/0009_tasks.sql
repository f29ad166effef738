-- MCP Tasks (io.modelcontextprotocol/tasks): a tool call whose export was not ready in time,
-- kept here so any replica can report on it or cancel it. A task belongs to its caller (the
-- organisation, the person and the client or API key); it is purged once expires_at passes.
CREATE TABLE mcp_tasks (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner            TEXT NOT NULL,
    tool             TEXT NOT NULL,
    arguments        TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('working', 'completed', 'failed', 'cancelled')),
    job_id           TEXT,
    result           TEXT,
    error            TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX mcp_tasks_owner_idx ON mcp_tasks (owner, status);
CREATE INDEX mcp_tasks_expiry_idx ON mcp_tasks (expires_at);
