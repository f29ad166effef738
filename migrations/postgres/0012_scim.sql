-- SCIM 2.0 provisioning (RFC 7643/7644), per organisation.
--
-- A bearer token an organisation admin creates (shown once, kept as its SHA-256) lets the
-- organisation's identity provider manage its Users.
CREATE TABLE scim_tokens (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    token_hash       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT,
    revoked_at       BIGINT
);
CREATE UNIQUE INDEX scim_tokens_token_hash_key ON scim_tokens (token_hash);
CREATE INDEX scim_tokens_org_idx ON scim_tokens (organization_id);

-- The Users the identity provider manages, as it sent them (the attributes this server keeps,
-- JSON). userName is unique per organisation without regard to case (RFC 7643 §4.1.1).
CREATE TABLE scim_users (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_name_key    TEXT NOT NULL,
    external_id      TEXT,
    resource         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX scim_users_user_name_key ON scim_users (organization_id, user_name_key);
CREATE INDEX scim_users_external_idx ON scim_users (organization_id, external_id);

-- Who suspended a membership: 'admin' (pages, API, CLI) or 'scim' (the identity provider). A
-- reactivation by the identity provider lifts only its own suspensions.
ALTER TABLE memberships ADD COLUMN suspended_by TEXT;
