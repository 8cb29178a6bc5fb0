-- One-time enrolment codes (`loa device add ID --enroll`, `loa device enroll ID`): the key
-- derived from each code's secret (the secret itself is shown once and never stored), who
-- made it, when it expires, and when and from where it was used. A used or expired code is
-- kept for its error message ("already used at …") and for the record.
CREATE TABLE enrolments (
	id          INTEGER PRIMARY KEY,
	device_id   TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	mac_key     BLOB NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	used_at     INTEGER NOT NULL DEFAULT 0,
	used_from   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX enrolments_created ON enrolments(created_at);
