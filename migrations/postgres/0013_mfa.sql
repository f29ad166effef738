-- A second sign-in factor for local accounts: a TOTP secret (RFC 6238), sealed by the vault, the
-- last step used (a code is never accepted twice), and recovery codes kept as SHA-256.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_key_id TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at BIGINT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- An organisation can require its admins to use a second factor.
ALTER TABLE organizations ADD COLUMN require_admin_mfa BOOLEAN NOT NULL DEFAULT FALSE;
