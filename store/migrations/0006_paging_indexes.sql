-- Paged, filtered `loa status` and `loa report` at 10,000 boxes and
-- 100,000 delivery rows (store/paging.go): every page is a seek in an index
-- in the order the page is read, never a sort of the whole table.
--
-- A box's groups, for the rows of a page (and ON DELETE CASCADE from devices).
CREATE INDEX group_members_device ON group_members(device_id, group_name);
-- The report's order, which its cursor follows; replaces the index on
-- scheduled_at alone, which is its prefix.
DROP INDEX deliveries_scheduled;
CREATE INDEX deliveries_page ON deliveries(scheduled_at, item, device_id);
-- The report of one status (`--status missed`), in the same order.
CREATE INDEX deliveries_status_page ON deliveries(status, scheduled_at, item, device_id);
-- The report of one group: its boxes' rows.
CREATE INDEX deliveries_device ON deliveries(device_id, scheduled_at, item);
-- Counts by status of one announcement, counted in the index; replaces the
-- index on announcement alone, which is its prefix.
DROP INDEX deliveries_announcement;
CREATE INDEX deliveries_announcement_status ON deliveries(announcement, status, scheduled_at);
