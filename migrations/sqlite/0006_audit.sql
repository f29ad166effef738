-- The audit trail: one hash chain per organisation ('-' is the instance's own chain: sign-ins,
-- registrations). No foreign keys: the trail outlives what it describes, and deleting an
-- organisation must not delete its history.
CREATE TABLE audit_events (
    organization_id  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    actor_kind       TEXT NOT NULL,
    actor_id         TEXT,
    actor_name       TEXT,
    action           TEXT NOT NULL,
    target           TEXT,
    outcome          TEXT NOT NULL,
    request_id       TEXT,
    client_ip        TEXT,
    details          TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    PRIMARY KEY (organization_id, seq)
);
CREATE INDEX audit_events_at ON audit_events (organization_id, at);

-- The head of each chain. Appending locks this row (an UPDATE inside the appending transaction),
-- so concurrent writers on any replica extend the chain one after another and never fork it.
CREATE TABLE audit_heads (
    organization_id  TEXT PRIMARY KEY NOT NULL,
    seq              INTEGER NOT NULL,
    hash             TEXT NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Signed (Ed25519) statements "the chain of org had head hash H at seq N".
CREATE TABLE audit_checkpoints (
    organization_id  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    head_hash        TEXT NOT NULL,
    at               INTEGER NOT NULL,
    key_id           TEXT NOT NULL,
    signature        TEXT NOT NULL,
    PRIMARY KEY (organization_id, seq)
);

-- The audit signing keys (Ed25519) and the secret that keys argument digests (HMAC), private
-- halves sealed by the vault. Public keys stay published after retirement.
CREATE TABLE audit_keys (
    kid                 TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('ed25519', 'hmac')),
    public_key          TEXT,
    private_ciphertext  TEXT NOT NULL,
    private_key_id      TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    retired_at          INTEGER
);
