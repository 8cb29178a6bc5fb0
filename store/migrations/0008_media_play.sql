-- What boxes download is not the upload itself but a rendition of it: the
-- controller normalises every recording's loudness and encodes Ogg Opus
-- (ingest package). The original keeps its id (sha256, what rules name);
-- play_sha256 is the rendition's file. Rows from before have none until the
-- controller converts them at its next start; until then boxes get the
-- original, as before.
ALTER TABLE media ADD COLUMN loudness_lufs REAL;   -- the original's integrated loudness; NULL: not measured
ALTER TABLE media ADD COLUMN true_peak_dbtp REAL;  -- the original's true peak
ALTER TABLE media ADD COLUMN play_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN play_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE media ADD COLUMN play_codec TEXT NOT NULL DEFAULT '';
ALTER TABLE media ADD COLUMN play_lufs REAL;       -- the rendition's loudness
CREATE INDEX media_play ON media(play_sha256) WHERE play_sha256 != '';
