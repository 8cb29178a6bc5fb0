-- A box's clock offset to the controller, as its time sync measured it
-- (milliseconds, controller minus box; NULL until the box has synced).
ALTER TABLE device_state ADD COLUMN clock_offset_ms INTEGER;
