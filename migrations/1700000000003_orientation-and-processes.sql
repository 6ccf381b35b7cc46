-- Up Migration

-- The EXIF orientation applied to an image before anything else (1–8; NULL when it had none).
-- width and height are the image's upright size.
ALTER TABLE inspection_images ADD COLUMN exif_orientation smallint CHECK (exif_orientation BETWEEN 1 AND 8);

-- Running visq processes and the models each has loaded, so a command can tell whether a quality
-- plan names a model that no running worker can evaluate. Each process refreshes its row while it
-- runs and removes it when it stops; a row not seen for a while belongs to a process that died.
CREATE TABLE processes (
  process_id  uuid PRIMARY KEY,
  role        text NOT NULL CHECK (role IN ('api', 'worker')),
  host        text NOT NULL,
  pid         integer NOT NULL,
  models      jsonb NOT NULL,
  started_at  timestamptz NOT NULL DEFAULT now(),
  seen_at     timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE processes;
ALTER TABLE inspection_images DROP COLUMN exif_orientation;
