-- Where each box stands, for the console's map: WGS 84 degrees, both or neither (NULL: not placed).
ALTER TABLE devices ADD COLUMN lat REAL CHECK (lat BETWEEN -90 AND 90);
ALTER TABLE devices ADD COLUMN lon REAL CHECK (lon BETWEEN -180 AND 180) CHECK ((lat IS NULL) = (lon IS NULL));
