-- Foundation: tenants, people, credentials. Timestamps are Unix seconds (UTC).
CREATE TABLE organizations (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX organizations_name_key ON organizations (name);

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE memberships (
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (user_id, organization_id)
);
CREATE INDEX memberships_org_idx ON memberships (organization_id);

CREATE TABLE clari_credentials (
    organization_id  TEXT PRIMARY KEY NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    ciphertext       TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    key_hint         TEXT NOT NULL,
    base_url         TEXT,
    created_at       BIGINT NOT NULL,
    rotated_at       BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    key_hash         TEXT NOT NULL,
    key_hint         TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    expires_at       BIGINT,
    last_used_at     BIGINT,
    revoked_at       BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_org_idx ON api_keys (organization_id);
