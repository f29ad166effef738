-- Authorization server: clients, codes, grants, refresh tokens, signing keys, browser sessions and
-- shared rate-limit counters. Secrets (codes, refresh tokens, client secrets, registration access
-- tokens) are stored only as SHA-256 digests.
CREATE TABLE oauth_clients (
    id                       TEXT PRIMARY KEY NOT NULL,
    kind                     TEXT NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    metadata                 TEXT NOT NULL,
    secret_hash              TEXT,
    registration_token_hash  TEXT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    last_used_at             BIGINT,
    expires_at               BIGINT,
    disabled                 BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX oauth_clients_expires_idx ON oauth_clients (expires_at);

CREATE TABLE grants (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id        TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope            TEXT NOT NULL,
    resource         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    revoked_at       BIGINT
);
CREATE UNIQUE INDEX grants_live_key ON grants (user_id, organization_id, client_id) WHERE revoked_at IS NULL;
CREATE INDEX grants_org_idx ON grants (organization_id);

CREATE TABLE authorization_codes (
    code_hash        TEXT PRIMARY KEY NOT NULL,
    grant_id         TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    organization_id  TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    redirect_uri     TEXT NOT NULL,
    code_challenge   TEXT NOT NULL,
    scope            TEXT NOT NULL,
    resource         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    consumed_at      BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash       TEXT PRIMARY KEY NOT NULL,
    grant_id         TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    organization_id  TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    resource         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    rotated_at       BIGINT,
    replaced_by      TEXT,
    revoked_at       BIGINT
);
CREATE INDEX refresh_tokens_grant_idx ON refresh_tokens (grant_id);

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY NOT NULL,
    alg                 TEXT NOT NULL,
    public_jwk          TEXT NOT NULL,
    private_ciphertext  TEXT NOT NULL,
    private_key_id      TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    retired_at          BIGINT
);

CREATE TABLE web_sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

CREATE TABLE rate_limits (
    bucket        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
