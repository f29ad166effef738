-- The MCP authorization extensions: machine clients (client credentials), one-time JWT ids
-- (ID-JAG, client assertions, DPoP proofs) and DPoP key binding.

-- A machine client acts as a service identity of one organisation with fixed scopes. It
-- authenticates with a secret (stored as SHA-256) or with a private key whose public half is
-- registered as a JWKS or a JWKS URL.
CREATE TABLE service_clients (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    auth_method      TEXT NOT NULL CHECK (auth_method IN ('client_secret_basic', 'private_key_jwt')),
    secret_hash      TEXT,
    jwks             TEXT,
    jwks_uri         TEXT,
    created_by       TEXT,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT,
    revoked_at       BIGINT
);
CREATE INDEX service_clients_org_idx ON service_clients (organization_id);

-- JWT ids seen once, kept until the JWT they came from expires: a second sight is a replay.
-- `digest` is SHA-256 of (kind, issuer, jti), so ids of different issuers never collide.
CREATE TABLE seen_jtis (
    digest      TEXT PRIMARY KEY NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX seen_jtis_expires_idx ON seen_jtis (expires_at);

-- An organisation may require every token of its clients to be DPoP-bound.
ALTER TABLE organizations ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;

-- The JWK thumbprint a public client's refresh token is bound to (RFC 9449 §5).
ALTER TABLE refresh_tokens ADD COLUMN jkt TEXT;
