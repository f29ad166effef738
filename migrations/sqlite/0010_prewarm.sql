-- Which forecast exports are kept warm for the organisation (comma-separated forecast ids); NULL
-- follows the server's default (CLARI_MCP_PREWARM), '' turns pre-warming off.
ALTER TABLE organizations ADD COLUMN prewarm TEXT;

-- Clari exports started to pre-warm the cache, per organisation and UTC day: the daily budget
-- (CLARI_MCP_PREWARM_DAILY_BUDGET) is shared by every replica.
CREATE TABLE prewarm_budget (
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day              INTEGER NOT NULL,
    used             INTEGER NOT NULL,
    PRIMARY KEY (organization_id, day)
);
