-- Live sessions: a live speech or a relayed radio programme is a one-off rule
-- whose item plays a stream instead of media (stream_channels > 0), or, for a
-- relay on a cron rule, a schedule whose every occurrence starts a relay.
-- The sessions table keeps the record of each session that went on air: who
-- started it, from what, how it ended, and its recording (kept N days).
ALTER TABLE rules ADD COLUMN stream_channels INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rules ADD COLUMN stream_ends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rules ADD COLUMN relay_url TEXT NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN relay_for_ms INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sessions (
	id          TEXT PRIMARY KEY, -- the item id, which is the stream's session id
	rule        TEXT NOT NULL REFERENCES rules(id),
	kind        TEXT NOT NULL CHECK (kind IN ('live', 'relay')),
	source      TEXT NOT NULL,    -- microphone, file, stdin, or the relay's URL
	started_by  TEXT NOT NULL,
	targets     TEXT NOT NULL,
	priority    INTEGER NOT NULL,
	started_at  INTEGER NOT NULL, -- when its sound starts on the boxes (ms)
	ended_at    INTEGER NOT NULL DEFAULT 0,
	end_reason  TEXT NOT NULL DEFAULT '',
	packets     INTEGER NOT NULL DEFAULT 0,
	bytes       INTEGER NOT NULL DEFAULT 0,
	gaps        INTEGER NOT NULL DEFAULT 0,
	recording   TEXT REFERENCES media(sha256)
);
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_recording ON sessions(recording);

-- What a box heard and missed of a session it played.
ALTER TABLE deliveries ADD COLUMN heard_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN missed_ms INTEGER NOT NULL DEFAULT 0;
