-- The reason of a delivery as codes (protocol.Why, JSON), so the report says it in the reader's
-- language; reason keeps the English. '' for rows from before it and from boxes that send no codes.
ALTER TABLE deliveries ADD COLUMN why TEXT NOT NULL DEFAULT '';
