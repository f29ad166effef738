-- Single sign-on with an organisation's OpenID Connect provider.
--
-- One connection per organisation; its client secret is sealed by the vault.
CREATE TABLE sso_connections (
    organization_id    TEXT PRIMARY KEY NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    issuer             TEXT NOT NULL,
    client_id          TEXT NOT NULL,
    secret_ciphertext  TEXT NOT NULL,
    secret_key_id      TEXT NOT NULL,
    groups_claim       TEXT NOT NULL,
    admin_group        TEXT,
    member_group       TEXT,
    required           BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at         INTEGER NOT NULL
);

-- The e-mail domains a connection owns: one organisation per domain, so sign-in routes an
-- address to exactly one provider.
CREATE TABLE sso_domains (
    domain           TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE
);
CREATE INDEX sso_domains_org_idx ON sso_domains (organization_id);

-- Who a provider's subject is here: keyed by (issuer, sub), never by e-mail alone.
CREATE TABLE sso_identities (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX sso_identities_user_idx ON sso_identities (user_id);
