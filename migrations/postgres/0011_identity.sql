-- A person's identity belongs to them.
--
-- Organisation names are unique by what they look like, not by their bytes: `name_key` is the
-- name after Unicode NFKC, case folding, whitespace collapse and the UTS #39 confusable skeleton,
-- and `slug` is the plain ASCII handle shown beside the name on the consent page. Both are
-- filled in by the application for rows that predate them (see `Store::backfill_org_keys`);
-- until then they are NULL, which the unique indexes allow.
ALTER TABLE organizations ADD COLUMN name_key TEXT;
ALTER TABLE organizations ADD COLUMN slug TEXT;
CREATE UNIQUE INDEX organizations_name_key_key ON organizations (name_key);
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug);

-- Accounts whose password somebody else chose (an organisation admin, before invitations) must
-- set their own at the next sign-in. The admin-created ones are those an admin's
-- `user.added_to_org` event created: the account appeared with the event.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET must_change_password = TRUE
WHERE EXISTS (
    SELECT 1 FROM audit_events e
    WHERE e.action = 'user.added_to_org' AND e.actor_kind <> 'operator'
      AND e.target = users.id AND users.created_at >= e.at - 5
);

-- An invitation to join an organisation: a single-use, expiring link. Until it is accepted the
-- person is not a member and holds nothing; the token is stored as its SHA-256 only.
CREATE TABLE invitations (
    id               TEXT PRIMARY KEY NOT NULL,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    token_hash       TEXT NOT NULL,
    invited_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    accepted_at      BIGINT,
    accepted_by      TEXT,
    revoked_at       BIGINT
);
CREATE UNIQUE INDEX invitations_token_hash_key ON invitations (token_hash);
CREATE INDEX invitations_org_idx ON invitations (organization_id, created_at);

-- Sign-in throttling grows its delay from the last failure in the window.
ALTER TABLE rate_limits ADD COLUMN last_at BIGINT;
