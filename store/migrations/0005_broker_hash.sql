-- The external broker's password hash of each box's token (mosquitto "$7$",
-- PBKDF2-SHA512), stored when the box is registered: the token itself is kept
-- only as SHA-256, which mosquitto cannot check, and `loa broker config`
-- copies these into mosquitto's password file. Boxes registered before this
-- migration have no row.
CREATE TABLE broker_hashes (
	device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	hash       TEXT NOT NULL
);
