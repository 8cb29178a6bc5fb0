-- Where each box's time comes from (protocol.State.TimeSource: controller, rtc, nitz, gps, system,
-- saved, none), kept while the box is offline like its version; '' for boxes from before it.
ALTER TABLE device_state ADD COLUMN time_source TEXT NOT NULL DEFAULT '';
