-- Who made a browser session: the client's address (IPv6 by its /64), so the sessions nobody
-- signed in to can be bounded per address; and whether anybody has signed in to it.
ALTER TABLE web_sessions ADD COLUMN owner TEXT;
ALTER TABLE web_sessions ADD COLUMN anonymous BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX web_sessions_owner_idx ON web_sessions (owner, anonymous, expires_at);
