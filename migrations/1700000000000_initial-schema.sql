-- Up Migration

CREATE TABLE stations (
  station_id   text PRIMARY KEY,
  site         text NOT NULL,
  line         text NOT NULL,
  key_id       text NOT NULL UNIQUE,
  key_hash     bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  username       text PRIMARY KEY,
  role           text NOT NULL CHECK (role IN ('reviewer', 'engineer', 'admin')),
  token_id       text NOT NULL UNIQUE,
  token_hash     bytea NOT NULL,
  password_hash  text,
  created_at     timestamptz NOT NULL DEFAULT now()
);

-- Plan versions are append-only; operation '' stands for "any operation".
CREATE TABLE quality_plans (
  part_number  text NOT NULL,
  operation    text NOT NULL DEFAULT '',
  version      integer NOT NULL CHECK (version > 0),
  document     jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text,
  PRIMARY KEY (part_number, operation, version)
);

CREATE TABLE lots (
  lot_id        text PRIMARY KEY,
  first_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inspections (
  id                uuid PRIMARY KEY,
  station_id        text NOT NULL REFERENCES stations(station_id),
  site              text NOT NULL,
  line              text NOT NULL,
  serial            text NOT NULL,
  part_number       text NOT NULL,
  lot_id            text NOT NULL REFERENCES lots(lot_id),
  work_order        text,
  operation         text,
  operator          text,
  idempotency_key   text,
  captured_at       timestamptz NOT NULL,
  received_at       timestamptz NOT NULL DEFAULT now(),
  plan_part_number  text NOT NULL,
  plan_operation    text NOT NULL,
  plan_version      integer NOT NULL,
  status            text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done')),
  verdict           text CHECK (verdict IN ('PASS', 'FAIL', 'REVIEW')),
  needs_review      boolean NOT NULL DEFAULT false,
  reason            text,
  decided_at        timestamptz,
  characteristics   jsonb,
  models            jsonb,
  FOREIGN KEY (plan_part_number, plan_operation, plan_version) REFERENCES quality_plans(part_number, operation, version),
  UNIQUE (station_id, idempotency_key),
  CHECK ((status = 'done') = (verdict IS NOT NULL AND decided_at IS NOT NULL))
);
CREATE INDEX inspections_lot ON inspections (lot_id, received_at, id);
CREATE INDEX inspections_review ON inspections (decided_at, id) WHERE needs_review;
CREATE INDEX inspections_serial ON inspections (part_number, serial);
CREATE INDEX inspections_pending ON inspections (received_at) WHERE status <> 'done';

-- A decided inspection is a record: its decision may not change afterwards.
CREATE FUNCTION inspections_immutable_once_decided() RETURNS trigger AS $$
BEGIN
  IF OLD.status = 'done' THEN
    IF NEW.verdict IS DISTINCT FROM OLD.verdict OR NEW.characteristics IS DISTINCT FROM OLD.characteristics
       OR NEW.models IS DISTINCT FROM OLD.models OR NEW.decided_at IS DISTINCT FROM OLD.decided_at
       OR NEW.reason IS DISTINCT FROM OLD.reason OR NEW.status IS DISTINCT FROM OLD.status
       OR NEW.plan_version IS DISTINCT FROM OLD.plan_version OR NEW.serial IS DISTINCT FROM OLD.serial
       OR NEW.lot_id IS DISTINCT FROM OLD.lot_id OR NEW.part_number IS DISTINCT FROM OLD.part_number THEN
      RAISE EXCEPTION 'inspection % is decided and cannot be changed', OLD.id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER inspections_immutable BEFORE UPDATE ON inspections
  FOR EACH ROW EXECUTE FUNCTION inspections_immutable_once_decided();
CREATE FUNCTION inspections_no_delete_once_decided() RETURNS trigger AS $$
BEGIN
  IF OLD.status = 'done' THEN
    RAISE EXCEPTION 'inspection % is decided and cannot be deleted', OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN OLD;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER inspections_no_delete BEFORE DELETE ON inspections
  FOR EACH ROW EXECUTE FUNCTION inspections_no_delete_once_decided();

CREATE TABLE inspection_images (
  inspection_id uuid NOT NULL REFERENCES inspections(id),
  view          integer NOT NULL,
  sha256        text NOT NULL,
  media_type    text NOT NULL,
  width         integer NOT NULL,
  height        integer NOT NULL,
  PRIMARY KEY (inspection_id, view)
);

-- Where a model saw a defect: anomaly maps (and later boxes/masks) as stored PNGs.
CREATE TABLE inspection_artifacts (
  inspection_id uuid NOT NULL REFERENCES inspections(id),
  view          integer NOT NULL,
  model_id      text NOT NULL,
  kind          text NOT NULL,
  sha256        text NOT NULL,
  PRIMARY KEY (inspection_id, view, model_id, kind)
);

CREATE TABLE dispositions (
  inspection_id  uuid PRIMARY KEY REFERENCES inspections(id),
  decision       text NOT NULL CHECK (decision IN ('accept', 'rework', 'scrap')),
  final_verdict  text NOT NULL CHECK (final_verdict IN ('PASS', 'FAIL')),
  reason         text NOT NULL,
  username       text NOT NULL REFERENCES users(username),
  decided_at     timestamptz NOT NULL DEFAULT now()
);

-- Every verdict message is stored here in the transaction that makes it, then relayed to the broker.
CREATE TABLE outbox (
  seq            bigserial PRIMARY KEY,
  message_id     uuid NOT NULL UNIQUE,
  inspection_id  uuid NOT NULL REFERENCES inspections(id),
  station_id     text NOT NULL,
  topic          text NOT NULL,
  payload        json NOT NULL, -- json, not jsonb: the message is sent exactly as it was written
  created_at     timestamptz NOT NULL DEFAULT now(),
  sent_at        timestamptz
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_inspection ON outbox (inspection_id, seq);

-- The MES's current job per station (retained `…/context` topic).
CREATE TABLE station_context (
  station_id   text PRIMARY KEY,
  context      jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE station_context, outbox, dispositions, inspection_artifacts, inspection_images;
DROP TABLE inspections;
DROP FUNCTION inspections_immutable_once_decided, inspections_no_delete_once_decided;
DROP TABLE lots, quality_plans, users, stations;
