-- Emergencies and exercises. Rules gain the tone a box plays before the
-- message, live or test (exercise), and who started them (cli, cap:<key>,
-- sensor:<rule>); media becomes optional, for tone-only alerts. SQLite cannot
-- relax NOT NULL in place, so the table is rebuilt.
CREATE TABLE rules_new (
	id            TEXT PRIMARY KEY,
	kind          TEXT NOT NULL CHECK (kind IN ('once', 'cron')),
	name          TEXT NOT NULL DEFAULT '',
	cron          TEXT NOT NULL DEFAULT '',
	start_at      INTEGER NOT NULL DEFAULT 0,
	targets       TEXT NOT NULL,
	media         TEXT REFERENCES media(sha256),
	priority      INTEGER NOT NULL,
	repeat        INTEGER NOT NULL DEFAULT 1,
	gap_ms        INTEGER NOT NULL DEFAULT 0,
	validity_ms   INTEGER NOT NULL,
	text          TEXT NOT NULL DEFAULT '',
	tone          TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL DEFAULT 'live',
	source        TEXT NOT NULL DEFAULT 'cli',
	paused        INTEGER NOT NULL DEFAULT 0,
	cancelled_at  INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);
INSERT INTO rules_new (id, kind, name, cron, start_at, targets, media, priority, repeat, gap_ms, validity_ms, text, paused, cancelled_at, created_at)
	SELECT id, kind, name, cron, start_at, targets, media, priority, repeat, gap_ms, validity_ms, text, paused, cancelled_at, created_at FROM rules;
DROP TABLE rules;
ALTER TABLE rules_new RENAME TO rules;
CREATE INDEX rules_media ON rules(media);

-- Who started, changed or cancelled an emergency, and why.
CREATE TABLE audit (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	actor    TEXT NOT NULL,
	action   TEXT NOT NULL,
	rule     TEXT NOT NULL DEFAULT '',
	targets  TEXT NOT NULL DEFAULT '',
	details  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
