-- NATS's password hash of each box's token (bcrypt, "$2a$..."), for an external NATS cluster
-- (`loa broker config --format nats`): NATS checks neither SHA-256 nor mosquitto's "$7$". Stored when
-- the box's token is given to `loa broker config --box-config` (from the config `loa device add`
-- wrote); boxes without a row are left out of the NATS account.
CREATE TABLE nats_hashes (
	device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	hash       TEXT NOT NULL
);
