-- Remembered consent is forgotten when the client's redirect URIs change (RFC 7592 update), so
-- prompt=none cannot silently deliver codes to a URI the user never saw; tokens stay valid.
ALTER TABLE grants ADD COLUMN consent_remembered BOOLEAN NOT NULL DEFAULT TRUE;
