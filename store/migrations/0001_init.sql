CREATE TABLE devices (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL DEFAULT '',
	token_hash  TEXT NOT NULL,
	volume      INTEGER NOT NULL DEFAULT 80 CHECK (volume BETWEEN 0 AND 100),
	created_at  INTEGER NOT NULL
);

CREATE TABLE group_members (
	group_name  TEXT NOT NULL,
	device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	PRIMARY KEY (group_name, device_id)
);

CREATE TABLE media (
	sha256       TEXT PRIMARY KEY,
	name         TEXT NOT NULL DEFAULT '',
	codec        TEXT NOT NULL,
	size         INTEGER NOT NULL,
	duration_ms  INTEGER NOT NULL,
	created_at   INTEGER NOT NULL
);

-- A rule is an announcement (kind 'once', start_at set) or a schedule
-- (kind 'cron', cron set). Targets are JSON {"all":bool,"groups":[],"devices":[]}.
CREATE TABLE rules (
	id            TEXT PRIMARY KEY,
	kind          TEXT NOT NULL CHECK (kind IN ('once', 'cron')),
	name          TEXT NOT NULL DEFAULT '',
	cron          TEXT NOT NULL DEFAULT '',
	start_at      INTEGER NOT NULL DEFAULT 0,
	targets       TEXT NOT NULL,
	media         TEXT NOT NULL REFERENCES media(sha256),
	priority      INTEGER NOT NULL,
	repeat        INTEGER NOT NULL DEFAULT 1,
	gap_ms        INTEGER NOT NULL DEFAULT 0,
	validity_ms   INTEGER NOT NULL,
	text          TEXT NOT NULL DEFAULT '',
	paused        INTEGER NOT NULL DEFAULT 0,
	cancelled_at  INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);

CREATE TABLE device_state (
	device_id    TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	online       INTEGER NOT NULL,
	state        TEXT NOT NULL,
	playing      TEXT NOT NULL DEFAULT '',
	volume       INTEGER NOT NULL DEFAULT 0,
	version      TEXT NOT NULL DEFAULT '',
	uptime_sec   INTEGER NOT NULL DEFAULT 0,
	cache_bytes  INTEGER NOT NULL DEFAULT 0,
	error        TEXT NOT NULL DEFAULT '',
	last_seen    INTEGER NOT NULL
);

-- One row per item and box: what the report shows. Pending rows are made when
-- an announcement is created, so a box that never answers still shows up.
CREATE TABLE deliveries (
	item          TEXT NOT NULL,
	device_id     TEXT NOT NULL,
	announcement  TEXT NOT NULL,
	status        TEXT NOT NULL,
	scheduled_at  INTEGER NOT NULL DEFAULT 0,
	started_at    INTEGER NOT NULL DEFAULT 0,
	finished_at   INTEGER NOT NULL DEFAULT 0,
	reason        TEXT NOT NULL DEFAULT '',
	updated_at    INTEGER NOT NULL,
	PRIMARY KEY (item, device_id)
);
CREATE INDEX deliveries_announcement ON deliveries(announcement);
CREATE INDEX deliveries_scheduled ON deliveries(scheduled_at);

-- Every event as received; the unique key drops QoS 1 re-deliveries.
CREATE TABLE events (
	device_id     TEXT NOT NULL,
	item          TEXT NOT NULL,
	announcement  TEXT NOT NULL DEFAULT '',
	type          TEXT NOT NULL,
	at            INTEGER NOT NULL,
	reason        TEXT NOT NULL DEFAULT '',
	received_at   INTEGER NOT NULL,
	UNIQUE (device_id, item, type, at)
);
