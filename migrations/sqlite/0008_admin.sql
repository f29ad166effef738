-- An organisation's admin suspends a person in that organisation only; their other memberships
-- are untouched. Sign-in still works, but no grant or API key of theirs in this one does.
ALTER TABLE memberships ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- "Sign out everywhere" and a password change bump it; a browser session signed in under an
-- older epoch is no longer signed in.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
-- When a grant last had a token issued (code exchange or refresh), shown on the account pages.
ALTER TABLE grants ADD COLUMN last_used_at INTEGER;
