-- Over-the-air agent updates. Each box's architecture and how its last offered update went
-- (protocol.UpdateStatus as JSON, '' for none), kept while the box is offline, like its version.
ALTER TABLE device_state ADD COLUMN arch TEXT NOT NULL DEFAULT '';
ALTER TABLE device_state ADD COLUMN update_status TEXT NOT NULL DEFAULT '';

-- Agent builds published with `loa agent publish`: the file is <data>/builds/<sha256>.
CREATE TABLE agent_builds (
	sha256      TEXT PRIMARY KEY,
	version     TEXT NOT NULL,
	arch        TEXT NOT NULL,
	size        INTEGER NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  INTEGER NOT NULL
);

-- A rollout offers one version's builds to its target boxes, percent of them a step; the next
-- step is offered when every box of the steps so far is healthy. A rollback or a refused build
-- pauses it (reason says why). At most one rollout is active or paused at a time.
CREATE TABLE rollouts (
	id          TEXT PRIMARY KEY,
	version     TEXT NOT NULL,
	builds      TEXT NOT NULL,    -- JSON: the sha256 of each architecture's build
	targets     TEXT NOT NULL,    -- JSON store.Targets
	percent     INTEGER NOT NULL CHECK (percent BETWEEN 1 AND 100),
	state       TEXT NOT NULL CHECK (state IN ('active', 'paused', 'aborted', 'done')),
	reason      TEXT NOT NULL DEFAULT '',
	created_by  TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);

-- The boxes offered each rollout, and in which step.
CREATE TABLE rollout_boxes (
	rollout     TEXT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	step        INTEGER NOT NULL,
	offered_at  INTEGER NOT NULL,
	PRIMARY KEY (rollout, device_id)
);
