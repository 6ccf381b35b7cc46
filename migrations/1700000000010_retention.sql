-- Up Migration

-- The image store's index: one row per file of the content-addressed store (part images and
-- overlays), with its size, the retention class it counts in, and, once the pruner removed it,
-- when and by which policy. Inspections keep their sha256s; a removed file keeps its row, so its
-- documents can say what became of it. See src/images/retention.ts and src/images/pruner.ts.
CREATE TABLE stored_files (
  sha256               text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  -- NULL: stored before this table existed; the pruner measures the file.
  bytes                bigint CHECK (bytes >= 0),
  -- The most lasting class among the inspections that refer to it (see retention_class_max);
  -- NULL while only undecided inspections do.
  retention_class      text CHECK (retention_class IN ('overlay', 'pass', 'fail', 'review', 'disposed')),
  -- Model-input pixels kept beside a part image (src/inference/prepared-inputs.ts).
  prepared_bytes       bigint NOT NULL DEFAULT 0 CHECK (prepared_bytes >= 0),
  prepared_keys        text[] NOT NULL DEFAULT '{}',
  prepared_removed_at  timestamptz,
  -- When the file was last stored or referred to again: its age runs from here.
  stored_at            timestamptz NOT NULL DEFAULT now(),
  -- The removal is recorded before the file is unlinked; unlinked_at says the unlink happened.
  removed_at           timestamptz,
  removal_policy       text CHECK (removal_policy IN ('quota', 'max_age')),
  removal_reason       text,
  unlinked_at          timestamptz,
  -- The pruner looked and found the file kept until then: it need not look again before.
  retain_until         timestamptz,
  CHECK ((removed_at IS NULL) = (removal_policy IS NULL) AND (removed_at IS NULL) = (removal_reason IS NULL))
);
-- What the pruner has not looked at yet, oldest first.
CREATE INDEX stored_files_pool ON stored_files (stored_at, sha256) WHERE removed_at IS NULL AND retain_until IS NULL;
CREATE INDEX stored_files_pool_class ON stored_files (retention_class, stored_at, sha256) WHERE removed_at IS NULL AND retain_until IS NULL;
CREATE INDEX stored_files_deferred ON stored_files (retain_until) WHERE removed_at IS NULL AND retain_until IS NOT NULL;
CREATE INDEX stored_files_prepared ON stored_files (stored_at, sha256) WHERE prepared_removed_at IS NULL AND prepared_bytes > 0;
CREATE INDEX stored_files_stored_at ON stored_files (stored_at);
CREATE INDEX stored_files_unlink_pending ON stored_files (sha256) WHERE removed_at IS NOT NULL AND unlinked_at IS NULL;
CREATE INDEX stored_files_unsized ON stored_files (sha256) WHERE bytes IS NULL AND removed_at IS NULL;
CREATE INDEX inspection_images_sha256 ON inspection_images (sha256);
CREATE INDEX inspection_artifacts_sha256 ON inspection_artifacts (sha256);

-- A file counts in the most lasting class of the inspections that refer to it.
CREATE FUNCTION retention_class_max(a text, b text) RETURNS text AS $$
  SELECT CASE WHEN coalesce(array_position(ARRAY['overlay', 'pass', 'fail', 'review', 'disposed'], a), 0)
                >= coalesce(array_position(ARRAY['overlay', 'pass', 'fail', 'review', 'disposed'], b), 0) THEN a ELSE b END
$$ LANGUAGE sql IMMUTABLE;

-- Files already stored: their class from their inspections, their age from the latest of them.
INSERT INTO stored_files (sha256, retention_class, stored_at)
SELECT sha256, (ARRAY['overlay', 'pass', 'fail', 'review', 'disposed'])[max(rank)], max(at)
FROM (
  SELECT ii.sha256, i.received_at AS at,
    CASE WHEN d.inspection_id IS NOT NULL THEN 5 WHEN i.verdict = 'PASS' THEN 2 WHEN i.verdict = 'FAIL' THEN 3 WHEN i.verdict = 'REVIEW' THEN 4 END AS rank
  FROM inspection_images ii JOIN inspections i ON i.id = ii.inspection_id LEFT JOIN dispositions d ON d.inspection_id = i.id
  UNION ALL
  SELECT ia.sha256, coalesce(i.decided_at, i.received_at), 1
  FROM inspection_artifacts ia JOIN inspections i ON i.id = ia.inspection_id
) refs
GROUP BY sha256;

-- "Keep this image": a person pins an image (and the overlays of its view) against the pruner.
CREATE TABLE image_pins (
  sha256     text PRIMARY KEY REFERENCES stored_files(sha256),
  pinned_by  text NOT NULL REFERENCES users(username),
  pinned_at  timestamptz NOT NULL DEFAULT now(),
  reason     text NOT NULL
);

-- A lot on hold: none of its inspections' images is removed while it lasts.
ALTER TABLE lots
  ADD COLUMN held_at timestamptz,
  ADD COLUMN held_by text,
  ADD COLUMN hold_reason text,
  ADD CHECK ((held_at IS NULL) = (held_by IS NULL) AND (held_at IS NULL) = (hold_reason IS NULL));

-- What the pruner last measured (one row), so that every process can answer uploads, /readyz and
-- /metrics without adding up the whole store; and the policy its deferrals were computed under.
-- window_bytes: what of stored_bytes was stored after window_start (a minute before the measure),
-- so that an estimate can replace it with what is there now (stored-files.ts estimateStoredBytes).
CREATE TABLE storage_usage (
  id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
  computed_at         timestamptz NOT NULL,
  stored_bytes        bigint NOT NULL,
  window_start        timestamptz NOT NULL,
  window_bytes        bigint NOT NULL,
  classes             jsonb NOT NULL,
  policy_fingerprint  text NOT NULL
);

-- Each pruning run, by which process: two never overlap (the pruner is leader-elected).
CREATE TABLE prune_runs (
  id           bigserial PRIMARY KEY,
  process      text NOT NULL,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  files        integer NOT NULL,
  bytes        bigint NOT NULL,
  by_class     jsonb NOT NULL
);
CREATE INDEX prune_runs_finished ON prune_runs (finished_at);

-- Down Migration
DROP TABLE prune_runs, storage_usage, image_pins;
ALTER TABLE lots DROP COLUMN held_at, DROP COLUMN held_by, DROP COLUMN hold_reason;
DROP TABLE stored_files;
DROP FUNCTION retention_class_max;
DROP INDEX inspection_images_sha256, inspection_artifacts_sha256;
