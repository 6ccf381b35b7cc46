-- Up Migration

-- An Idempotency-Key names one request, not just a station's wish to be answered: it is kept with a
-- hash of the request it came with (the fields and the images' sha256), so the same key with another
-- part is refused instead of answered with the first, and it expires, so a station may use it again.
CREATE TABLE idempotency_keys (
  station_id     text NOT NULL REFERENCES stations(station_id),
  key            text NOT NULL,
  request_hash   text NOT NULL,
  inspection_id  uuid NOT NULL REFERENCES inspections(id),
  expires_at     timestamptz NOT NULL,
  PRIMARY KEY (station_id, key)
);

-- Keys of earlier uploads, with their hash unknown: a repeat of one of them within a day is
-- answered as before (its request cannot be compared), then it expires.
INSERT INTO idempotency_keys (station_id, key, request_hash, inspection_id, expires_at)
SELECT station_id, idempotency_key, '', id, received_at + interval '24 hours' FROM inspections WHERE idempotency_key IS NOT NULL;

ALTER TABLE inspections DROP CONSTRAINT inspections_station_id_idempotency_key_key;
ALTER TABLE inspections DROP COLUMN idempotency_key;

-- Down Migration
ALTER TABLE inspections ADD COLUMN idempotency_key text;
UPDATE inspections i SET idempotency_key = k.key FROM idempotency_keys k WHERE k.inspection_id = i.id;
ALTER TABLE inspections ADD CONSTRAINT inspections_station_id_idempotency_key_key UNIQUE (station_id, idempotency_key);
DROP TABLE idempotency_keys;
