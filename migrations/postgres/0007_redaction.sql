-- Each organisation's redaction policy (JSON: {"kinds": [...], "custom": [...]}); NULL follows the
-- server's default (CLARI_MCP_REDACT).
ALTER TABLE organizations ADD COLUMN redaction TEXT;
