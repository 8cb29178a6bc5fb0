-- Staff API tokens besides the bootstrap admin token file: the name people
-- know a token by (and the audit log shows), its role, the SHA-256 of its
-- secret, when it expires (0: never), was last used and was revoked (0: not).
-- A revoked token stays listed; its name may be given to a new token.
CREATE TABLE tokens (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'trigger')),
	hash          TEXT NOT NULL UNIQUE,
	created_at    INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL DEFAULT 0,
	last_used_at  INTEGER NOT NULL DEFAULT 0,
	revoked_at    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tokens_live_name ON tokens(name) WHERE revoked_at = 0;
