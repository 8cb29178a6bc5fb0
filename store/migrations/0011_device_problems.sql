-- What is wrong with each box (protocol.State.Problems: sound card, output,
-- memory card, temperature, clock), as JSON; '' when nothing is.
ALTER TABLE device_state ADD COLUMN problems TEXT NOT NULL DEFAULT '';
